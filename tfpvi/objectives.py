"""Variational objectives: per-example lower bounds on log p(x), in nats.

Every objective takes a model with `sample_posterior`, `log_weight_terms` and `prior` (a
`tfpvi.VAE`), a batch x [B, ...], and keyword-only options, and returns per-example values [B]:
nats per example, summed over the data dimensions (never a per-pixel mean). Losses are their
negatives; the caller reduces over the batch. With `return_terms=True` an objective returns a dict
whose "objective" entry is that [B] value and whose other entries are [B] terms for logging.

Latents may be a single Tensor [S, B, ...] or any nest (dict, list) of Tensors with leading
dimensions [S, B], as drawn from a `tfd.JointDistribution*` posterior; every estimator handles both.

#### Gradient estimators and what they need from q(z|x)

- "reparam", "stl", "dreg" differentiate through z ~ q(z|x) and need a fully reparameterized q
  (`q.reparameterization_type == tfd.FULLY_REPARAMETERIZED` for every component); another q raises
  a ValueError that names `reparameterization_type` and suggests "vimco".
- "stl" and "dreg" drop the score term d log q(z|x) / d phi (z held fixed) from the gradient by
  evaluating log q twice, at z (the total derivative, exact for flows thanks to the bijector cache)
  and at tf.stop_gradient(z) (the score only), and cancelling the second: see `stl_log_prob`. This
  holds for any reparameterized q, including flows on networks and joint distributions built from
  lambdas. For an inverse autoregressive flow, log q at the stopped z needs the flow's inverse,
  which is sequential in the latent dimension (correct, but d times slower than sampling).
- "vimco" (Mnih & Rezende 2016) is a score-function estimator with a per-sample leave-one-out
  baseline, for q that cannot be reparameterized (e.g. `tfd.OneHotCategorical`). It needs K >= 2.
"""

from __future__ import annotations

from typing import Union

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = [
  "GRADIENT_ESTIMATORS",
  "check_reparameterized",
  "elbo",
  "iwae",
  "kl_divergence",
  "stl_log_prob",
]

GRADIENT_ESTIMATORS = ("reparam", "stl", "dreg", "vimco")
_ELBO_ESTIMATORS = ("reparam", "stl")
_KL_METHODS = ("auto", "analytic", "monte_carlo")


def check_reparameterized(distribution: tfd.Distribution, estimator: str) -> None:
  """Raises ValueError unless every component of `distribution` is fully reparameterized.

  Args:
    distribution: q(z|x), possibly a joint distribution (one reparameterization type per part).
    estimator: the estimator's name, for the message.
  """
  types = tf.nest.flatten(distribution.reparameterization_type)
  if all(t == tfd.FULLY_REPARAMETERIZED for t in types):
    return
  raise ValueError(
    f"gradient_estimator={estimator!r} differentiates through samples of q(z|x), which needs "
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
  path = log_q - log_q_stopped
  return tf.stop_gradient(log_q) + path - tf.stop_gradient(path)


def _is_joint(distribution) -> bool:
  return isinstance(distribution, tfd.JointDistribution)


def kl_divergence(
  posterior: tfd.Distribution,
  prior: tfd.Distribution,
  z,
  *,
  method: str = "auto",
) -> tf.Tensor:
  """KL(q || p) per example, analytic where TFP has it registered, else Monte Carlo.

  Args:
    posterior: q(z|x), batch shape [B].
    prior: p(z).
    z: [S, B, ...] samples of q (a Tensor or a nest), used by the Monte Carlo estimate
      mean_s(log q - log p).
    method: "auto" (analytic if registered, else Monte Carlo; joint distributions always use
      Monte Carlo), "analytic" (raise if not registered) or "monte_carlo".

  Returns:
    float Tensor [B], nats.
  """
  if method not in _KL_METHODS:
    raise ValueError(f"kl must be one of {_KL_METHODS}, got {method!r}.")
  joint = _is_joint(posterior) or _is_joint(prior)
  if method == "analytic" or (method == "auto" and not joint):
    try:
      return tfd.kl_divergence(posterior, prior)
    except (NotImplementedError, ValueError) as error:
      if method == "analytic":
        raise NotImplementedError(
          f"kl='analytic' but TFP has no KL registered for q = {type(posterior).__name__} and "
          f"p = {type(prior).__name__}; use kl='monte_carlo' or kl='auto'."
        ) from error
  return tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), axis=0)


