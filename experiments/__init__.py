"""Experiment modules, one per seed: `python -m experiments.NAME --help`."""
