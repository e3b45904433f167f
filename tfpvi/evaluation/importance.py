"""Importance sampling for E_p[f(X)] with TFP distributions (the importance-sampling blog post, eqs. 3-6).

```none
plain:            mu = (1/n) sum_i f(x_i) w_i,                w_i = p(x_i) / q(x_i),  x_i ~ q
self-normalized:  mu = sum_i f(x_i) w_i / sum_i w_i           (p may be unnormalized)
```

Plain IS is unbiased with standard error std(f w) / sqrt(n) (Owen, Importance Sampling, Thm 9.1);
self-normalized IS is consistent with the delta-method standard error
sqrt(sum_i w_i^2 (f(x_i) - mu)^2) / sum_i w_i. Both report Kish's effective sample size
(sum w)^2 / sum w^2. Weights are handled in log space; everything is vectorized over samples and
compiles under XLA.

#### Examples

```python
p, q = tfd.Exponential(rate=1.), tfd.Exponential(rate=0.2)
estimate = tfpvi.importance.expectation(lambda x: tf.cast(x > 10., tf.float32), p, q, 100_000)
estimate.value  # ~ exp(-10) = 4.54e-5, estimate.standard_error ~ 3e-7
```

References:
  Art B. Owen. Monte Carlo theory, methods and examples, chapter 9 (Importance sampling). 2013.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Union

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = ["ImportanceEstimate", "expectation", "estimate_from_log_weights", "running_estimates"]

LogDensity = Union[tfd.Distribution, Callable[[tf.Tensor], tf.Tensor]]


class ImportanceEstimate(NamedTuple):
  """An importance-sampling estimate; each field has f's value shape."""

  value: tf.Tensor
  standard_error: tf.Tensor
  effective_sample_size: tf.Tensor
  num_samples: int


def _log_prob(density: LogDensity, x: tf.Tensor) -> tf.Tensor:
  return density.log_prob(x) if isinstance(density, tfd.Distribution) else density(x)


def estimate_from_log_weights(
  values: tf.Tensor, log_weights: tf.Tensor, *, self_normalized: bool = False
) -> ImportanceEstimate:
  """The IS estimate from f(x_i) [n, ...] and log w_i [n] (samples on axis 0)."""
  values = tf.convert_to_tensor(values, tf.float32)
  log_weights = tf.convert_to_tensor(log_weights, tf.float32)
  n = int(values.shape[0])
  log_weights = tf.reshape(log_weights, [n] + [1] * (values.shape.rank - 1))
  shift = tf.stop_gradient(tf.reduce_max(log_weights))
  weights = tf.exp(log_weights - shift)  # w / exp(shift)
  scale = tf.exp(shift)
  ess = tf.square(tf.reduce_sum(weights)) / tf.reduce_sum(tf.square(weights))
  if self_normalized:
    total = tf.reduce_sum(weights, axis=0)
    value = tf.reduce_sum(weights * values, axis=0) / total
    standard_error = tf.sqrt(tf.reduce_sum(tf.square(weights * (values - value)), axis=0)) / total
  else:
    weighted = weights * values
    value = tf.reduce_mean(weighted, axis=0) * scale
    standard_error = tf.math.reduce_std(weighted, axis=0) * scale / math.sqrt(n)
  return ImportanceEstimate(value, standard_error, ess * tf.ones_like(value), n)


def expectation(
  f: Callable[[tf.Tensor], tf.Tensor],
  nominal: LogDensity,
  proposal: tfd.Distribution,
  num_samples: int,
  *,
  self_normalized: bool = False,
  seed: Seed = None,
) -> ImportanceEstimate:
  """Estimates E_p[f(X)] with samples from the proposal q.

  Args:
    f: function of samples [n, *event] returning values [n, ...].
    nominal: p, a distribution or a log-density function (unnormalized allowed when
      self_normalized).
    proposal: q, a distribution with q > 0 wherever f p != 0.
    num_samples: n >= 1.
    self_normalized: divide by the sum of the weights instead of n.
    seed: None, a Python int or a stateless seed.

  Returns:
    ImportanceEstimate (value, standard_error, effective_sample_size, num_samples).
  """
  num_samples = checks.check_num_samples(num_samples)
  x = proposal.sample(num_samples, seed=seed)
  log_weights = _log_prob(nominal, x) - proposal.log_prob(x)
  return estimate_from_log_weights(f(x), log_weights, self_normalized=self_normalized)


def running_estimates(values: tf.Tensor, log_weights: tf.Tensor, sizes) -> ImportanceEstimate:
  """Plain IS estimates from the first n samples, for each n in `sizes` (convergence plots).

  Args:
    values: f(x_i), [N] with N >= max(sizes).
    log_weights: log w_i, [N].
    sizes: increasing sample counts.

  Returns:
    ImportanceEstimate whose fields are [len(sizes)] (num_samples is the list of sizes).
  """
  values = tf.convert_to_tensor(values, tf.float32)
  log_weights = tf.convert_to_tensor(log_weights, tf.float32)
  weighted = tf.exp(log_weights) * values
  index = tf.constant(list(sizes)) - 1
  counts = tf.cast(index + 1, tf.float32)
  sums = tf.gather(tf.cumsum(weighted), index)
  squares = tf.gather(tf.cumsum(tf.square(weighted)), index)
  weight_sums = tf.gather(tf.cumsum(tf.exp(log_weights)), index)
  weight_squares = tf.gather(tf.cumsum(tf.exp(2.0 * log_weights)), index)
  mean = sums / counts
  variance = tf.nn.relu(squares / counts - tf.square(mean)) * counts / tf.maximum(counts - 1.0, 1.0)
  return ImportanceEstimate(mean, tf.sqrt(variance / counts), tf.square(weight_sums) / weight_squares, list(sizes))
