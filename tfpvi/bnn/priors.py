"""Weight priors for Bayesian layers, as `tfd` distributions over one scalar weight.

A prior here is any `tfd.Distribution` with scalar event shape whose batch shape broadcasts against
a weight tensor (usually a scalar distribution applied to every weight independently):
`prior.log_prob(w)` is elementwise and the network's log P(w) is its sum.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["gaussian_prior", "scale_mixture_prior"]


def gaussian_prior(scale: float = 1.0) -> tfd.Distribution:
  """N(0, scale^2) for every weight; TFP has its KL against a Gaussian posterior registered.

  Args:
    scale: the prior standard deviation, > 0.

  Returns:
    a scalar `tfd.Normal`.
  """
  if not scale > 0:
    raise ValueError(f"the prior scale must be > 0, got {scale}.")
  return tfd.Normal(loc=0.0, scale=float(scale), name="GaussianPrior")


def scale_mixture_prior(pi: float = 0.5, sigma1: float = 1.0, sigma2: float = 0.0025) -> tfd.Distribution:
  """Blundell et al.'s scale mixture of two zero-mean Gaussians, a `tfd.MixtureSameFamily`.

  ```none
  P(w) = pi N(w | 0, sigma1^2) + (1 - pi) N(w | 0, sigma2^2),   sigma1 > sigma2, sigma2 << 1
  ```

  The wide component gives heavier tails than one Gaussian; the narrow one concentrates many
  weights near 0. Its KL from a Gaussian posterior has no closed form (the layers estimate it by
  Monte Carlo). The defaults, pi = 1/2, -log sigma1 = 0, -log sigma2 = 6 (sigma2 ~ 0.0025), are in
  the grid of Blundell et al. (2015), section 5.1.

  Args:
    pi: weight of the wide component, in (0, 1).
    sigma1: standard deviation of the wide component.
    sigma2: standard deviation of the narrow component, 0 < sigma2 < sigma1.

  Returns:
    a scalar `tfd.MixtureSameFamily` (batch and event shape []).

  References:
    Blundell, Cornebise, Kavukcuoglu & Wierstra. Weight Uncertainty in Neural Networks. ICML 2015.
  """
  if not 0.0 < pi < 1.0:
    raise ValueError(f"pi must be in (0, 1), got {pi}.")
  if not 0.0 < sigma2 < sigma1:
    raise ValueError(f"expected 0 < sigma2 < sigma1, got sigma1={sigma1}, sigma2={sigma2}.")
  return tfd.MixtureSameFamily(
    mixture_distribution=tfd.Categorical(probs=tf.constant([pi, 1.0 - pi], tf.float32)),
    components_distribution=tfd.Normal(loc=0.0, scale=tf.constant([sigma1, sigma2], tf.float32)),
    name="ScaleMixturePrior",
  )
