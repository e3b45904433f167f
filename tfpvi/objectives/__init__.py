"""Variational objectives: per-example lower bounds on log p(x), in nats, and their gradient estimators.

Every objective takes a model with `sample_posterior`, `log_weight_terms` and `prior` (a
`tfpvi.VAE`), a batch x [B, ...], and keyword-only options, and returns per-example values [B]:
nats per example, summed over the data dimensions (never a per-pixel mean). Losses are their
negatives; the caller reduces over the batch. With `return_terms=True` an objective returns a dict
whose "objective" entry is that [B] value and whose other entries are [B] terms for logging.

Latents may be a single Tensor [S, B, ...] or any nest (dict, list) of Tensors with leading
dimensions [S, B], as drawn from a `tfd.JointDistribution*` posterior; every estimator handles both.

One engine (`estimate`) applies one of the `GradientEstimator`s (REPARAM, STL, DREG, VIMCO) to one
`MultiSampleBound` (`IWAE`, `ELBO`, `Renyi`, `VRMax`, `MIWAE`, `PIWAE`, `CIWAE`, or a user's own
subclass); `iwae`, `renyi`, `vr_max`, `miwae`, `piwae` and `ciwae` are that engine with one bound,
and `elbo` adds the analytic KL.

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

A new bound is a subclass of `MultiSampleBound` that defines `value(log_w)`:

Examples:
  >>> import tensorflow as tf
  >>> class Mean(MultiSampleBound):  # the K-sample ELBO again, weights by autodiff
  ...   def value(self, log_w):
  ...     return tf.reduce_mean(log_w, axis=0)
  >>> log_w = tf.constant([[0.0], [2.0]])
  >>> float(Mean().value(log_w)[0]), Mean().weights(log_w).numpy().ravel().tolist()
  (1.0, [0.5, 0.5])
"""

from tfpvi.objectives.bounds import CIWAE, ELBO, IWAE, MIWAE, PIWAE, MultiSampleBound, Renyi, VRMax
from tfpvi.objectives.estimators import GradientEstimator, check_reparameterized, estimate, stl_log_prob
from tfpvi.objectives.functions import ciwae, elbo, iwae, kl_divergence, miwae, piwae, renyi, vr_max

GRADIENT_ESTIMATORS = tuple(e.value for e in GradientEstimator)


__all__ = [
  "CIWAE",
  "ELBO",
  "GRADIENT_ESTIMATORS",
  "IWAE",
  "MIWAE",
  "PIWAE",
  "GradientEstimator",
  "MultiSampleBound",
  "Renyi",
  "VRMax",
  "check_reparameterized",
  "ciwae",
  "elbo",
  "estimate",
  "iwae",
  "kl_divergence",
  "miwae",
  "piwae",
  "renyi",
  "stl_log_prob",
  "vr_max",
]

# The public names live here (as numpy's set_module does): run records and configs name them
# tfpvi.objectives.iwae, tfpvi.objectives.Renyi, whichever file inside the package defines them.
for _name in __all__:
  if _name != "GRADIENT_ESTIMATORS":
    globals()[_name].__module__ = __name__
del _name
