"""The objectives as functions: elbo, iwae, renyi, vr_max, miwae, piwae, ciwae, and the KL.

Each is `tfpvi.objectives.estimate` with one `MultiSampleBound` (only `elbo` with an analytic KL
is not a function of the log weights). All options after the data are keyword-only.
"""

from __future__ import annotations

import math
from typing import Union

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.objectives import bounds
from tfpvi.objectives.estimators import GradientEstimator, check_reparameterized, estimate
from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = ["ciwae", "elbo", "iwae", "kl_divergence", "miwae", "piwae", "renyi", "vr_max"]

Estimator = Union[str, GradientEstimator]
_KL_METHODS = ("auto", "analytic", "monte_carlo")


def _check_kl(method: str) -> str:
  if method not in _KL_METHODS:
    raise ValueError(f"kl must be one of {_KL_METHODS}, got {method!r}.")
  return method


def kl_divergence(posterior: tfd.Distribution, prior: tfd.Distribution, z, *, method: str = "auto") -> tf.Tensor:
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

  Example:

  >>> import tensorflow_probability as tfp
  >>> tfd = tfp.distributions
  >>> q, p = tfd.Normal([1.0], [1.0]), tfd.Normal([0.0], [1.0])
  >>> float(kl_divergence(q, p, q.sample(3, seed=1))[0])  # (1 - 0)^2 / 2
  0.5
  """
  method = _check_kl(method)
  joint = isinstance(posterior, tfd.JointDistribution) or isinstance(prior, tfd.JointDistribution)
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
  *,
  num_samples: int = 1,
  beta: Union[float, tf.Tensor] = 1.0,
  kl: str = "auto",
  gradient_estimator: Estimator = GradientEstimator.REPARAM,
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
  2017). With a Monte Carlo KL and beta = 1 this is `estimate(ELBO(), ...)`.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int >= 1, Monte Carlo samples per example.
    beta: weight of the KL term, a float or scalar Tensor (a schedule evaluated by the caller).
    kl: "auto", "analytic" or "monte_carlo".
    gradient_estimator: "reparam", or another `GradientEstimator` ("stl": Roeder et al. 2017, the
      Monte Carlo KL with log q's score term removed from the gradient); every estimator but
      "reparam" uses the Monte Carlo KL, so `kl` must then not be "analytic".
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).

  Raises:
    ValueError: on an unknown option, or if q(z|x) is not fully reparameterized.

  Examples:
    With q(z|x) the exact posterior, the ELBO is log p(x) (the KL to the posterior is 0).

    >>> import tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> model = truth.as_vae()  # q = p(z|x)
    >>> terms = elbo(model, x, num_samples=4, seed=[0, 1], return_terms=True)
    >>> sorted(terms), terms["objective"].shape
    (['kl', 'log_likelihood', 'objective'], TensorShape([3]))
    >>> bool(tf.reduce_max(tf.abs(terms["objective"] - truth.log_marginal(x))) < 1e-3)
    True
  """
  estimator = GradientEstimator.of(gradient_estimator)
  kl = _check_kl(kl)
  if estimator is not GradientEstimator.REPARAM and kl == "analytic":
    raise ValueError(f"gradient_estimator={estimator.value!r} needs the Monte Carlo KL; got kl='analytic'.")
  if estimator is not GradientEstimator.REPARAM or kl == "monte_carlo":
    terms = estimate(
      bounds.ELBO(), model, x, num_samples=num_samples, gradient_estimator=estimator, seed=seed, return_terms=True
    )
    log_likelihood, kl_value = terms["log_likelihood"], terms["kl"]
  else:
    q, z = model.sample_posterior(x, num_samples, seed=seed)
    check_reparameterized(q, estimator)
    terms = model.log_weight_terms(x, z, q)
    log_likelihood = tf.reduce_mean(terms.log_likelihood, axis=0)
    kl_value = kl_divergence(q, model.prior, z, method=kl)
  value = log_likelihood - tf.cast(beta, log_likelihood.dtype) * kl_value
  if return_terms:
    return {"objective": value, "log_likelihood": log_likelihood, "kl": kl_value}
  return value


def iwae(
  model,
  x: tf.Tensor,
  *,
  num_samples: int,
  gradient_estimator: Estimator = GradientEstimator.REPARAM,
  seed: Seed = None,
  return_terms: bool = False,
):
  """The importance-weighted bound per example (Burda et al. 2016): `estimate(IWAE(), ...)`.

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
    w the normalized weights. The decoder and prior run on 2K samples.
  - "vimco": for q that cannot be reparameterized (Mnih & Rezende 2016). Encoder parameters get
    sum_k (L - L_{-k}) grad log q(z_k) + sum_k w_k grad log w_k, where L_{-k} replaces w_k in the
    bound by the geometric mean of the other K - 1 weights; decoder and prior parameters get
    sum_k w_k grad log w_k. Needs K >= 2.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1 (>= 2 for "vimco").
    gradient_estimator: a `GradientEstimator` or its name: "reparam", "stl", "dreg", "vimco".
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

  Examples:
    A worse q, and the bound tightens with K towards log p(x).

    >>> import tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> model = truth.as_vae(lambda x: tfd.MultivariateNormalDiag(tf.zeros([tf.shape(x)[0], 2])))  # q = p(z)
    >>> gaps = [float(tf.reduce_mean(truth.log_marginal(x) - iwae(model, x, num_samples=k, seed=[0, k])))
    ...         for k in (1, 100)]
    >>> gaps[0] > 10 * abs(gaps[1])
    True
  """
  return estimate(
    bounds.IWAE(),
    model,
    x,
    num_samples=num_samples,
    gradient_estimator=gradient_estimator,
    seed=seed,
    return_terms=return_terms,
  )


