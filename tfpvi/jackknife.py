"""Jackknife variational inference: bias-reduced estimates of log p(x) from IWAE log weights.

The IWAE bound from K weights, L_K = log (1/K) sum_k w_k, has bias of order 1/K as an estimate of
log p(x) (Nowozin 2018). The order-m generalized jackknife combines the bounds of the subsets of
K - j weights, j = 0..m, so that the bias terms up to order m cancel (bias O(K^-(m+1))):

```none
J_m = sum_{j=0}^{m} c_j * Lbar_{K-j},     c_j = (-1)^j (K - j)^m / (j! (m - j)!)
```

Lbar_{K-j} is the average of the log-mean-weight over subsets that leave j weights out. Order 0 is
the IWAE bound. For j = 1 every leave-one-out subset is used (an exact O(K) computation with
prefix and suffix log-sum-exps, no subtraction of large numbers). For j >= 2, `subsets="windows"`
(the default) averages over the K - j + 1 subsets that leave out a run of j consecutive weights:
since the weights are exchangeable, each of these has the same expectation as a random subset, so
the average is unbiased for E[L_{K-j}] (an incomplete U-statistic) at O(K) cost; `subsets="all"`
enumerates every subset, for small K.

The coefficients grow like K^m / m! (about 3.5e5 for m = 3, K = 128) and alternate in sign, so the
sum cancels numbers near |c_j| * |log p(x)|: in float32 that rounding alone is several nats at
K >= 64. Every step after the log weights is therefore computed in float64 (the result is cast
back to the log weights' dtype).

References:
  Sebastian Nowozin. Debiasing Evidence Approximations: On Importance-weighted Autoencoders and
  Jackknife Variational Inference. ICLR 2018.
"""

from __future__ import annotations

import itertools
import math

import tensorflow as tf

__all__ = ["jackknife", "jackknife_coefficients", "leave_out_log_mean"]

_MAX_SUBSETS = 200_000


def jackknife_coefficients(num_weights: int, order: int) -> list[float]:
  """c_j = (-1)^j (K - j)^m / (j! (m - j)!) for j = 0..m; they sum to 1."""
  return [
      (-1) ** j * (num_weights - j) ** order / (math.factorial(j) * math.factorial(order - j))
      for j in range(order + 1)
  ]


def _as_float64(log_weights) -> tf.Tensor:
  log_weights = tf.convert_to_tensor(log_weights, dtype_hint=tf.float32)
  if not log_weights.dtype.is_floating:
    raise TypeError(f"log_weights must be floating point, got {log_weights.dtype.name}.")
  return tf.cast(log_weights, tf.float64)


def _log_mean(log_weights: tf.Tensor) -> tf.Tensor:
  return tf.reduce_logsumexp(log_weights, axis=0) - math.log(int(log_weights.shape[0]))


def leave_out_log_mean(log_weights: tf.Tensor, num_left_out: int, subsets: str = "windows") -> tf.Tensor:
  """Average over subsets leaving `num_left_out` weights out of log (1/(K-j)) sum_subset w.

  Args:
    log_weights: [K, ...] log importance weights, samples on axis 0.
    num_left_out: j, 0 <= j < K.
    subsets: "windows" (runs of j consecutive weights left out; exact for j <= 1) or "all".

  Returns:
    Tensor of shape log_weights.shape[1:], float64 (or the input's dtype if wider).
  """
  log_weights = _as_float64(log_weights)
  k = int(log_weights.shape[0])
  j = num_left_out
  if j == 0:
    return _log_mean(log_weights)
  if subsets == "all":
    count = math.comb(k, j)
    if count > _MAX_SUBSETS:
      raise ValueError(
          f"subsets='all' with K={k}, j={j} needs {count} subsets (> {_MAX_SUBSETS}); "
          "use subsets='windows'."
      )
    kept = [sorted(set(range(k)) - set(left)) for left in itertools.combinations(range(k), j)]
    gathered = tf.gather(log_weights, tf.constant(kept))  # [C, K - j, ...]
    return tf.reduce_mean(tf.reduce_logsumexp(gathered, axis=1), axis=0) - math.log(k - j)
  if subsets != "windows":
    raise ValueError(f"subsets must be 'windows' or 'all', got {subsets!r}.")
  neg_inf = tf.fill(tf.concat([[1], tf.shape(log_weights)[1:]], 0), tf.constant(-math.inf, log_weights.dtype))
  # prefix[i] = logsumexp(w[:i]), suffix[i] = logsumexp(w[i:]), both of length K + 1.
  prefix = tf.concat([neg_inf, tf.math.cumulative_logsumexp(log_weights, axis=0)], axis=0)
  suffix = tf.concat([tf.math.cumulative_logsumexp(log_weights, axis=0, reverse=True), neg_inf], 0)
  # Leaving out w[i : i + j] for i = 0..K-j keeps prefix[i] and suffix[i + j].
  kept = tf.reduce_logsumexp(tf.stack([prefix[: k - j + 1], suffix[j:]]), axis=0)
  return tf.reduce_mean(kept, axis=0) - math.log(k - j)


def jackknife(log_weights: tf.Tensor, order: int, *, subsets: str = "windows") -> tf.Tensor:
  """The order-m jackknife estimate of log p(x) from K log importance weights (JVI).

  Args:
    log_weights: [K, B] log weights log p(x, z_k) - log q(z_k|x), z_k ~ q(z|x) (e.g.
      `VAE.log_weights`), K > order.
    order: m >= 0; 0 returns the IWAE bound.
    subsets: "windows" or "all" (see the module docstring).

  Returns:
    Tensor [B] of the log weights' dtype (computed in float64), nats. Unlike the IWAE bound it is
    not a lower bound: its bias is of order K^-(m+1) and of either sign, and its variance grows
    with m.
  """
  log_weights = tf.convert_to_tensor(log_weights, dtype_hint=tf.float32)
  dtype = log_weights.dtype
  log_weights = _as_float64(log_weights)
  k = int(log_weights.shape[0])
  if isinstance(order, bool) or not isinstance(order, int):
    raise ValueError(f"order must be a Python int, got {order!r}.")
  if order < 0 or order >= k:
    raise ValueError(f"order must be in [0, K-1] = [0, {k - 1}], got {order}.")
  coefficients = jackknife_coefficients(k, order)
  estimate = tf.add_n(
      [tf.constant(c, tf.float64) * leave_out_log_mean(log_weights, j, subsets) for j, c in enumerate(coefficients)]
  )
  return tf.cast(estimate, dtype)
