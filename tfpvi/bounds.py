"""Multi-sample bounds beyond IWAE: Renyi VR-alpha and VR-max, MIWAE, PIWAE and CIWAE.

Every bound here is a function of the same K log importance weights log w_k = log p(x, z_k) -
log q(z_k|x), z_k ~ q(z|x), that `tfpvi.objectives.iwae` uses; each returns per-example values [B] in
nats (sample axis first, keyword-only options), so it plugs into `tfpvi.train.fit` like `iwae`.

```none
VR_alpha(x)   = 1 / (1 - alpha) * log (1/K) sum_k w_k^(1 - alpha)            (Li & Turner 2016)
VR_max(x)     = max_k log w_k                                      (alpha -> -inf)
MIWAE_M,K(x)  = (1/M) sum_m log (1/K) sum_k w_mk                   (Rainforth et al. 2018)
CIWAE_beta(x) = beta * (1/K) sum_k log w_k + (1 - beta) * IWAE_K(x)
PIWAE_M,K     = decoder and prior trained on IWAE_MK, encoder trained on MIWAE_M,K (same M*K draws)
```

Special cases (tested): VR_0 = IWAE_K; VR_alpha -> (1/K) sum_k log w_k (the K-sample ELBO with a
Monte Carlo KL) as alpha -> 1, and `renyi(alpha=1)` is that ELBO; MIWAE_1,K = IWAE_K; MIWAE_M,1 =
the M-sample ELBO; CIWAE_1 = ELBO, CIWAE_0 = IWAE_K. For 0 <= alpha <= 1, VR_alpha lies between the
ELBO and IWAE_K and is a lower bound on log p(x) in expectation; for alpha < 0 (VR-max included) it is
not a bound: its expectation may exceed log p(x) (Li & Turner use it as a training objective).

#### Gradient estimators

`gradient_estimator` changes gradients, never values. With the bound written as f(log w_1..K), g_k =
d f / d log w_k (stopped):

- "reparam": gradients of f through z ~ q (q fully reparameterized; `tfpvi.objectives.check_reparameterized`).
- "stl": log q's score term removed (`tfpvi.objectives.stl_log_prob`, Roeder et al. 2017).
- "dreg": doubly reparameterized (Tucker et al. 2019), generalised to any smooth f of the weights:
  E[g_k d log q(z_k) / d phi] = E[(d g_k / d log w_k) (d log w_k / d z_k)(d z_k / d phi)], so the
  encoder gets sum_k (g_k - d g_k / d log w_k) (d log w_k / d z_k)(d z_k / d phi) and the decoder and
  prior sum_k g_k grad log w_k. For IWAE the encoder weight is w~_k^2 (Tucker et al.), for VR_alpha
  alpha w~_k + (1 - alpha) w~_k^2 with w~ = softmax((1 - alpha) log w), for CIWAE beta / K + (1 -
  beta) w~_k^2. Not defined for VR-max (its weights jump with z).

References:
  Li, Turner. Renyi divergence variational inference. NeurIPS 2016.
  Rainforth, Kosiorek, Le, Maddison, Igl, Wood, Teh. Tighter variational bounds are not necessarily
    better. ICML 2018.
  Tucker, Lawson, Gu, Maddison. Doubly reparameterized gradient estimators for Monte Carlo
    objectives. ICLR 2019.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.objectives import check_reparameterized, stl_log_prob
from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = ["BOUND_ESTIMATORS", "ciwae", "miwae", "piwae", "renyi", "vr_max"]

BOUND_ESTIMATORS = ("reparam", "stl", "dreg")


class _Weights(NamedTuple):
  """Per-sample weights [N, B] (stopped) that turn log w into a surrogate with the right gradient."""

  decoder: tf.Tensor  # g_k: d bound / d log w_k, for decoder and prior parameters
  encoder: tf.Tensor  # g_k for the encoder under "reparam" and "stl"
  encoder_dreg: tf.Tensor  # g_k - d g_k / d log w_k, the DReG encoder weight (path term only)


def _log_mean_exp(log_w: tf.Tensor, axis: int = 0) -> tf.Tensor:
  """log (1/K) sum_k exp(log_w[k]) along `axis`."""
  return tfp.math.reduce_logmeanexp(log_w, axis=axis)


def _check_estimator(gradient_estimator: str) -> None:
  if gradient_estimator not in BOUND_ESTIMATORS:
    hint = " (VIMCO is tfpvi.objectives.iwae(..., gradient_estimator='vimco'))" if gradient_estimator == "vimco" else ""
    raise ValueError(f"gradient_estimator must be one of {BOUND_ESTIMATORS}, got {gradient_estimator!r}{hint}.")


def _check_alpha(alpha) -> float:
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
    raise ValueError(f"alpha must be a Python float (or -inf for VR-max), got {type(alpha).__name__} {alpha!r}.")
  alpha = float(alpha)
  if math.isnan(alpha) or alpha == math.inf:
    raise ValueError(f"alpha must be a finite float or -inf, got {alpha}.")
  return alpha


def _check_beta(beta) -> float:
  if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= float(beta) <= 1.0:
    raise ValueError(f"beta must be a Python float in [0, 1], got {beta!r}.")
  return float(beta)


def _estimate(
  model,
  x: tf.Tensor,
  num_samples: int,
  value_fn: Callable[[tf.Tensor], tf.Tensor],
  weights_fn: Callable[[tf.Tensor], _Weights],
  gradient_estimator: str,
  seed: Seed,
  return_terms: bool,
  split: bool = False,
):
  """Draws log w [N, B] and returns value_fn(log w) with the estimator's gradients.

  `split` forces the decomposition below even under "reparam" (PIWAE: decoder and encoder weights
  differ). The decomposition evaluates the decoder on 2N samples, [z, stop_gradient(z)]:

  ```none
  log w = A + P + C,  A = log p(x, stop z)        (decoder and prior parameters)
                      C = -log q(stop z)          (the encoder's score term)
                      P = log w - A - C           (the encoder's path term, through z)
  surrogate = sum_k a_k A_k + b_k P_k + c_k C_k   (a, b, c stopped)
  ```
  """
  _check_estimator(gradient_estimator)
  q, z = model.sample_posterior(x, num_samples, seed=seed)
  check_reparameterized(q, gradient_estimator)
  if gradient_estimator != "dreg" and not split:
    log_q = stl_log_prob(q, z) if gradient_estimator == "stl" else q.log_prob(z)
    terms = model.log_weight_terms(x, z, log_q)
    value = value_fn(terms.log_weights)
  else:
    value, terms = _split_surrogate(model, x, z, q, value_fn, weights_fn, gradient_estimator)
  if return_terms:
    return {
      "objective": value,
      "log_likelihood": tf.reduce_mean(terms.log_likelihood, axis=0),
      "kl": tf.reduce_mean(terms.log_posterior - terms.log_prior, axis=0),
    }
  return value


def _split_surrogate(model, x, z, q, value_fn, weights_fn, gradient_estimator):
  num = tf.shape(tf.nest.flatten(z)[0])[0]
  log_q = q.log_prob(z)  # path and score
  log_q_stopped = q.log_prob(tf.nest.map_structure(tf.stop_gradient, z))  # score only
  z_both = tf.nest.map_structure(lambda a: tf.concat([a, tf.stop_gradient(a)], axis=0), z)
  both = model.log_weight_terms(x, z_both, tf.concat([log_q, log_q_stopped], axis=0))
  parts = [tf.split(t, [num, num], axis=0) for t in both]
  terms = type(both)(*(p[0] for p in parts))
  stopped_terms = type(both)(*(p[1] for p in parts))
  log_w = terms.log_weights
  generative = stopped_terms.log_likelihood + stopped_terms.log_prior  # A
  score = -stopped_terms.log_posterior  # C
  path = log_w - generative - score  # P
  weights = tf.nest.map_structure(tf.stop_gradient, weights_fn(tf.stop_gradient(log_w)))
  if gradient_estimator == "dreg":
    encoder_path, encoder_score = weights.encoder_dreg, tf.zeros_like(weights.encoder)
  elif gradient_estimator == "stl":
    encoder_path, encoder_score = weights.encoder, tf.zeros_like(weights.encoder)
  else:
    encoder_path, encoder_score = weights.encoder, weights.encoder
  surrogate = tf.reduce_sum(weights.decoder * generative + encoder_path * path + encoder_score * score, axis=0)
  value = value_fn(log_w)
  return tf.stop_gradient(value) + surrogate - tf.stop_gradient(surrogate), terms


def _same(weights: tf.Tensor, dreg: tf.Tensor) -> _Weights:
  return _Weights(decoder=weights, encoder=weights, encoder_dreg=dreg)


def renyi(
  model,
  x: tf.Tensor,
  num_samples: int,
  alpha: float,
  gradient_estimator: str = "reparam",
  *,
  seed: Seed = None,
  return_terms: bool = False,
):
  """The Renyi variational bound VR_alpha per example (Li & Turner 2016).

  ```none
  VR_alpha(x) = 1 / (1 - alpha) * log (1/K) sum_k w_k^(1 - alpha),   w_k = p(x, z_k) / q(z_k|x)
  ```

  alpha = 0 is IWAE_K, alpha = 1 (the limit) the K-sample ELBO (1/K) sum_k log w_k, alpha = -inf
  VR-max, max_k log w_k (see `vr_max`). Computed in log space (a log-sum-exp of (1 - alpha) log w).

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1.
    alpha: Python float, or -inf; not +inf or NaN.
    gradient_estimator: "reparam", "stl" or "dreg" (see the module docstring; "dreg" needs a finite alpha).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).

  Raises:
    ValueError: on a bad alpha, estimator or num_samples, or a q that is not reparameterized.
  """
  alpha = _check_alpha(alpha)
  num_samples = checks.check_num_samples(num_samples)
  if alpha == -math.inf:
    return vr_max(model, x, num_samples, gradient_estimator, seed=seed, return_terms=return_terms)
  if alpha == 1.0:

    def value_fn(log_w):
      return tf.reduce_mean(log_w, axis=0)

    def weights_fn(log_w):
      uniform = tf.ones_like(log_w) / tf.cast(tf.shape(log_w)[0], log_w.dtype)
      return _same(uniform, uniform)
  else:

    def value_fn(log_w):
      return _log_mean_exp((1.0 - alpha) * log_w) / (1.0 - alpha)

    def weights_fn(log_w):
      normalized = tf.math.softmax((1.0 - alpha) * log_w, axis=0)
      return _same(normalized, alpha * normalized + (1.0 - alpha) * tf.square(normalized))

  return _estimate(model, x, num_samples, value_fn, weights_fn, gradient_estimator, seed, return_terms)


def vr_max(
  model,
  x: tf.Tensor,
  num_samples: int,
  gradient_estimator: str = "reparam",
  *,
  seed: Seed = None,
  return_terms: bool = False,
):
  """VR-max per example: max_k log w_k, the alpha -> -inf limit of `renyi` (Li & Turner 2016).

  Gradients follow the sample with the largest weight only. Not a lower bound on log p(x): it is
  at least IWAE_K, and its expectation can exceed log p(x).

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1.
    gradient_estimator: "reparam" or "stl" ("dreg" raises: the weights are a step function of z).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  num_samples = checks.check_num_samples(num_samples)
  if gradient_estimator == "dreg":
    raise ValueError(
      "gradient_estimator='dreg' needs weights that are smooth in z; VR-max (alpha=-inf) takes a "
      "max. Use 'reparam' or 'stl', or a finite alpha."
    )

  def value_fn(log_w):
    return tf.reduce_max(log_w, axis=0)

  def weights_fn(log_w):
    one_hot = tf.one_hot(tf.argmax(log_w, axis=0), tf.shape(log_w)[0], axis=0, dtype=log_w.dtype)
    return _same(one_hot, one_hot)

  return _estimate(model, x, num_samples, value_fn, weights_fn, gradient_estimator, seed, return_terms)


