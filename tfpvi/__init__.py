"""tfpvi: variational inference for deep latent-variable models with TFP and Sonnet 2.

Encoders return distributions q(z|x), decoders return likelihoods p(x|z), priors are
`tfd.Distribution`s; objectives and evaluators are written once against these objects and return
per-example values in nats.
"""

from tfpvi import (
    checks,
    data,
    decoders,
    distributions,
    encoders,
    evaluation,
    importance,
    objectives,
    plot,
    specs,
    train,
)
from tfpvi.linear_gaussian import LinearGaussian
from tfpvi.vae import VAE, LogWeightTerms, standard_normal_prior

__version__ = "0.1.0"

__all__ = [
    "LinearGaussian",
    "LogWeightTerms",
    "VAE",
    "checks",
    "data",
    "decoders",
    "distributions",
    "encoders",
    "evaluation",
    "importance",
    "objectives",
    "plot",
    "specs",
    "standard_normal_prior",
    "train",
    "xla",
]
