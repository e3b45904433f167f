"""TFPVI_SMOKE=1: run documentation code (the README, the notebook) at toy sizes.

The tests execute the README's code blocks and the quick-start notebook exactly as a user reads
them; a user's 10,000 training steps and 5,000 importance samples would take minutes there. With
the environment variable TFPVI_SMOKE set to 1 when tfpvi is imported, `tfpvi.train.fit` runs at
most TFPVI_SMOKE_STEPS steps (default 20), whether it is given `steps` or `epochs`, and
importance sampling draws at most
TFPVI_SMOKE_SAMPLES samples per example (default 50). Nothing changes when it is unset, and
tfpvi warns on stderr when it is set, so that a smoke run is never mistaken for a real one.
"""

from __future__ import annotations

import functools
import os
import sys

__all__ = ["enabled", "install"]


def enabled() -> bool:
  """Whether TFPVI_SMOKE asks for toy sizes."""
  return os.environ.get("TFPVI_SMOKE", "") not in ("", "0")


def install() -> None:
  """Caps fit's steps (given as steps or epochs) and `tfpvi.evaluation`'s importance samples.

  Called once, from tfpvi/__init__, when `enabled()`.
  """
  from tfpvi import evaluation, train

  max_steps = int(os.environ.get("TFPVI_SMOKE_STEPS", "20"))
  max_samples = int(os.environ.get("TFPVI_SMOKE_SAMPLES", "50"))
  print(f"tfpvi: TFPVI_SMOKE is set: fit runs at most {max_steps} steps and importance sampling draws at most "
        f"{max_samples} samples (toy sizes for documentation tests).", file=sys.stderr)
  total_steps = train._total_steps  # fit turns its steps= or epochs= into a number of steps here
  stats = evaluation.importance_sampling_stats

  @functools.wraps(total_steps)
  def capped_total_steps(*args, **kwargs):
    return min(total_steps(*args, **kwargs), max_steps)  # bad steps / epochs are still refused first

  @functools.wraps(stats)
  def capped_stats(model, x, num_samples=5000, **kwargs):
    num_samples = min(num_samples, max_samples)
    if kwargs.get("tail_size"):
      kwargs["tail_size"] = min(kwargs["tail_size"], num_samples)
    return stats(model, x, num_samples, **kwargs)

  dataset = evaluation.evaluate_dataset

  @functools.wraps(dataset)
  def capped_dataset(model, images, num_samples=5000, **kwargs):
    return dataset(model, images, min(num_samples, max_samples), **kwargs)  # the summary records the K used

  train._total_steps = capped_total_steps
  evaluation.evaluate_dataset = capped_dataset
  evaluation.importance_sampling_stats = capped_stats  # log_marginal_likelihood and evaluate_dataset call it