def _grouped(log_w: tf.Tensor, num_groups: int) -> tf.Tensor:
  """[M * K, B] -> [M, K, B], draw m * K + k in group m."""
  return tf.reshape(log_w, tf.concat([[num_groups, -1], tf.shape(log_w)[1:]], axis=0))


def _miwae_weights(log_w: tf.Tensor, num_groups: int) -> tuple[tf.Tensor, tf.Tensor]:
  """MIWAE's g (softmax within each group / M) and DReG weight (its square times M), both [M * K, B]."""
  normalized = tf.math.softmax(_grouped(log_w, num_groups), axis=1)
  weights = tf.reshape(normalized, tf.shape(log_w)) / float(num_groups)
  return weights, float(num_groups) * tf.square(weights)


def _check_groups(num_groups, num_samples) -> tuple[int, int]:
  return checks.check_num_samples(num_groups, "num_groups"), checks.check_num_samples(num_samples, "num_samples")


def miwae(
  model,
  x: tf.Tensor,
  num_groups: int,
  num_samples: int,
  gradient_estimator: str = "reparam",
  *,
  seed: Seed = None,
  return_terms: bool = False,
):
  """The multiply importance weighted bound MIWAE_M,K per example (Rainforth et al. 2018).

  ```none
  MIWAE_M,K(x) = (1/M) sum_m log (1/K) sum_k w_mk,   M * K draws z_mk ~ q(z|x)
  ```

  the mean of M independent IWAE_K bounds: M = 1 is IWAE_K, K = 1 the M-sample ELBO.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_groups: Python int M >= 1.
    num_samples: Python int K >= 1, importance samples per group (M * K draws in all).
    gradient_estimator: "reparam", "stl" or "dreg" (encoder weight w~_mk^2 / M within each group).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  num_groups, num_samples = _check_groups(num_groups, num_samples)

  def value_fn(log_w):
    return tf.reduce_mean(_log_mean_exp(_grouped(log_w, num_groups), axis=1), axis=0)

  def weights_fn(log_w):
    return _same(*_miwae_weights(log_w, num_groups))

  return _estimate(model, x, num_groups * num_samples, value_fn, weights_fn, gradient_estimator, seed, return_terms)


def piwae(
  model,
  x: tf.Tensor,
  num_groups: int,
  num_samples: int,
  gradient_estimator: str = "reparam",
  *,
  seed: Seed = None,
  return_terms: bool = False,
):
  """The partially importance weighted estimator PIWAE_M,K (Rainforth et al. 2018).

  From the same M * K draws, decoder and prior parameters get the gradient of IWAE_MK (all draws
  in one tighter bound) and encoder parameters the gradient of MIWAE_M,K (whose encoder gradient
  has a higher signal-to-noise ratio). The value returned is IWAE_MK.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_groups: Python int M >= 1.
    num_samples: Python int K >= 1, importance samples per group.
    gradient_estimator: "reparam", "stl" or "dreg" (applies to the encoder's MIWAE gradient).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  num_groups, num_samples = _check_groups(num_groups, num_samples)

  def weights_fn(log_w):
    encoder, encoder_dreg = _miwae_weights(log_w, num_groups)
    return _Weights(decoder=tf.math.softmax(log_w, axis=0), encoder=encoder, encoder_dreg=encoder_dreg)

  return _estimate(
    model, x, num_groups * num_samples, _log_mean_exp, weights_fn, gradient_estimator, seed, return_terms, split=True
  )


def ciwae(
  model,
  x: tf.Tensor,
  num_samples: int,
  beta: float,
  gradient_estimator: str = "reparam",
  *,
  seed: Seed = None,
  return_terms: bool = False,
):
  """The combination CIWAE_beta = beta * ELBO + (1 - beta) * IWAE_K per example (Rainforth et al. 2018).

  Both terms use the same K draws; the ELBO here is (1/K) sum_k log w_k (a Monte Carlo KL).
  beta = 1 is that ELBO, beta = 0 IWAE_K.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1.
    beta: Python float in [0, 1].
    gradient_estimator: "reparam", "stl" or "dreg" (encoder weight beta / K + (1 - beta) w~_k^2).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  beta = _check_beta(beta)
  num_samples = checks.check_num_samples(num_samples)

  def value_fn(log_w):
    return beta * tf.reduce_mean(log_w, axis=0) + (1.0 - beta) * _log_mean_exp(log_w)

  def weights_fn(log_w):
    normalized = tf.math.softmax(log_w, axis=0)
    uniform = beta * tf.ones_like(log_w) / tf.cast(tf.shape(log_w)[0], log_w.dtype)
    return _same(uniform + (1.0 - beta) * normalized, uniform + (1.0 - beta) * tf.square(normalized))

  return _estimate(model, x, num_samples, value_fn, weights_fn, gradient_estimator, seed, return_terms)
