"""Experiment modules, one per seed: `python -m experiments.NAME --help`."""

import tfpvi  # noqa: F401  (first: imports TensorFlow without its start-up log lines)
