"""Estimates of log p(x) and their units.

`log_marginal_likelihood` is the importance-sampled estimate with q(z|x) as proposal (seed 002,
eq. 10; Burda et al. 2016 use K = 5000):

```none
log p(x) ~= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)
```

Samples are drawn and reduced chunk by chunk inside one `tf.while_loop` with a running logsumexp,
so memory grows with `chunk_size`, never with `num_samples`, and the loop compiles under XLA.
All values are nats per example summed over the data dimensions.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = [
    "ImportanceSamplingStats",
    "bits_per_dim",
    "importance_sampling_stats",
    "log_marginal_likelihood",
    "pareto_tail_size",
]

_PROPOSALS = ("posterior", "prior")


class ImportanceSamplingStats(NamedTuple):
  """Running statistics of K log importance weights per example, each over the batch [B].

  Attributes:
    log_sum_weights: log sum_k w_k, [B].
    log_sum_squared_weights: log sum_k w_k^2, [B].
    largest_log_weights: the `tail_size` largest log w_k in decreasing order, [B, tail_size]
      (tail_size may be 0).
    num_samples: K, a Python int.
  """

  log_sum_weights: tf.Tensor
  log_sum_squared_weights: tf.Tensor
  largest_log_weights: tf.Tensor
  num_samples: int

  @property
  def log_mean_weight(self) -> tf.Tensor:
    """The importance-sampling estimate log (1/K) sum_k w_k, [B]."""
    return self.log_sum_weights - math.log(self.num_samples)

  @property
  def effective_sample_size(self) -> tf.Tensor:
    """Kish's ESS (sum w)^2 / sum w^2, in [1, K], [B]."""
    return tf.exp(2.0 * self.log_sum_weights - self.log_sum_squared_weights)

  @property
  def standard_error(self) -> tf.Tensor:
    """Delta-method standard error of the log-mean-weight estimate, sqrt(1/ESS - 1/K), [B]."""
    return tf.sqrt(tf.nn.relu(1.0 / self.effective_sample_size - 1.0 / self.num_samples))


