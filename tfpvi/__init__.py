"""tfpvi: variational inference for deep latent-variable models with TFP and Sonnet 2.

Encoders return distributions q(z|x), decoders return likelihoods p(x|z), priors are
`tfd.Distribution`s; objectives and evaluators are written once against these objects and return
per-example values in nats.
"""

from tfpvi import _startup

_startup.import_tensorflow()  # before anything else imports TensorFlow: no start-up noise on stderr

from tfpvi import (  # noqa: E402
  ais,
  bnn,
  checks,
  config,
  conv,
  data,
  decoders,
  discrete,
  distributions,
  encoders,
  evaluation,
  flows,
  hierarchical,
  importance,
  objectives,
  priors,
  run_record,
  specs,
  train,
)
from tfpvi.linear_gaussian import LinearGaussian  # noqa: E402
from tfpvi.specs import load_model  # noqa: E402
from tfpvi.vae import VAE, LogWeightTerms, standard_normal_prior  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str):
  """`tfpvi.plot` is imported on first use: `import tfpvi` does not import plotnine or matplotlib."""
  if name == "plot":
    import importlib  # noqa: PLC0415

    return importlib.import_module("tfpvi.plot")
  raise AttributeError(f"module 'tfpvi' has no attribute {name!r}")


__all__ = [
  "LinearGaussian",
  "LogWeightTerms",
  "VAE",
  "ais",
  "bnn",
  "checks",
  "config",
  "conv",
  "data",
  "decoders",
  "discrete",
  "distributions",
  "encoders",
  "evaluation",
  "flows",
  "hierarchical",
  "importance",
  "load_model",
  "objectives",
  "plot",
  "priors",
  "run_record",
  "specs",
  "standard_normal_prior",
  "train",
  "xla",
]
