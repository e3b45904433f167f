"""Variational objectives: per-example lower bounds on log p(x), in nats.

Every objective takes a model with `sample_posterior`, `log_weight_terms` and `prior` (a
`tfpvi.VAE`), a batch x [B, ...], and keyword-only options, and returns per-example values [B]:
nats per example, summed over the data dimensions (never a per-pixel mean). Losses are their
negatives; the caller reduces over the batch. With `return_terms=True` an objective returns a dict
whose "objective" entry is that [B] value and whose other entries are [B] terms for logging.
"""

from __future__ import annotations

import math
from typing import Union

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = ["GRADIENT_ESTIMATORS", "elbo", "iwae", "kl_divergence", "stop_gradient_distribution"]

GRADIENT_ESTIMATORS = ("reparam", "stl", "dreg")
_KL_METHODS = ("auto", "analytic", "monte_carlo")


def stop_gradient_distribution(distribution):
  """Returns a copy of `distribution` whose tensor parameters carry no gradient.

  Works for any TFP distribution (and the bijectors and distributions nested in its parameters),
  not only a diagonal Normal: every Tensor or Variable in `parameters` passes through
  `tf.stop_gradient` and the object is rebuilt with `type(d)(**parameters)`. Samples drawn from the
  original keep their reparameterization path; densities of the copy do not depend on its
  parameters. Used by the STL and DReG estimators.
  """

  def stop(value):
    if isinstance(value, (tfd.Distribution, tfp.bijectors.Bijector)):
      return stop_gradient_distribution(value)
    if isinstance(value, (tf.Tensor, tf.Variable)) or tf.is_tensor(value):
      return tf.stop_gradient(value)
    if isinstance(value, (list, tuple)) and any(
        isinstance(v, (tfd.Distribution, tfp.bijectors.Bijector)) or tf.is_tensor(v) for v in value
    ):
      return type(value)(stop(v) for v in value)
    return value

  parameters = {k: stop(v) for k, v in distribution.parameters.items()}
  return type(distribution)(**parameters)


def kl_divergence(
    posterior: tfd.Distribution,
    prior: tfd.Distribution,
    z: tf.Tensor,
    *,
    method: str = "auto",
) -> tf.Tensor:
  """KL(q || p) per example, analytic where TFP has it registered, else Monte Carlo.

  Args:
    posterior: q(z|x), batch shape [B].
    prior: p(z).
    z: [S, B, latent] samples of q, used by the Monte Carlo estimate mean_s(log q - log p).
    method: "auto" (analytic if registered, else Monte Carlo), "analytic" (raise if not
      registered) or "monte_carlo".

  Returns:
    float Tensor [B], nats.
  """
  if method not in _KL_METHODS:
    raise ValueError(f"kl must be one of {_KL_METHODS}, got {method!r}.")
  if method != "monte_carlo":
    try:
      return tfd.kl_divergence(posterior, prior)
    except NotImplementedError as error:
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
    seed: Seed = None,
    return_terms: bool = False,
):
  """The (beta-weighted) evidence lower bound per example.

  ```none
  ELBO_beta(x) = E_q(z|x)[log p(x|z)] - beta * KL(q(z|x) || p(z))
  ```

  The expectation is a Monte Carlo average over `num_samples` reparameterized z; the KL is analytic
  when TFP has one registered for (q, prior) and a Monte Carlo estimate on the same z otherwise
  (`kl` forces either). beta = 1 is the ELBO (Kingma & Welling 2014), beta != 1 the beta-VAE
  objective (Higgins et al. 2017; seed 001 uses beta = 0.01).

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int >= 1, Monte Carlo samples per example.
    beta: weight of the KL term, a float or scalar Tensor (a schedule evaluated by the caller).
    kl: "auto", "analytic" or "monte_carlo".
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  q, z = model.sample_posterior(x, num_samples, seed=seed)
  terms = model.log_weight_terms(x, z, q)
  log_likelihood = tf.reduce_mean(terms.log_likelihood, axis=0)
  if kl == "monte_carlo":
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
  - "stl": sticking the landing (Roeder et al. 2017): log q(z|x) is evaluated with q's parameters
    held constant, dropping the score-function term.
  - "dreg": doubly reparameterized gradients (Tucker et al. 2019): decoder and prior parameters get
    sum_k w_k grad log w_k; encoder parameters get sum_k w_k^2 (d log w_k / d z_k)(d z_k / d phi),
    w the normalized weights. The decoder runs on 2K samples (K with and K without a path to z).

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1.
    gradient_estimator: one of "reparam", "stl", "dreg".
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"} with the bound and the
      sample means of log p(x|z) and log q - log p, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  if gradient_estimator not in GRADIENT_ESTIMATORS:
    raise ValueError(
        f"gradient_estimator must be one of {GRADIENT_ESTIMATORS}, got {gradient_estimator!r}."
    )
  num_samples = checks.check_num_samples(num_samples)
  q, z = model.sample_posterior(x, num_samples, seed=seed)
  if gradient_estimator == "reparam":
    terms = model.log_weight_terms(x, z, q)
    log_weights = terms.log_weights
    value = tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_samples)
  elif gradient_estimator == "stl":
    terms = model.log_weight_terms(x, z, stop_gradient_distribution(q))
    log_weights = terms.log_weights
    value = tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_samples)
  else:
    value, terms = _dreg_bound(model, x, z, q, num_samples)
  if return_terms:
    return {
        "objective": value,
        "log_likelihood": tf.reduce_mean(terms.log_likelihood, axis=0),
        "kl": tf.reduce_mean(terms.log_posterior - terms.log_prior, axis=0),
    }
  return value


def _dreg_bound(model, x, z, q, num_samples):
  """IWAE bound whose gradients are the DReG estimator (see `iwae`)."""
  q_stopped = stop_gradient_distribution(q)
  both = model.log_weight_terms(x, tf.concat([z, tf.stop_gradient(z)], axis=0), q_stopped)
  log_w, log_w_no_path = tf.split(both.log_weights, 2, axis=0)
  weights = tf.stop_gradient(tf.math.softmax(log_w, axis=0))
  # Decoder/prior gradients: sum w grad log w; encoder gradients (via z only): sum w^2 dlogw/dz dz.
  surrogate = tf.reduce_sum(weights * log_w_no_path + tf.square(weights) * (log_w - log_w_no_path), 0)
  value = tf.reduce_logsumexp(log_w, axis=0) - math.log(num_samples)
  terms = type(both)(*(tf.split(t, 2, axis=0)[0] for t in both))
  return tf.stop_gradient(value) + surrogate - tf.stop_gradient(surrogate), terms
