"""The `>>>` examples in the docstrings run as printed (doctest)."""

import doctest
import importlib

import pytest
import tensorflow as tf
import tensorflow_probability as tfp

MODULES = [
  "tfpvi.config",
  "tfpvi.data.pipeline",
  "tfpvi.distributions.discretized_logistic",
  "tfpvi.models.decoders",
  "tfpvi.models.encoders",
  "tfpvi.models.linear_gaussian",
  "tfpvi.models.vae",
  "tfpvi.train.fitting",
  "tfpvi.xla",
  "tfpvi.evaluation.ais",
  "tfpvi.evaluation.jackknife",
  "tfpvi.evaluation.marginal",
  "tfpvi.objectives",
  "tfpvi.precision",
  "tfpvi.run_record",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(name)
  finder = doctest.DocTestFinder(exclude_empty=True)
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  tests = [t for t in finder.find(module, name, globs=dict(vars(module), tf=tf, tfd=tfp.distributions)) if t.examples]
  assert tests, f"{name} has no docstring examples"
  for test in tests:
    runner.run(test)
  result = runner.summarize(verbose=False)
  assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (output above)"


def test_no_project_jargon_in_the_code():
  """Docstrings and tests speak of papers, methods and behaviours, not of the project's seed files or issue numbers."""
  import pathlib
  import re

  root = pathlib.Path(__file__).resolve().parents[1]
  jargon = re.compile(r"\bseed 0" + r"0\d\b|\b[Ii]ssue " + r"\d+\b|test_issue\d")
  found = [
    f"{path.relative_to(root)}:{number}: {line.strip()}"
    for folder in ("tfpvi", "experiments", "tests", "benchmarks")
    for path in sorted((root / folder).rglob("*.py"))
    for number, line in enumerate(path.read_text().splitlines(), 1)
    if jargon.search(line)
  ]
  assert not found, "\n".join(found)


def test_the_first_names_a_user_calls_have_examples():
  """VAE, the objectives, the evaluators, fit and the distributions each show a runnable example."""
  finder = doctest.DocTestFinder(exclude_empty=True)
  found = {t.name for name in MODULES for t in finder.find(importlib.import_module(name), name) if t.examples}
  first = {
    "tfpvi.models.vae.VAE",
    "tfpvi.objectives.elbo",
    "tfpvi.objectives.iwae",
    "tfpvi.objectives.estimate",
    "tfpvi.evaluation.marginal.log_marginal_likelihood",
    "tfpvi.evaluation.marginal.evaluate_dataset",
    "tfpvi.evaluation.jackknife.jackknife",
    "tfpvi.train.fitting.fit",
    "tfpvi.distributions.discretized_logistic.DiscretizedLogistic",
    "tfpvi.models.linear_gaussian.LinearGaussian",
  }
  assert first <= found, sorted(first - found)
  assert len(found) >= 25, len(found)
