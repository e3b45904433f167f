"""Gradient estimators for multi-sample bounds, and the one engine that applies them.

Every objective in `tfpvi.objectives` is a function f of K log importance weights
log w_k = log p(x, z_k) - log q(z_k|x), z_k ~ q(z|x) (a `MultiSampleBound`), and every gradient
estimator is a way to turn f into a surrogate whose value is f and whose gradient is the
estimator's. `estimate` is the only place where that happens.

#### The estimators (`GradientEstimator`)

With g_k = d f / d log w_k (stopped):

- REPARAM ("reparam"): gradients of f through z ~ q(z|x). q must be fully reparameterized
  (`check_reparameterized`).
- STL ("stl"): sticking the landing (Roeder et al. 2017): the score term d log q / d phi (z held
  fixed) is removed from the encoder's gradient (`stl_log_prob`).
- DREG ("dreg"): doubly reparameterized (Tucker et al. 2019), generalised to any smooth f:
  E[g_k d log q(z_k) / d phi] = E[(d g_k / d log w_k)(d log w_k / d z_k)(d z_k / d phi)], so the
  encoder gets sum_k (g_k - d g_k / d log w_k)(d log w_k / d z_k)(d z_k / d phi) (the bound's
  `dreg_weights`) and the decoder and prior sum_k g_k grad log w_k.
- VIMCO ("vimco"): a score-function estimator for q that cannot be reparameterized (Mnih & Rezende
  2016), generalised to any f: the encoder gets sum_k (f - f_{-k}) grad log q(z_k) plus the
  gradient of f through log q, where f_{-k} replaces log w_k by the mean of the other K - 1 log
  weights (a baseline that does not depend on z_k). Needs K >= 2.

Strings name the estimators everywhere an option takes one: `GradientEstimator("dreg")` is
`GradientEstimator.DREG`, and `GradientEstimator.DREG == "dreg"`.

References:
  Roeder, Wu, Duvenaud. Sticking the landing: simple, lower-variance gradient estimators for
    variational inference. NeurIPS 2017.
  Tucker, Lawson, Gu, Maddison. Doubly reparameterized gradient estimators for Monte Carlo
    objectives. ICLR 2019.
  Mnih, Rezende. Variational inference for Monte Carlo objectives. ICML 2016.
"""

from __future__ import annotations

import enum
from typing import Union

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = ["GradientEstimator", "check_reparameterized", "estimate", "stl_log_prob"]


class GradientEstimator(str, enum.Enum):
  """The gradient estimators of the multi-sample bounds (see the module docstring).

  A `str` enum, in the manner of `tfp.vi.GradientEstimators`: `GradientEstimator("stl")` is
  `GradientEstimator.STL`, and every option that takes an estimator takes either.
  """

  REPARAM = "reparam"
  STL = "stl"
  DREG = "dreg"
  VIMCO = "vimco"

  @classmethod
  def of(cls, value: Union[str, GradientEstimator]) -> GradientEstimator:
    """The estimator named by `value`; a ValueError lists the names otherwise."""
    try:
      return cls(value)
    except ValueError:
      names = ", ".join(repr(e.value) for e in cls)
      raise ValueError(
        f"gradient_estimator must be one of {names} (or a tfpvi.objectives.GradientEstimator), got {value!r}."
      ) from None

  @property
  def reparameterized(self) -> bool:
    """True if the estimator differentiates through samples of q (all but VIMCO)."""
    return self is not GradientEstimator.VIMCO

  def __str__(self) -> str:
    return self.value


def check_reparameterized(distribution: tfd.Distribution, estimator: Union[str, GradientEstimator]) -> None:
  """Raises ValueError unless every component of `distribution` is fully reparameterized.

  Args:
    distribution: q(z|x), possibly a joint distribution (one reparameterization type per part).
    estimator: the estimator, for the message.
  """
  types = tf.nest.flatten(distribution.reparameterization_type)
  if all(t == tfd.FULLY_REPARAMETERIZED for t in types):
    return
  raise ValueError(
    f"gradient_estimator={str(estimator)!r} differentiates through samples of q(z|x), which needs "
    f"q.reparameterization_type == FULLY_REPARAMETERIZED; got q = {type(distribution).__name__} with "
    f"reparameterization_type {distribution.reparameterization_type}. Use "
    "tfpvi.objectives.iwae(..., gradient_estimator='vimco') for latents that cannot be "
    "reparameterized (e.g. tfd.OneHotCategorical), or a relaxation (tfd.RelaxedOneHotCategorical)."
  )