def renyi(
  model,
  x: tf.Tensor,
  *,
  num_samples: int,
  alpha: float,
  gradient_estimator: Estimator = GradientEstimator.REPARAM,
  seed: Seed = None,
  return_terms: bool = False,
):
  """The Renyi variational bound VR_alpha per example (Li & Turner 2016): `estimate(Renyi(alpha), ...)`.

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
    gradient_estimator: a `GradientEstimator` ("dreg" needs a finite alpha).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).

  Raises:
    ValueError: on a bad alpha, estimator or num_samples, or a q that is not reparameterized.

  Examples:
    Alpha = 0 is IWAE, on the same draws.

    >>> import tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> model = truth.as_vae(lambda x: tfd.MultivariateNormalDiag(tf.zeros([tf.shape(x)[0], 2])))
    >>> vr0 = renyi(model, x, num_samples=8, alpha=0.0, seed=[0, 3])
    >>> bool(tf.reduce_all(tf.abs(vr0 - iwae(model, x, num_samples=8, seed=[0, 3])) < 1e-5))
    True
  """
  alpha = bounds._check_alpha(alpha)
  bound = bounds.VRMax() if alpha == -math.inf else bounds.Renyi(alpha)
  return estimate(
    bound,
    model,
    x,
    num_samples=num_samples,
    gradient_estimator=gradient_estimator,
    seed=seed,
    return_terms=return_terms,
  )


def vr_max(
  model,
  x: tf.Tensor,
  *,
  num_samples: int,
  gradient_estimator: Estimator = GradientEstimator.REPARAM,
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
    gradient_estimator: "reparam", "stl" or "vimco" ("dreg" raises: the weights are a step function of z).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  return estimate(
    bounds.VRMax(),
    model,
    x,
    num_samples=num_samples,
    gradient_estimator=gradient_estimator,
    seed=seed,
    return_terms=return_terms,
  )


def miwae(
  model,
  x: tf.Tensor,
  *,
  num_groups: int,
  num_samples: int,
  gradient_estimator: Estimator = GradientEstimator.REPARAM,
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
    gradient_estimator: a `GradientEstimator` ("dreg": encoder weight w~_mk^2 / M within each group).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).

  Examples:
    M groups of K draws; one group is IWAE_K.

    >>> import tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> model = truth.as_vae(lambda x: tfd.MultivariateNormalDiag(tf.zeros([tf.shape(x)[0], 2])))
    >>> miwae(model, x, num_groups=4, num_samples=8, seed=[0, 4]).shape
    TensorShape([3])
    >>> one = miwae(model, x, num_groups=1, num_samples=8, seed=[0, 4])
    >>> bool(tf.reduce_all(tf.abs(one - iwae(model, x, num_samples=8, seed=[0, 4])) < 1e-5))
    True
  """
  return estimate(
    bounds.MIWAE(num_groups),
    model,
    x,
    num_samples=num_samples,
    gradient_estimator=gradient_estimator,
    seed=seed,
    return_terms=return_terms,
  )


def piwae(
  model,
  x: tf.Tensor,
  *,
  num_groups: int,
  num_samples: int,
  gradient_estimator: Estimator = GradientEstimator.REPARAM,
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
    gradient_estimator: a `GradientEstimator` (applies to the encoder's MIWAE gradient).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  return estimate(
    bounds.PIWAE(num_groups),
    model,
    x,
    num_samples=num_samples,
    gradient_estimator=gradient_estimator,
    seed=seed,
    return_terms=return_terms,
  )


def ciwae(
  model,
  x: tf.Tensor,
  *,
  num_samples: int,
  beta: float,
  gradient_estimator: Estimator = GradientEstimator.REPARAM,
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
    gradient_estimator: a `GradientEstimator` ("dreg": encoder weight beta / K + (1 - beta) w~_k^2).
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).

  Examples:
    Beta = 1 is the K-sample ELBO with a Monte Carlo KL.

    >>> import tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> model = truth.as_vae(lambda x: tfd.MultivariateNormalDiag(tf.zeros([tf.shape(x)[0], 2])))
    >>> c1 = ciwae(model, x, num_samples=6, beta=1.0, seed=[0, 5])
    >>> mc = elbo(model, x, num_samples=6, kl="monte_carlo", seed=[0, 5])
    >>> bool(tf.reduce_all(tf.abs(c1 - mc) < 1e-4))
    True
  """
  return estimate(
    bounds.CIWAE(beta),
    model,
    x,
    num_samples=num_samples,
    gradient_estimator=gradient_estimator,
    seed=seed,
    return_terms=return_terms,
  )
