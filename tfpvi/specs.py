"""Model specifications: a JSON-able dict that rebuilds a `tfpvi.VAE`, saved beside checkpoints.

```python
spec = {
    "encoder": {"class": "GaussianMLP", "hidden_sizes": [200, 200], "latent_size": 50,
                "activation": "tanh"},
    "decoder": {"class": "BernoulliMLP", "hidden_sizes": [200, 200], "output_shape": [28, 28, 1],
                "activation": "tanh"},
    "prior": {"class": "standard_normal", "latent_size": 50},
    "data": {"name": "mnist", "format": "binary"},   # how test data are prepared for this model
}
model = tfpvi.specs.build(spec)
```
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import tensorflow as tf

from tfpvi import decoders, encoders
from tfpvi.vae import VAE, standard_normal_prior

__all__ = ["DATA_FORMATS", "build", "load", "save"]

SPEC_FILE = "model_spec.json"
DATA_FORMATS = ("binary", "eight_bit", "grey")
_ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.nn.tanh, "elu": tf.nn.elu, "softplus": tf.nn.softplus}
_ENCODERS = {"GaussianMLP": encoders.GaussianMLP}
_DECODERS = {
    "BernoulliMLP": decoders.BernoulliMLP,
    "DiscretizedLogisticMLP": decoders.DiscretizedLogisticMLP,
    "DiscretizedLogisticMixtureMLP": decoders.DiscretizedLogisticMixtureMLP,
}


def _module(table: dict, spec: dict, role: str):
  spec = dict(spec)
  name = spec.pop("class", None)
  if name not in table:
    raise ValueError(f"{role} class must be one of {sorted(table)}, got {name!r}.")
  if "activation" in spec:
    activation = spec["activation"]
    if activation not in _ACTIVATIONS:
      raise ValueError(f"{role} activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}.")
    spec["activation"] = _ACTIVATIONS[activation]
  return table[name](**spec)


def build(spec: dict[str, Any]) -> VAE:
  """Builds the VAE a spec describes (variables are created on the first call)."""
  for key in ("encoder", "decoder", "prior"):
    if key not in spec:
      raise ValueError(f"a model spec needs 'encoder', 'decoder' and 'prior'; '{key}' is missing.")
  if spec["prior"].get("class") != "standard_normal":
    raise ValueError(f"prior class must be 'standard_normal', got {spec['prior'].get('class')!r}.")
  return VAE(
      _module(_ENCODERS, spec["encoder"], "encoder"),
      _module(_DECODERS, spec["decoder"], "decoder"),
      standard_normal_prior(int(spec["prior"]["latent_size"])),
  )


def save(run_dir, spec: dict[str, Any]) -> None:
  path = pathlib.Path(run_dir)
  path.mkdir(parents=True, exist_ok=True)
  (path / SPEC_FILE).write_text(json.dumps(spec, indent=2))


def load(run_dir) -> dict[str, Any]:
  path = pathlib.Path(run_dir) / SPEC_FILE
  if not path.exists():
    raise FileNotFoundError(
        f"no {SPEC_FILE} in {run_dir}: expected the output folder of one trained model (for "
        "experiments.iwae, one of its sub-folders such as runs/iwae/iwae_k50)."
    )
  return json.loads(path.read_text())
