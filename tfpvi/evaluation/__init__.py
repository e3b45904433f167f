"""Evaluation: importance-sampled log p(x) and its diagnostics, bits/dim, JVI, AIS and BDMC.

- `marginal`: `log_marginal_likelihood`, `evaluate_dataset` (resumable, per-example JSON lines),
  ESS, Pareto k-hat and their reading; its public names are also here (`tfpvi.evaluation.X`);
- `importance`: self-normalized importance sampling of expectations;
- `jackknife`: the jackknife variational inference estimator (Nowozin 2018);
- `ais`: annealed importance sampling with HMC, and BDMC.
"""

from tfpvi.evaluation import ais, importance, marginal
from tfpvi.evaluation.marginal import (
  AIS,
  ImportanceSamplingStats,
  ais_log_marginal_likelihood,
  bdmc,
  bits_per_dim,
  check_examples,
  comparison,
  evaluate_dataset,
  importance_sampling_stats,
  jackknife,
  log_marginal_likelihood,
  pareto_khat,
  pareto_tail_size,
  reading,
  summarize,
)

__all__ = [
  "AIS",
  "ImportanceSamplingStats",
  "ais",
  "ais_log_marginal_likelihood",
  "bdmc",
  "bits_per_dim",
  "check_examples",
  "comparison",
  "evaluate_dataset",
  "importance",
  "importance_sampling_stats",
  "jackknife",
  "log_marginal_likelihood",
  "marginal",
  "pareto_khat",
  "pareto_tail_size",
  "reading",
  "summarize",
]
