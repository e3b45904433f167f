"""Multi-sample bounds as small objects: a value from the log weights, and its gradient weights.

A `MultiSampleBound` is a function f of N log importance weights log w_k = log p(x, z_k) -
log q(z_k|x) per example, [N, B] -> [B]. It says how many draws it needs for a given `num_samples`,
its value, and the weights each gradient estimator of `tfpvi.objectives.estimate` uses:
`weights` (g_k = d f / d log w_k, by autodiff unless a closed form is given), `encoder_weights`
(the same, unless the encoder follows another bound, as in PIWAE) and `dreg_weights` (g_k -
d g_k / d log w_k, the DReG encoder weight; only smooth bounds define it). A new bound is a new
subclass that defines `value`, and `dreg_weights` if DReG should apply to it.

```none
IWAE_K(x)     = log (1/K) sum_k w_k                                (Burda et al. 2016)
ELBO_K(x)     = (1/K) sum_k log w_k                                (a Monte Carlo KL)
VR_alpha(x)   = 1 / (1 - alpha) * log (1/K) sum_k w_k^(1 - alpha)  (Li & Turner 2016)
VR_max(x)     = max_k log w_k                                      (alpha -> -inf)
MIWAE_M,K(x)  = (1/M) sum_m log (1/K) sum_k w_mk                   (Rainforth et al. 2018)
CIWAE_beta(x) = beta * ELBO_K(x) + (1 - beta) * IWAE_K(x)
PIWAE_M,K     = decoder and prior trained on IWAE_MK, encoder trained on MIWAE_M,K (same M*K draws)
```

Special cases (tested): VR_0 = IWAE_K; VR_alpha -> ELBO_K as alpha -> 1, and `Renyi(alpha=1)` is
ELBO_K; MIWAE_1,K = IWAE_K; MIWAE_M,1 = ELBO_M; CIWAE_1 = ELBO_K, CIWAE_0 = IWAE_K. For 0 <= alpha
<= 1, VR_alpha lies between ELBO_K and IWAE_K and is a lower bound on log p(x) in expectation; for
alpha < 0 (VR-max included) it is not: its expectation may exceed log p(x).

DReG encoder weights: w~_k^2 for IWAE (Tucker et al.), alpha w~_k + (1 - alpha) w~_k^2 with
w~ = softmax((1 - alpha) log w) for VR_alpha, beta / K + (1 - beta) w~_k^2 for CIWAE; none for
VR-max (its weights jump with z).

References:
  Burda, Grosse, Salakhutdinov. Importance weighted autoencoders. ICLR 2016.
  Li, Turner. Renyi divergence variational inference. NeurIPS 2016.
  Rainforth, Kosiorek, Le, Maddison, Igl, Wood, Teh. Tighter variational bounds are not necessarily
    better. ICML 2018.
  Tucker, Lawson, Gu, Maddison. Doubly reparameterized gradient estimators for Monte Carlo
    objectives. ICLR 2019.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Union

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.objectives.estimators import GradientEstimator, estimate
from tfpvi.types import Seed

__all__ = ["CIWAE", "ELBO", "IWAE", "MIWAE", "PIWAE", "MultiSampleBound", "Renyi", "VRMax"]


def _log_mean_exp(log_w: tf.Tensor, axis: int = 0) -> tf.Tensor:
  return tfp.math.reduce_logmeanexp(log_w, axis=axis)


class MultiSampleBound:
  """A per-example objective f(log w_1..N) of N log importance weights (see the module docstring).

  Subclasses define `value`; the rest has defaults. Calling a bound evaluates it on a model:
  `IWAE()(model, x, num_samples=5, gradient_estimator="dreg")` is
  `tfpvi.objectives.estimate(IWAE(), model, x, num_samples=5, gradient_estimator="dreg")`.
  """

  def __repr__(self) -> str:  # the dataclass bounds print their fields; a plain subclass its name
    return f"{type(self).__name__}()"

  def num_draws(self, num_samples: int) -> int:
    """How many z ~ q(z|x) the bound draws per example for `num_samples` (K by default)."""
    return checks.check_num_samples(num_samples)

  def value(self, log_w: tf.Tensor) -> tf.Tensor:
    """The bound, [N, B] log weights -> [B] nats."""
    raise NotImplementedError(f"{type(self).__name__} must define value(log_w): [N, B] log weights -> [B] nats.")

  def weights(self, log_w: tf.Tensor) -> tf.Tensor:
    """g_k = d value / d log w_k, [N, B]: the decoder's and prior's gradient weights (autodiff by default)."""
    with tf.GradientTape() as tape:
      tape.watch(log_w)
      total = tf.reduce_sum(self.value(log_w))
    return tape.gradient(total, log_w)

  def encoder_weights(self, log_w: tf.Tensor) -> tf.Tensor:
    """The encoder's gradient weights, [N, B]; `weights` unless the encoder follows another bound."""
    return self.weights(log_w)

  def dreg_weights(self, log_w: tf.Tensor) -> tf.Tensor:
    """g_k - d g_k / d log w_k, [N, B]: the encoder's weight under DReG (smooth bounds only)."""
    raise NotImplementedError

  @property
  def splits_gradients(self) -> bool:
    """True if the encoder's weights differ from the decoder's (then every estimator splits log w)."""
    return type(self).encoder_weights is not MultiSampleBound.encoder_weights

  @property
  def supports_dreg(self) -> bool:
    """True if the bound defines `dreg_weights`."""
    return type(self).dreg_weights is not MultiSampleBound.dreg_weights

  def check_estimator(self, estimator: GradientEstimator, num_draws: int) -> None:
    """Raises ValueError if `estimator` does not apply to this bound with `num_draws` draws."""
    if estimator is GradientEstimator.DREG and not self.supports_dreg:
      raise ValueError(
        f"gradient_estimator='dreg' needs the bound's DReG weights, and {self!r} defines none "
        "(define dreg_weights(log_w), smooth in log w); use 'reparam' or 'stl'."
      )
    if estimator is GradientEstimator.VIMCO and num_draws < 2:
      raise ValueError(
        f"gradient_estimator='vimco' needs num_samples >= 2, got {num_draws}: its baseline leaves one draw out."
      )

  def __call__(
    self,
    model,
    x: tf.Tensor,
    *,
    num_samples: int,
    gradient_estimator: Union[str, GradientEstimator] = GradientEstimator.REPARAM,
    seed: Seed = None,
    return_terms: bool = False,
  ):
    """`tfpvi.objectives.estimate(self, model, x, ...)`."""
    return estimate(
      self,
      model,
      x,
      num_samples=num_samples,
      gradient_estimator=gradient_estimator,
      seed=seed,
      return_terms=return_terms,
    )


