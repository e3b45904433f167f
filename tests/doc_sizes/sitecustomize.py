"""Toy sizes for the documentation tests: the README's code blocks and the notebooks, run as printed.

A user's 10,000 training steps and 5,000 importance samples would take minutes in the tests. The
README test and the notebook kernels start Python with this folder on PYTHONPATH, so Python runs
this file at start-up. It imports nothing then (a notebook's own imports keep their order, e.g.
matplotlib's inline backend); when the code imports tfpvi, it caps `tfpvi.train.fit` at 20 steps
(given as steps or epochs) and importance sampling at 50 samples per example, and says so on
stderr, so that a documentation test is never mistaken for a real run. It lives with the tests,
not in the package.
"""

import functools
import importlib.abc
import sys

MAX_STEPS = 20
MAX_SAMPLES = 50


def install() -> None:
  """Caps fit's steps and the evaluators' importance samples (idempotent)."""
  import tfpvi.evaluation
  from tfpvi.evaluation import marginal
  from tfpvi.train import fitting

  if getattr(fitting, "_doc_sizes_installed", False):
    return
  total_steps = fitting._total_steps  # fit turns its steps= or epochs= into a number of steps here
  stats = marginal.importance_sampling_stats
  dataset = marginal.evaluate_dataset

  @functools.wraps(total_steps)
  def capped_total_steps(*args, **kwargs):
    return min(total_steps(*args, **kwargs), MAX_STEPS)  # bad steps / epochs are still refused first

  @functools.wraps(stats)
  def capped_stats(model, x, num_samples=5000, **kwargs):
    num_samples = min(num_samples, MAX_SAMPLES)
    if kwargs.get("tail_size"):
      kwargs["tail_size"] = min(kwargs["tail_size"], num_samples)
    return stats(model, x, num_samples, **kwargs)

  @functools.wraps(dataset)
  def capped_dataset(model, images, num_samples=5000, **kwargs):
    return dataset(model, images, min(num_samples, MAX_SAMPLES), **kwargs)  # the summary records the K used

  fitting._total_steps = capped_total_steps
  for module in (marginal, tfpvi.evaluation):  # where it is defined, and the public name users call
    module.evaluate_dataset = capped_dataset
    module.importance_sampling_stats = capped_stats  # log_marginal_likelihood and evaluate_dataset call it
  fitting._doc_sizes_installed = True
  print(
    f"tests/doc_sizes: fit runs at most {MAX_STEPS} steps and importance sampling draws at most {MAX_SAMPLES} "
    "samples (toy sizes for documentation tests).",
    file=sys.stderr,
  )


class _AfterImportingTfpvi(importlib.abc.MetaPathFinder):
  """Finds tfpvi through the other finders, and installs the caps once its package has been executed.

  It stays in place until tfpvi is loaded: a notebook's install cell asks `importlib.util.find_spec`
  first, which finds the package without loading it.
  """

  def find_spec(self, fullname, path=None, target=None):
    if fullname != "tfpvi":
      return None
    for finder in sys.meta_path:
      find = getattr(finder, "find_spec", None)
      spec = find(fullname, path, target) if finder is not self and find is not None else None
      if spec is not None:
        break
    else:
      return None
    if spec.loader is None:
      return spec
    execute = spec.loader.exec_module

    def exec_module(module):
      execute(module)
      if self in sys.meta_path:
        sys.meta_path.remove(self)
      install()

    spec.loader.exec_module = exec_module
    return spec


if __name__ == "sitecustomize":
  sys.meta_path.insert(0, _AfterImportingTfpvi())