def stl_log_prob(distribution: tfd.Distribution, z) -> tf.Tensor:
  """log q(z) whose gradient is the path derivative only (sticking the landing).

  ```none
  lq      = log q_phi(z(eps, phi))        # total derivative: path + score
  lq_stop = log q_phi(stop_gradient(z))   # score only: d log q_phi(z) / d phi at fixed z
  stl     = stop_gradient(lq) + (lq - lq_stop) - stop_gradient(lq - lq_stop)
  ```

  so that the value is exactly lq and the gradient is d lq - d lq_stop = (d log q / d z)(d z / d phi).

  Unlike rebuilding q from its `parameters` with gradients stopped, this sees parameters held
  anywhere (networks inside bijectors, lambdas of joint distributions). `z` must be the very
  object `distribution.sample` returned, so that a flow's bijector cache gives log q along the
  sampling path; log q at the stopped z calls the flow's inverse (sequential for an inverse
  autoregressive flow).

  Args:
    distribution: a reparameterized q(z|x).
    z: a sample of `distribution` (a Tensor or a nest), [S, B, ...].

  Returns:
    float Tensor [S, B]: log q(z), with the score term removed from its gradient.

  References:
    Roeder, Wu, Duvenaud. Sticking the landing: simple, lower-variance gradient estimators for
      variational inference. NeurIPS 2017.
  """
  log_q = distribution.log_prob(z)
  log_q_stopped = distribution.log_prob(tf.nest.map_structure(tf.stop_gradient, z))
  return _with_value(log_q, log_q - log_q_stopped)


def _with_value(value: tf.Tensor, surrogate: tf.Tensor) -> tf.Tensor:
  """`value` in the forward pass, the gradient of `surrogate` in the backward pass."""
  return tf.stop_gradient(value) + surrogate - tf.stop_gradient(surrogate)


def estimate(
  bound,
  model,
  x: tf.Tensor,
  *,
  num_samples: int,
  gradient_estimator: Union[str, GradientEstimator] = GradientEstimator.REPARAM,
  seed: Seed = None,
  return_terms: bool = False,
):
  """`bound` per example, with the gradients of `gradient_estimator`: the one estimator engine.

  Draws `bound.num_draws(num_samples)` z ~ q(z|x), computes their log weights with
  `model.log_weight_terms`, and returns `bound.value(log_w)`. Under REPARAM and STL, for a bound
  whose encoder and decoder share their gradient weights, the gradients are autodiff's through
  the value. Otherwise (DREG, PIWAE-like bounds) the decoder and prior run on 2N samples, [z,
  stop_gradient(z)], and log w is decomposed as

  ```none
  log w = A + P + C,  A = log p(x, stop z)        (decoder and prior parameters)
                      C = -log q(stop z)          (the encoder's score term)
                      P = log w - A - C           (the encoder's path term, through z)
  surrogate = sum_k a_k A_k + b_k P_k + c_k C_k   (a, b, c stopped weights of the estimator)
  ```

  and VIMCO differentiates log q at stopped z with the leave-one-out learning signal.

  Args:
    bound: a `tfpvi.objectives.MultiSampleBound` (e.g. `IWAE()`, `Renyi(alpha=0.5)`).
    model: a `tfpvi.VAE` (anything with `sample_posterior` and `log_weight_terms`).
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1, the bound's sample count.
    gradient_estimator: a `GradientEstimator` or its name.
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}: the bound and the sample
      means of log p(x|z) and log q - log p, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).

  Raises:
    ValueError: on an unknown estimator, one the bound does not support (DReG of a non-smooth
      bound, VIMCO with fewer than 2 draws), or a q that is not reparameterized under a
      reparameterized estimator.

  Examples:
    Any bound with any estimator; the estimator changes gradients, never the value.

    >>> import tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> model = truth.as_vae()
    >>> values = [estimate(tfpvi.objectives.Renyi(0.5), model, x, num_samples=4, gradient_estimator=e, seed=[0, 6])
    ...           for e in GradientEstimator]
    >>> bool(max(float(tf.reduce_max(tf.abs(v - values[0]))) for v in values) < 1e-5)
    True
  """
  estimator = GradientEstimator.of(gradient_estimator)
  num_draws = bound.num_draws(num_samples)
  bound.check_estimator(estimator, num_draws)
  q, z = model.sample_posterior(x, num_draws, seed=seed)
  if estimator.reparameterized:
    check_reparameterized(q, estimator)
  if estimator is GradientEstimator.VIMCO:
    value, terms = _vimco(bound, model, x, z, q)
  elif estimator is GradientEstimator.DREG and not bound.splits_gradients:
    value, terms = _dreg(bound, model, x, z, q)
  elif estimator is GradientEstimator.DREG or bound.splits_gradients:
    value, terms = _split(bound, model, x, z, q, estimator)
  else:
    terms = model.log_weight_terms(x, z, stl_log_prob(q, z) if estimator is GradientEstimator.STL else q)
    value = bound.value(terms.log_weights)
  if return_terms:
    return {
      "objective": value,
      "log_likelihood": tf.reduce_mean(terms.log_likelihood, axis=0),
      "kl": tf.reduce_mean(terms.log_posterior - terms.log_prior, axis=0),
    }
  return value