def elbo(
  model,
  x: tf.Tensor,
  num_samples: int = 1,
  beta: Union[float, tf.Tensor] = 1.0,
  *,
  kl: str = "auto",
  gradient_estimator: str = "reparam",
  seed: Seed = None,
  return_terms: bool = False,
):
  """The (beta-weighted) evidence lower bound per example.

  ```none
  ELBO_beta(x) = E_q(z|x)[log p(x|z)] - beta * KL(q(z|x) || p(z))
  ```

  The expectation is a Monte Carlo average over `num_samples` reparameterized z; the KL is analytic
  when TFP has one registered for (q, prior) and a Monte Carlo estimate on the same z otherwise
  (`kl` forces either; joint distributions and learned mixture priors fall back to Monte Carlo).
  beta = 1 is the ELBO (Kingma & Welling 2014), beta != 1 the beta-VAE objective (Higgins et al.
  2017; seed 001 uses beta = 0.01).

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int >= 1, Monte Carlo samples per example.
    beta: weight of the KL term, a float or scalar Tensor (a schedule evaluated by the caller).
    kl: "auto", "analytic" or "monte_carlo".
    gradient_estimator: "reparam", or "stl" (Roeder et al. 2017: the Monte Carlo KL with log q's
      score term removed from the gradient, see `stl_log_prob`; `kl` must then not be "analytic").
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).

  Raises:
    ValueError: on an unknown option, or if q(z|x) is not fully reparameterized.
  """
  if gradient_estimator not in _ELBO_ESTIMATORS:
    raise ValueError(f"elbo's gradient_estimator must be one of {_ELBO_ESTIMATORS}, got {gradient_estimator!r}.")
  if kl not in _KL_METHODS:
    raise ValueError(f"kl must be one of {_KL_METHODS}, got {kl!r}.")
  if gradient_estimator == "stl" and kl == "analytic":
    raise ValueError("gradient_estimator='stl' needs the Monte Carlo KL; got kl='analytic'.")
  q, z = model.sample_posterior(x, num_samples, seed=seed)
  check_reparameterized(q, gradient_estimator)
  if gradient_estimator == "stl":
    terms = model.log_weight_terms(x, z, stl_log_prob(q, z))
  else:
    terms = model.log_weight_terms(x, z, q)
  log_likelihood = tf.reduce_mean(terms.log_likelihood, axis=0)
  if kl == "monte_carlo" or gradient_estimator == "stl":
    kl_value = tf.reduce_mean(terms.log_posterior - terms.log_prior, axis=0)
  else:
    kl_value = kl_divergence(q, model.prior, z, method=kl)
  value = log_likelihood - tf.cast(beta, log_likelihood.dtype) * kl_value
  if return_terms:
    return {"objective": value, "log_likelihood": log_likelihood, "kl": kl_value}
  return value


def iwae(
  model,
  x: tf.Tensor,
  num_samples: int,
  gradient_estimator: str = "reparam",
  *,
  seed: Seed = None,
  return_terms: bool = False,
):
  """The importance-weighted bound per example (Burda et al. 2016).

  ```none
  IWAE_K(x) = log (1/K) sum_k p(x, z_k) / q(z_k|x),   z_k ~ q(z|x)
  ```

  computed as a log-mean-exp over the leading sample axis. With K = 1 it equals the single-sample
  ELBO with a Monte Carlo KL. The value returned is always the bound; `gradient_estimator` only
  changes its gradients:

  - "reparam": plain reparameterization gradients of the bound.
  - "stl": sticking the landing (Roeder et al. 2017): the score term of log q(z|x) is removed
    (`stl_log_prob`), so encoder gradients are path derivatives only.
  - "dreg": doubly reparameterized gradients (Tucker et al. 2019): decoder and prior parameters get
    sum_k w_k grad log w_k; encoder parameters get sum_k w_k^2 (d log w_k / d z_k)(d z_k / d phi),
    w the normalized weights. The decoder and prior run on 2K samples (K with and K without a path
    to z, concatenated along the sample axis).
  - "vimco": for q that cannot be reparameterized (Mnih & Rezende 2016). Encoder parameters get
    sum_k (L - L_{-k}) grad log q(z_k) + sum_k w_k grad log w_k, where L_{-k} replaces w_k in the
    bound by the geometric mean of the other K - 1 weights; decoder and prior parameters get
    sum_k w_k grad log w_k. Needs K >= 2.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1 (>= 2 for "vimco").
    gradient_estimator: one of "reparam", "stl", "dreg", "vimco".
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"} with the bound and the
      sample means of log p(x|z) and log q - log p, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).

  Raises:
    ValueError: on an unknown estimator, a q that is not reparameterized under "reparam", "stl" or
      "dreg", or K < 2 under "vimco".

  References:
    Burda, Grosse, Salakhutdinov. Importance weighted autoencoders. ICLR 2016.
    Roeder, Wu, Duvenaud. Sticking the landing. NeurIPS 2017.
    Tucker, Lawson, Gu, Maddison. Doubly reparameterized gradient estimators for Monte Carlo
      objectives. ICLR 2019.
    Mnih, Rezende. Variational inference for Monte Carlo objectives. ICML 2016.
  """
  if gradient_estimator not in GRADIENT_ESTIMATORS:
    raise ValueError(f"gradient_estimator must be one of {GRADIENT_ESTIMATORS}, got {gradient_estimator!r}.")
  num_samples = checks.check_num_samples(num_samples)
  if gradient_estimator == "vimco" and num_samples < 2:
    raise ValueError(f"gradient_estimator='vimco' needs num_samples >= 2, got {num_samples}.")
  q, z = model.sample_posterior(x, num_samples, seed=seed)
  if gradient_estimator != "vimco":
    check_reparameterized(q, gradient_estimator)
  if gradient_estimator == "reparam":
    terms = model.log_weight_terms(x, z, q)
    value = _log_mean_exp(terms.log_weights)
  elif gradient_estimator == "stl":
    terms = model.log_weight_terms(x, z, stl_log_prob(q, z))
    value = _log_mean_exp(terms.log_weights)
  elif gradient_estimator == "dreg":
    value, terms = _dreg_bound(model, x, z, q)
  else:
    value, terms = _vimco_bound(model, x, z, q)
  if return_terms:
    return {
      "objective": value,
      "log_likelihood": tf.reduce_mean(terms.log_likelihood, axis=0),
      "kl": tf.reduce_mean(terms.log_posterior - terms.log_prior, axis=0),
    }
  return value