@dataclasses.dataclass(frozen=True)
class IWAE(MultiSampleBound):
  """The importance-weighted bound log (1/K) sum_k w_k (Burda et al. 2016)."""

  def value(self, log_w):
    return _log_mean_exp(log_w)

  def weights(self, log_w):
    return tf.math.softmax(log_w, axis=0)

  def dreg_weights(self, log_w):
    return tf.square(tf.math.softmax(log_w, axis=0))


@dataclasses.dataclass(frozen=True)
class ELBO(MultiSampleBound):
  """The K-sample ELBO (1/K) sum_k log w_k: E_q[log p(x|z)] - KL with a Monte Carlo KL."""

  def value(self, log_w):
    return tf.reduce_mean(log_w, axis=0)

  def weights(self, log_w):
    return tf.ones_like(log_w) / tf.cast(tf.shape(log_w)[0], log_w.dtype)

  def dreg_weights(self, log_w):
    return self.weights(log_w)


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


@dataclasses.dataclass(frozen=True)
class Renyi(MultiSampleBound):
  """The Renyi bound VR_alpha = 1 / (1 - alpha) log (1/K) sum_k w_k^(1 - alpha) (Li & Turner 2016).

  alpha = 0 is IWAE, alpha = 1 (the limit) the K-sample ELBO; alpha = -inf is `VRMax`.
  """

  alpha: float

  def __post_init__(self):
    object.__setattr__(self, "alpha", _check_alpha(self.alpha))
    if self.alpha == -math.inf:
      raise ValueError("Renyi(alpha=-inf) is VR-max: use tfpvi.objectives.VRMax() (renyi(..., alpha=-inf) does).")

  def value(self, log_w):
    if self.alpha == 1.0:
      return tf.reduce_mean(log_w, axis=0)
    return _log_mean_exp((1.0 - self.alpha) * log_w) / (1.0 - self.alpha)

  def weights(self, log_w):
    if self.alpha == 1.0:
      return ELBO().weights(log_w)
    return tf.math.softmax((1.0 - self.alpha) * log_w, axis=0)

  def dreg_weights(self, log_w):
    normalized = self.weights(log_w)
    return self.alpha * normalized + (1.0 - self.alpha) * tf.square(normalized)


