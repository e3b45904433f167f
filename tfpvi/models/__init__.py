"""Models: encoders q(z|x), decoders p(x|z), priors p(z), flows, discrete and hierarchical latents, the VAE.

Every module here describes itself (`tfpvi.config.configurable`), so that a model is saved as
class paths and constructor arguments and rebuilt by import (`specs.load_model`). The modules
import the foundation (`tfpvi.checks`, `tfpvi.config`, `tfpvi.types`) and `tfpvi.distributions`,
never the objectives, evaluation or training layers above them.
"""

from tfpvi.models import (
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

__all__ = [
  "conv",
  "decoders",
  "discrete",
  "encoders",
  "flows",
  "hierarchical",
  "linear_gaussian",
  "priors",
  "specs",
  "vae",
]
