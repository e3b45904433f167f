"""The `>>>` examples in the docstrings run as printed (doctest)."""

import doctest
import importlib

import pytest

MODULES = [
  "tfpvi.config",
  "tfpvi.evaluation.ais",
  "tfpvi.evaluation.jackknife",
  "tfpvi.evaluation.marginal",
  "tfpvi.objectives",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(name)
  finder = doctest.DocTestFinder(exclude_empty=True)
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  tests = [t for t in finder.find(module, name, globs=dict(vars(module))) if t.examples]
  assert tests, f"{name} has no docstring examples"
  for test in tests:
    runner.run(test)
  result = runner.summarize(verbose=False)
  assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (output above)"