@dataclasses.dataclass(frozen=True)
class VRMax(MultiSampleBound):
  """VR-max, max_k log w_k: the alpha -> -inf limit of `Renyi`. Not a lower bound on log p(x)."""

  def value(self, log_w):
    return tf.reduce_max(log_w, axis=0)

  def weights(self, log_w):
    return tf.one_hot(tf.argmax(log_w, axis=0), tf.shape(log_w)[0], axis=0, dtype=log_w.dtype)

  def check_estimator(self, estimator, num_draws):
    if estimator is GradientEstimator.DREG:
      raise ValueError(
        "gradient_estimator='dreg' needs weights that are smooth in z; VR-max (alpha=-inf) takes a "
        "max. Use 'reparam' or 'stl', or a finite alpha."
      )
    super().check_estimator(estimator, num_draws)


def _grouped(log_w: tf.Tensor, num_groups: int) -> tf.Tensor:
  """[M * K, B] -> [M, K, B], draw m * K + k in group m."""
  return tf.reshape(log_w, tf.concat([[num_groups, -1], tf.shape(log_w)[1:]], axis=0))


@dataclasses.dataclass(frozen=True)
class _Grouped(MultiSampleBound):
  """A bound over M groups of K draws each (M * K draws in all): MIWAE and PIWAE."""

  num_groups: int

  def __post_init__(self):
    object.__setattr__(self, "num_groups", checks.check_num_samples(self.num_groups, "num_groups"))

  def num_draws(self, num_samples):
    return self.num_groups * checks.check_num_samples(num_samples)


@dataclasses.dataclass(frozen=True)
class MIWAE(_Grouped):
  """MIWAE_M,K = (1/M) sum_m log (1/K) sum_k w_mk, M * K draws (Rainforth et al. 2018)."""

  def value(self, log_w):
    return tf.reduce_mean(_log_mean_exp(_grouped(log_w, self.num_groups), axis=1), axis=0)

  def weights(self, log_w):
    normalized = tf.math.softmax(_grouped(log_w, self.num_groups), axis=1)
    return tf.reshape(normalized, tf.shape(log_w)) / float(self.num_groups)

  def dreg_weights(self, log_w):
    return float(self.num_groups) * tf.square(self.weights(log_w))


@dataclasses.dataclass(frozen=True)
class PIWAE(_Grouped):
  """PIWAE_M,K: decoder and prior on IWAE_MK, encoder on MIWAE_M,K, same draws (Rainforth et al. 2018).

  Its value is IWAE_MK.
  """

  def value(self, log_w):
    return IWAE().value(log_w)

  def weights(self, log_w):
    return IWAE().weights(log_w)

  def encoder_weights(self, log_w):
    return MIWAE(self.num_groups).weights(log_w)

  def dreg_weights(self, log_w):
    return MIWAE(self.num_groups).dreg_weights(log_w)


@dataclasses.dataclass(frozen=True)
class CIWAE(MultiSampleBound):
  """CIWAE_beta = beta * ELBO_K + (1 - beta) * IWAE_K, same K draws (Rainforth et al. 2018)."""

  beta: float

  def __post_init__(self):
    object.__setattr__(self, "beta", _check_beta(self.beta))

  def value(self, log_w):
    return self.beta * ELBO().value(log_w) + (1.0 - self.beta) * IWAE().value(log_w)

  def weights(self, log_w):
    return self.beta * ELBO().weights(log_w) + (1.0 - self.beta) * IWAE().weights(log_w)

  def dreg_weights(self, log_w):
    return self.beta * ELBO().weights(log_w) + (1.0 - self.beta) * IWAE().dreg_weights(log_w)
