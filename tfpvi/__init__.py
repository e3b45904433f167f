"""tfpvi: variational inference for deep latent-variable models with TFP and Sonnet 2.

Encoders return distributions q(z|x), decoders return likelihoods p(x|z), priors are
`tfd.Distribution`s; objectives and evaluators are written once against these objects and return
per-example values in nats.

The package is built in layers, each importing only the ones below it:

- foundation: `checks`, `config` (modules that describe themselves), `run_record` (run.json),
  `types`, `precision` (mixed precision), `xla` (compiling), `files`;
- `distributions` (discretized logistics, PixelCNN++ mixtures) and `data` (MNIST-like arrays);
- `models` (encoders, decoders, priors, flows, discrete and hierarchical latents, the VAE) and
  `bnn` (Bayes by Backprop);
- `objectives` (bounds and gradient estimators, one engine);
- `evaluation` (importance sampling, JVI, AIS) and `train` (`fit` and its run folder);
- `cli` (command-line tools) and `plot` (optional, imported on first use).

The model modules are also reachable where they always were: `tfpvi.encoders`, `tfpvi.flows`,
`tfpvi.specs`, ..., `tfpvi.ais`, `tfpvi.jackknife`, `tfpvi.run_record` (and `import tfpvi.encoders`),
so that code and run records written against those names keep working.
"""

import importlib as _importlib
import sys as _sys
import types as _types

from tfpvi import _startup

_startup.import_tensorflow()  # before anything else imports TensorFlow: no start-up noise on stderr

from tfpvi import (  # noqa: E402
  bnn,
  checks,
  config,
  data,
  distributions,
  evaluation,
  models,
  objectives,
  precision,
  run_record,
  train,
  xla,
)
from tfpvi.evaluation import ais, importance  # noqa: E402
from tfpvi.models import (  # noqa: E402
  conv,
  decoders,
  discrete,
  encoders,
  flows,
  hierarchical,
  linear_gaussian,
  priors,
  specs,
  vae,
)
from tfpvi.models.linear_gaussian import LinearGaussian  # noqa: E402
from tfpvi.models.specs import load_model  # noqa: E402
from tfpvi.models.vae import VAE, LogWeightTerms, standard_normal_prior  # noqa: E402
from tfpvi.train import data as train_data  # noqa: E402, F401  (its former name, aliased below)
from tfpvi.train import run_folder  # noqa: E402
from tfpvi.train import step as training_step  # noqa: E402, F401  (its former name, aliased below)

__version__ = "0.1.0"

# The module (the name tfpvi.evaluation.jackknife is its function).
jackknife = _importlib.import_module("tfpvi.evaluation.jackknife")

# The modules imported above under their former top-level names (tfpvi.encoders, tfpvi.ais, ...) are
# also importable by them (`import tfpvi.encoders`, run records naming tfpvi.encoders:GaussianMLP).
for _name, _module in list(globals().items()):
  if isinstance(_module, _types.ModuleType) and _module.__name__.startswith(f"{__name__}."):
    _sys.modules.setdefault(f"{__name__}.{_name}", _module)
del _name, _module


def __getattr__(name: str):
  """`tfpvi.plot` is imported on first use: `import tfpvi` does not import plotnine or matplotlib."""
  if name == "plot":
    return _importlib.import_module("tfpvi.plot")
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
  "jackknife",
  "linear_gaussian",
  "load_model",
  "models",
  "objectives",
  "plot",
  "precision",
  "priors",
  "run_folder",
  "run_record",
  "specs",
  "standard_normal_prior",
  "train",
  "vae",
  "xla",
]