def pareto_tail_size(num_samples: int) -> int:
  """M = min(K / 5, 3 sqrt(K)), the tail used by Pareto-smoothed importance sampling."""
  return int(min(num_samples // 5, math.ceil(3.0 * math.sqrt(num_samples))))


def _proposal(model, x, proposal: str) -> tfd.Distribution:
  if proposal == "posterior":
    return model.posterior(x)
  if proposal == "prior":
    # The prior as a proposal with batch shape [B], so samples are [S, B, latent] as for q(z|x).
    batch = tf.shape(x)[0]
    return tfd.BatchBroadcast(model.prior, to_shape=tf.reshape(batch, [1]))
  raise ValueError(f"proposal must be one of {_PROPOSALS}, got {proposal!r}.")


def importance_sampling_stats(
    model,
    x: tf.Tensor,
    num_samples: int = 5000,
    *,
    chunk_size: int = 500,
    tail_size: int = 0,
    proposal: str = "posterior",
    seed: Seed = None,
) -> ImportanceSamplingStats:
  """Accumulates importance-sampling statistics of log p(x) chunk by chunk.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1, total samples per example.
    chunk_size: Python int >= 1, samples drawn at once; memory is O(chunk_size * B * dims).
    tail_size: Python int >= 0, how many of the largest log weights to keep (for Pareto k-hat).
    proposal: "posterior" (q(z|x), seed 002 eq. 10) or "prior" (p(z), the naive estimate of
      seed 002 eq. 7, whose variance explodes with the latent dimension).
    seed: None, a Python int or a stateless seed; chunk i uses a seed folded from it.

  Returns:
    ImportanceSamplingStats over the batch.
  """
  num_samples = checks.check_num_samples(num_samples)
  chunk_size = min(checks.check_num_samples(chunk_size, "chunk_size"), num_samples)
  if tail_size < 0 or tail_size > num_samples:
    raise ValueError(f"tail_size must be in [0, num_samples={num_samples}], got {tail_size}.")
  x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
  proposal_distribution = _proposal(model, x, proposal)
  # The density of z under q(z|x) appears in the weight; under the prior proposal q = p(z).
  density = proposal_distribution
  seed = tfp.random.sanitize_seed(seed)

  def chunk_log_weights(index, size):
    z = proposal_distribution.sample(size, seed=tf.random.experimental.stateless_fold_in(seed, index))
    return model.log_weight_terms(x, z, density).log_weights  # [size, B]

  def update(state, log_w):
    log_sum, log_sum_sq, tail = state
    log_sum = tf.reduce_logsumexp(tf.stack([log_sum, tf.reduce_logsumexp(log_w, 0)]), 0)
    log_sum_sq = tf.reduce_logsumexp(
        tf.stack([log_sum_sq, tf.reduce_logsumexp(2.0 * log_w, 0)]), 0
    )
    if tail_size:
      candidates = tf.concat([tail, tf.transpose(log_w)], axis=1)
      tail = tf.math.top_k(candidates, k=tail_size, sorted=True).values
    return log_sum, log_sum_sq, tail

  batch = tf.shape(x)[0]
  neg_inf = tf.fill([batch], tf.constant(-math.inf, tf.float32))
  state = (neg_inf, neg_inf, tf.fill([batch, tail_size], tf.constant(-math.inf, tf.float32)))
  num_full, remainder = divmod(num_samples, chunk_size)

  def body(index, *state):
    return (index + 1, *update(state, chunk_log_weights(index, chunk_size)))

  _, *state = tf.while_loop(
      lambda index, *_: index < num_full,
      body,
      (tf.constant(0), *state),
      maximum_iterations=num_full,
  )
  if remainder:
    state = update(state, chunk_log_weights(num_full, remainder))
  log_sum, log_sum_sq, tail = state
  return ImportanceSamplingStats(log_sum, log_sum_sq, tail, num_samples)


def log_marginal_likelihood(
    model,
    x: tf.Tensor,
    num_samples: int = 5000,
    *,
    chunk_size: int = 500,
    proposal: str = "posterior",
    seed: Seed = None,
) -> tf.Tensor:
  """Importance-sampled log p(x) per example, with q(z|x) as the proposal.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1 (5000 in Burda et al. 2016).
    chunk_size: samples drawn at once; bounds memory.
    proposal: "posterior" (default) or "prior" (naive Monte Carlo, for comparison).
    seed: None, a Python int or a stateless seed.

  Returns:
    float Tensor [B], nats per example. Its expectation is a lower bound on log p(x) that
    tightens as K grows (it is the IWAE_K bound computed in chunks); with the exact posterior as
    proposal it is exact for any K.
  """
  return importance_sampling_stats(
      model, x, num_samples, chunk_size=chunk_size, proposal=proposal, seed=seed
  ).log_mean_weight


def bits_per_dim(log_px, num_dims: int, *, num_bins: Optional[int] = None):
  """Converts log p(x) in nats per example to bits per dimension: -log2 p(x) / num_dims.

  Args:
    log_px: log p(x) in nats per example (Tensor, array or float).
    num_dims: number of data dimensions (784 for MNIST, 3072 for CIFAR-10).
    num_bins: if given, also checks num_dims is positive and returns bits/dim for a discrete
      likelihood over num_bins levels; a value above log2(num_bins) means worse than uniform.

  Returns:
    -log_px / (num_dims * ln 2), same shape as log_px.
  """
  if num_dims < 1:
    raise ValueError(f"num_dims must be >= 1, got {num_dims}.")
  if num_bins is not None and num_bins < 2:
    raise ValueError(f"num_bins must be >= 2, got {num_bins}.")
  return -tf.convert_to_tensor(log_px, dtype_hint=tf.float32) / (num_dims * math.log(2.0))