def _log_mean_exp(log_weights: tf.Tensor) -> tf.Tensor:
  """log (1/K) sum_k exp(log_weights[k]), over the sample axis."""
  return tfp.math.reduce_logmeanexp(log_weights, axis=0)


def _with_value(value: tf.Tensor, surrogate: tf.Tensor) -> tf.Tensor:
  """`value` in the forward pass, the gradient of `surrogate` in the backward pass."""
  return tf.stop_gradient(value) + surrogate - tf.stop_gradient(surrogate)


def _dreg_bound(model, x, z, q):
  """IWAE bound whose gradients are the DReG estimator (see `iwae`)."""
  num_samples = tf.shape(tf.nest.flatten(z)[0])[0]
  log_q_path = stl_log_prob(q, z)  # gradient: path only
  z_both = tf.nest.map_structure(lambda a: tf.concat([a, tf.stop_gradient(a)], axis=0), z)
  both = model.log_weight_terms(x, z_both, tf.concat([log_q_path, tf.stop_gradient(log_q_path)], axis=0))
  split = [tf.split(t, [num_samples, num_samples], axis=0) for t in both]
  terms, terms_no_path = type(both)(*(s[0] for s in split)), type(both)(*(s[1] for s in split))
  log_w, log_w_no_path = terms.log_weights, terms_no_path.log_weights
  weights = tf.stop_gradient(tf.math.softmax(log_w, axis=0))
  # Decoder/prior gradients: sum w grad log w (at z without a path); encoder gradients, through z
  # only: sum w^2 (d log w / dz)(dz / dphi), from the difference of the two evaluations.
  surrogate = tf.reduce_sum(weights * log_w_no_path + tf.square(weights) * (log_w - log_w_no_path), 0)
  return _with_value(_log_mean_exp(log_w), surrogate), terms


def _vimco_bound(model, x, z, q):
  """IWAE bound whose gradients are the VIMCO estimator (see `iwae`)."""
  z = tf.nest.map_structure(tf.stop_gradient, z)
  terms = model.log_weight_terms(x, z, q)
  log_w = terms.log_weights  # [K, B]; gradients to theta and, through log q, to phi
  num_samples = tf.shape(log_w)[0]
  k = tf.cast(num_samples, log_w.dtype)
  value = _log_mean_exp(log_w)
  stopped = tf.stop_gradient(log_w)
  # Leave-one-out: replace log w_k by the mean of the other K - 1 log weights (geometric mean).
  others_mean = (tf.reduce_sum(stopped, axis=0, keepdims=True) - stopped) / (k - 1.0)  # [K, B]
  eye = tf.eye(num_samples, dtype=tf.bool)[:, :, None]  # [K (left out), K, 1]
  replaced = tf.where(eye, others_mean[:, None, :], stopped[None, :, :])  # [K, K, B]
  leave_one_out = tf.reduce_logsumexp(replaced, axis=1) - tf.math.log(k)  # [K, B]
  learning_signal = tf.stop_gradient(value)[None] - leave_one_out
  surrogate = value + tf.reduce_sum(learning_signal * terms.log_posterior, axis=0)
  return _with_value(value, surrogate), terms