def _dreg(bound, model, x, z, q):
  """DReG with one pass of the decoder (for bounds whose encoder follows the decoder's weights).

  ```none
  surrogate = sum_k g_k log w_k                      g = bound.weights: the decoder's gradient
  d/d phi  = sum_k g_k r_k (d log w_k / d z_k)(d z_k / d phi),   r_k = dreg_weights_k / g_k
  ```

  log q enters with its path derivative only (`stl_log_prob`), and the gradient that reaches each
  z_k (and its log q) on the way back is multiplied by r_k, known once log w is: the encoder gets
  the DReG weights, the decoder and prior the bound's, from one evaluation of log p(x, z) on the
  N draws (`_split` evaluates it on 2N).
  """
  ratio = {}

  @tf.custom_gradient
  def rescaled(t):
    def grad(upstream):
      r = ratio["r"]  # [N, B], set below, before any gradient is asked for
      r = tf.reshape(r, tf.concat([tf.shape(r), tf.ones([tf.rank(upstream) - 2], tf.int32)], 0))
      return upstream * tf.cast(r, upstream.dtype)

    return tf.identity(t), grad

  log_q = rescaled(stl_log_prob(q, z))  # the very z q.sample returned (a flow's cache)
  terms = model.log_weight_terms(x, tf.nest.map_structure(rescaled, z), log_q)
  log_w = terms.log_weights
  fixed = tf.stop_gradient(log_w)
  weights = tf.stop_gradient(bound.weights(fixed))
  positive = weights > 0
  ratio["r"] = tf.where(positive, tf.stop_gradient(bound.dreg_weights(fixed)) / tf.where(positive, weights, 1.0), 0.0)
  surrogate = tf.reduce_sum(weights * log_w, axis=0)
  return _with_value(bound.value(log_w), surrogate), terms


def _split(bound, model, x, z, q, estimator):
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
  fixed = tf.stop_gradient(log_w)
  decoder = tf.stop_gradient(bound.weights(fixed))
  if estimator is GradientEstimator.DREG:
    encoder_path, encoder_score = tf.stop_gradient(bound.dreg_weights(fixed)), 0.0
  else:
    encoder = tf.stop_gradient(bound.encoder_weights(fixed))
    encoder_path, encoder_score = encoder, (0.0 if estimator is GradientEstimator.STL else encoder)
  surrogate = tf.reduce_sum(decoder * generative + encoder_path * path + encoder_score * score, axis=0)
  return _with_value(bound.value(log_w), surrogate), terms


def _vimco(bound, model, x, z, q):
  z = tf.nest.map_structure(tf.stop_gradient, z)
  terms = model.log_weight_terms(x, z, q)
  log_w = terms.log_weights  # [N, B]: gradients to theta and, through log q, to phi
  fixed = tf.stop_gradient(log_w)
  num = tf.shape(fixed)[0]
  value = bound.value(fixed)
  # f_{-k}: f with log w_k replaced by the mean of the other N - 1 log weights.
  others_mean = (tf.reduce_sum(fixed, axis=0, keepdims=True) - fixed) / tf.cast(num - 1, fixed.dtype)  # [N, B]
  eye = tf.eye(num, dtype=tf.bool)[:, :, None]  # [N (left out), N, 1]
  replaced = tf.where(eye, others_mean[:, None, :], fixed[None, :, :])  # [N (left out), N, B]
  by_sample = tf.reshape(tf.transpose(replaced, [1, 0, 2]), tf.stack([num, -1]))  # [N, N * B]
  leave_one_out = tf.reshape(bound.value(by_sample), tf.shape(fixed))  # [N (left out), B]
  learning_signal = tf.stop_gradient(value[None] - leave_one_out)
  decoder = tf.stop_gradient(bound.weights(fixed))
  encoder = tf.stop_gradient(bound.encoder_weights(fixed))
  generative = terms.log_likelihood + terms.log_prior
  surrogate = tf.reduce_sum(decoder * generative + (learning_signal - encoder) * terms.log_posterior, axis=0)
  return _with_value(value, surrogate), terms
