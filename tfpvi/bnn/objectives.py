"""The Bayes-by-Backprop objective and KL weighting schemes across the minibatches of an epoch.

The variational free energy of a network with weights w ~ q(w | theta) on data D is (Blundell et
al. 2015, eq. 1-2)

```none
F(D, theta) = KL[q(w | theta) || P(w)] - E_q[log P(D | w)]
```

Split over the M minibatches D_1..D_M of an epoch with KL weights pi_i (sum_i pi_i = 1),

```none
F_i(D_i, theta) = pi_i KL[q || P] - E_q[log P(D_i | w)],    sum_i F_i = F(D, theta)
```

`elbo` returns, for each example n of a minibatch of B, the share

```none
value_n = E_q[log p(y_n | x_n, w)] - pi_i KL[q || P] / B
```

whose batch mean is -F_i / B: `tfpvi.train.fit`, which maximizes the batch mean, follows the
gradient of -F_i (scaled by 1 / B), and B times the batch means summed over an epoch is -F.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Union

import tensorflow as tf

from tfpvi.types import Seed

__all__ = [
  "KL_WEIGHTINGS",
  "blundell_kl_weights",
  "elbo",
  "kl_weight_schedule",
  "split_batch",
  "uniform_kl_weights",
]

KL_WEIGHTINGS = ("uniform", "blundell")


def _check_num_batches(num_batches) -> int:
  if int(num_batches) != num_batches or num_batches < 1:
    raise ValueError(f"num_batches must be an int >= 1, got {num_batches!r}.")
  return int(num_batches)


def uniform_kl_weights(num_batches: int) -> tf.Tensor:
  """pi_i = 1 / M for i = 1..M: float32 [M], summing to 1."""
  num_batches = _check_num_batches(num_batches)
  return tf.fill([num_batches], 1.0 / num_batches)


def _blundell_weight(index, num_batches):
  """2^(M - i) / (2^M - 1) = 2^-i / (1 - 2^-M), which neither overflows (M = 600) nor loses digits."""
  index = tf.cast(index, tf.float64)
  weight = tf.pow(tf.constant(2.0, tf.float64), -index) / -math.expm1(-num_batches * math.log(2.0))
  return tf.cast(weight, tf.float32)


def blundell_kl_weights(num_batches: int) -> tf.Tensor:
  """pi_i = 2^(M - i) / (2^M - 1) for i = 1..M (Blundell et al. 2015, section 3.4): float32 [M].

  Half of the KL goes to the first minibatch of an epoch, a quarter to the second, and so on: early
  minibatches are dominated by the prior, later ones by the data. The weights sum to 1.
  """
  num_batches = _check_num_batches(num_batches)
  return _blundell_weight(tf.range(1, num_batches + 1), num_batches)


def kl_weight_schedule(scheme: str, num_batches: int) -> Callable[[tf.Tensor], tf.Tensor]:
  """A `step -> pi_i` schedule for `tfpvi.train.fit`'s objective_kwargs (`kl_weight=...`).

  fit counts steps from 1; step s is minibatch i = (s - 1) mod M + 1 of its epoch.

  Args:
    scheme: "uniform" (1 / M) or "blundell" (2^(M - i) / (2^M - 1)).
    num_batches: M, the minibatches per epoch (ceil(N / batch_size)).

  Returns:
    a function of the (float or int) step, a scalar or a Tensor of steps, returning float32
    weights of the same shape.
  """
  num_batches = _check_num_batches(num_batches)
  if scheme not in KL_WEIGHTINGS:
    raise ValueError(f"scheme must be one of {KL_WEIGHTINGS}, got {scheme!r}.")

  def schedule(step):
    index = tf.math.floormod(tf.cast(step, tf.int64) - 1, num_batches) + 1
    if scheme == "uniform":
      return tf.fill(tf.shape(index), 1.0 / num_batches)
    return _blundell_weight(index, num_batches)

  return schedule


def split_batch(batch) -> tuple[tf.Tensor, tf.Tensor]:
  """(x, y) from an (x, y) tuple or list, or a dict with "image" and "label" (or "x" and "y")."""
  if isinstance(batch, Mapping):
    for x_key, y_key in (("image", "label"), ("x", "y")):
      if x_key in batch and y_key in batch:
        return batch[x_key], batch[y_key]
    raise ValueError(f"expected a batch dict with 'image' and 'label' (or 'x' and 'y'), got keys {sorted(batch)}.")
  if isinstance(batch, (tuple, list)) and len(batch) == 2:
    return batch[0], batch[1]
  raise ValueError(f"expected a labelled batch (x, y) or a dict with 'image' and 'label', got {type(batch).__name__}.")


def elbo(
  model,
  batch,
  *,
  kl_weight: Union[float, tf.Tensor],
  num_samples: int = 1,
  seed: Seed = None,
  return_terms: bool = False,
):
  """Per-example share of the negative minibatch free energy -F_i (higher is better), in nats.

  ```none
  value_n = mean_s log p(y_n | x_n, w_s) - kl_weight * KL[q(w) || P(w)] / B,   w_s ~ q(w)
  ```

  with S = num_samples weight samples (one per minibatch is the paper's choice) and the KL analytic
  or a Monte Carlo estimate on the same w_s (common random numbers), as each layer decides. For
  `tfpvi.train.fit` pass `kl_weight=tfpvi.bnn.kl_weight_schedule(scheme, M)`; for a fixed uniform
  weighting `kl_weight = 1 / M` (so that KL / (M B) ~ KL / N per example).

  Args:
    model: a `tfpvi.bnn.MLP` (anything with `outputs(x, seed=, num_samples=, return_kl=True)` and
      `likelihood(outputs)`).
    batch: (x [B, ...], y [B, ...]) or a dict with "image" and "label".
    kl_weight: pi_i, the share of the KL charged to this minibatch (a float or scalar Tensor).
    num_samples: weight samples S >= 1 in the Monte Carlo average.
    seed: None, a Python int or a stateless [2] seed.
    return_terms: return {"objective", "log_likelihood", "kl"} (each [B]; kl is the whole
      network's KL, repeated; fit logs a scheduled kl_weight itself).

  Returns:
    float Tensor [B] (or the dict of terms).
  """
  x, y = split_batch(batch)
  if int(num_samples) < 1:
    raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
  if int(num_samples) == 1:  # one weight sample: plain matrix products, no sample axis
    outputs, kl = model.outputs(x, seed=seed, return_kl=True)
    log_likelihood = model.likelihood(outputs).log_prob(y)  # [B]
  else:
    outputs, kl = model.outputs(x, seed=seed, num_samples=int(num_samples), return_kl=True)
    log_likelihood = tf.reduce_mean(model.likelihood(outputs).log_prob(y), axis=0)  # [B]
  batch_size = tf.cast(tf.shape(log_likelihood)[0], log_likelihood.dtype)
  kl_weight = tf.cast(kl_weight, log_likelihood.dtype)
  value = log_likelihood - kl_weight * kl / batch_size
  if return_terms:
    return {"objective": value, "log_likelihood": log_likelihood, "kl": kl * tf.ones_like(value)}
  return value
