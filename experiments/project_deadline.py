"""The project-deadline example: a rare event by naive Monte Carlo and importance sampling.

Ten tasks with independent exponential durations (means 4, 4, 2, 5, 2, 3, 2, 3, 2, 2 days) and the
precedence graph of Table 1 of the importance-sampling blog post (Owen, Importance Sampling, example
9.3): a task starts when all its predecessors are done; the project completes when task 10 does. We estimate the mean
completion time (about 18.2 days) and P(completion >= 70 days), a rare event, by
- naive Monte Carlo (the blog post's Figure 2), and
- importance sampling with exponential proposals (eq. 6): (a) every mean multiplied by 4, and
  (b) only the critical path's means (tasks 1, 2, 4, 10) multiplied by --critical_scale,
showing the running estimates against the number of samples on one plot (Figure 3).

    python -m experiments.project_deadline --output_dir runs/project_deadline

References:
  Art B. Owen. Monte Carlo theory, methods and examples, chapter 9. 2013.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import plotnine as gg
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi
from experiments import common

tfd = tfp.distributions

MEAN_DAYS = (4.0, 4.0, 2.0, 5.0, 2.0, 3.0, 2.0, 3.0, 2.0, 2.0)
PREDECESSORS = {1: (), 2: (1,), 3: (1,), 4: (2,), 5: (2,), 6: (3,), 7: (3,), 8: (3,), 9: (5, 6, 7), 10: (4, 8, 9)}
CRITICAL_PATH = (1, 2, 4, 10)


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/project_deadline", "folder for results and the figure")
  deadline: float = common.flag(70.0, "days: estimate P(project completion >= deadline)", above=0)
  num_samples: int = common.flag(2_000_000, "samples per method for the probability", minimum=100)
  all_scale: float = common.flag(4.0, "proposal (a): every task's mean duration multiplied by this", above=0)
  critical_scale: float = common.flag(
    4.0, "proposal (b): the critical path's mean durations (tasks 1, 2, 4, 10) multiplied by this", above=0
  )
  mean_samples: int = common.flag(1_000_000, "samples for the mean completion time", minimum=2)
  seed: int = common.flag(0, "random seed")

  SMOKE = dict(num_samples=20_000, mean_samples=20_000)


def completion_time(durations: tf.Tensor) -> tf.Tensor:
  """Completion time of task 10 for durations [n, 10] (task j in column j - 1), [n]."""
  finish = {}
  for task in range(1, 11):  # tasks are numbered in a topological order
    start = tf.zeros_like(durations[:, 0])
    for predecessor in PREDECESSORS[task]:
      start = tf.maximum(start, finish[predecessor])
    finish[task] = start + durations[:, task - 1]
  return finish[10]


def durations(means) -> tfd.Distribution:
  """Independent exponential durations with the given means, one event of 10."""
  return tfd.Independent(tfd.Exponential(rate=1.0 / tf.convert_to_tensor(means, tf.float32)), 1)


def proposals(config: Config) -> dict[str, tuple[float, ...]]:
  critical = tuple(m * (config.critical_scale if j + 1 in CRITICAL_PATH else 1.0) for j, m in enumerate(MEAN_DAYS))
  return {
    "naive Monte Carlo": MEAN_DAYS,
    f"IS, all means x{config.all_scale:g}": tuple(m * config.all_scale for m in MEAN_DAYS),
    f"IS, critical path x{config.critical_scale:g}": critical,
  }


@tf.function(jit_compile=tfpvi.xla.resolve())
def _draw(nominal_means, proposal_means, num_samples, seed, deadline):
  nominal, proposal = durations(nominal_means), durations(proposal_means)
  x = proposal.sample(num_samples, seed=seed)
  exceeds = tf.cast(completion_time(x) >= deadline, tf.float32)
  return exceeds, nominal.log_prob(x) - proposal.log_prob(x)


def deadline_band(frame: pd.DataFrame) -> pd.DataFrame:
  """Adds the band [low, high] of each running estimate: +-2 standard errors, clipped to [0, 1].

  Before a method's first hit its estimate and standard error are both 0, which would draw a band
  of zero width; there the band is [0, 3/n], the rule of three's 95% upper bound for an event not
  seen in n draws.
  """
  frame = frame.copy()
  frame["low"] = (frame["estimate"] - 2 * frame["se"]).clip(lower=0.0)
  frame["high"] = (frame["estimate"] + 2 * frame["se"]).clip(upper=1.0)
  unseen = (frame["estimate"] == 0) & (frame["se"] == 0)
  frame.loc[unseen, "high"] = (3.0 / frame.loc[unseen, "samples"]).clip(upper=1.0)
  return frame


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__)
  mean_days = tfpvi.importance.expectation(
    completion_time, durations(MEAN_DAYS), durations(MEAN_DAYS), config.mean_samples, seed=[config.seed, 0]
  )
  top = np.log10(config.num_samples)
  sizes = np.unique(np.logspace(min(3.0, top), top, 25).astype(int))
  rows, finals = [], {}
  for index, (name, means) in enumerate(proposals(config).items()):
    values, log_weights = _draw(
      tf.constant(MEAN_DAYS),
      tf.constant(means),
      config.num_samples,
      tf.constant([config.seed, index + 1]),
      tf.constant(config.deadline),
    )
    running = tfpvi.importance.running_estimates(values, log_weights, sizes)
    final = tfpvi.importance.estimate_from_log_weights(values, log_weights)
    finals[name] = {
      "p_exceed": float(final.value),
      "standard_error": float(final.standard_error),
      "effective_sample_size": float(final.effective_sample_size),
      "hits": int(np.sum(values.numpy())),
    }
    for n, value, se in zip(sizes, running.value.numpy(), running.standard_error.numpy()):
      rows.append({"samples": int(n), "estimate": float(value), "se": float(se), "method": name})
  # The method with the smallest standard error among those that saw the event at all.
  candidates = [k for k in finals if finals[k]["hits"] > 0] or list(finals)
  best_name = min(candidates, key=lambda k: finals[k]["standard_error"])
  best = finals[best_name]
  metrics = {
    "mean_completion_days": float(mean_days.value),
    "mean_completion_days_standard_error": float(mean_days.standard_error),
    "p_exceed_70": best["p_exceed"],
    "p_exceed_70_standard_error": best["standard_error"],
    "p_exceed_70_method": best_name,
    "deadline_days": config.deadline,
    "num_samples": config.num_samples,
    "methods": finals,
  }
  frame = pd.DataFrame(rows)
  # A probability: the +-2 standard error band is clipped to [0, 1].
  frame = deadline_band(frame)
  plot = (
    gg.ggplot(frame, gg.aes("samples", "estimate", color="method", fill="method"))
    + gg.geom_ribbon(gg.aes(ymin="low", ymax="high"), alpha=0.15, color="none")
    + gg.geom_line()
    + gg.geom_hline(yintercept=best["p_exceed"], linetype="dashed", color="black")
    + gg.scale_x_log10()
    + gg.labs(
      x="number of samples",
      y=f"P(completion >= {config.deadline:g} days)",
      color="",
      fill="",
      title="running estimates, band +-2 standard errors (clipped to [0, 1])",
      caption=f"dashed: the final estimate of the method with the smallest standard error ({best_name}); "
      "before a method's first hit its band\nis the 95% upper bound 3/n of the rule of three (no hit in n "
      "samples is not a probability of 0)",
    )
    + gg.theme_bw()
    + gg.theme(figure_size=(8, 4.8), legend_position="bottom")
  )
  tfpvi.plot.save(plot, str(out / "convergence.png"))
  frame.to_csv(out / "convergence.csv", index=False)
  common.write_results(
    out,
    config,
    metrics,
    started,
    published={
      "source": "the blog post on importance sampling and marginal likelihood in VAEs (simulation)",
      "values": {"mean completion time": {"days": 18.2}},
    },
  )
  common.say(f"mean completion {metrics['mean_completion_days']:.2f} days; P(>= {config.deadline:g} days):")
  for name, final in finals.items():
    common.say(
      f"  {name:<28} {final['p_exceed']:.3e} +- {final['standard_error']:.1e} "
      f"({final['hits']} hits of {config.num_samples})"
    )
  common.say(f"results and figure in {out}/")
  return metrics


if __name__ == "__main__":
  common.run(main)
