"""Bayes by Backprop: Bayesian layers with TFP weight posteriors and priors (Blundell et al. 2015).

- `Linear`, `MLP`: Sonnet modules whose weights have a diagonal Gaussian posterior q(w) (softplus
  scale), any scalar `tfd` prior, a fresh weight sample per call, and the local reparameterization
  trick or Flipout as options.
- `gaussian_prior`, `scale_mixture_prior`: priors (the scale mixture is a `tfd.MixtureSameFamily`).
- `elbo`: the per-example share of the minibatch free energy for `tfpvi.train.fit`;
  `uniform_kl_weights`, `blundell_kl_weights`, `kl_weight_schedule`: how the KL is spread over an
  epoch's minibatches.
- `predictive_distribution` (a mixture over weight samples), `predictive_entropy`,
  `expected_entropy`, `mutual_information`, `predictive_moments`.
"""

from tfpvi.bnn.linear import ESTIMATORS, KL_METHODS, Linear, has_analytic_kl
from tfpvi.bnn.mlp import MLP, NormalLikelihood, categorical_likelihood, normal_likelihood
from tfpvi.bnn.objectives import (
  KL_WEIGHTINGS,
  blundell_kl_weights,
  elbo,
  kl_weight_schedule,
  split_batch,
  uniform_kl_weights,
)
from tfpvi.bnn.predictive import (
  expected_entropy,
  mutual_information,
  predictive_distribution,
  predictive_entropy,
  predictive_moments,
)
from tfpvi.bnn.priors import gaussian_prior, scale_mixture_prior

__all__ = [
  "ESTIMATORS",
  "KL_METHODS",
  "KL_WEIGHTINGS",
  "Linear",
  "MLP",
  "NormalLikelihood",
  "blundell_kl_weights",
  "categorical_likelihood",
  "elbo",
  "expected_entropy",
  "gaussian_prior",
  "has_analytic_kl",
  "kl_weight_schedule",
  "mutual_information",
  "normal_likelihood",
  "predictive_distribution",
  "predictive_entropy",
  "predictive_moments",
  "scale_mixture_prior",
  "split_batch",
  "uniform_kl_weights",
]
