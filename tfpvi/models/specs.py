"""Shorthand model specs for the experiments, and `load_model` for run folders.

A run folder records its model in full in run.json (class paths and constructor arguments, see
`tfpvi.config`), whatever modules it is made of; `load_model` rebuilds it from there. The
shorthand here is a short way to write the shipped models (the experiments use it), and the
format older run folders recorded their models in (model_spec.json), which `load_model` still
reads:

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

What a spec can name:

- encoder: `GaussianMLP` (`tfpvi.encoders`), `ResNetEncoder` (`tfpvi.conv`), `iaf_mlp` or
  `planar_mlp` (flow posteriors, `tfpvi.flows`) or `GumbelSoftmaxMLP` (`tfpvi.discrete`, with its
  `kind` and initial `temperature`), with their constructor arguments (activations by name, e.g. "tanh").
- decoder: `BernoulliMLP`, `DiscretizedLogisticMLP`, `DiscretizedLogisticMixtureMLP`
  (`tfpvi.decoders`) or `ResNetDecoder` (`tfpvi.conv`). `"pixel_mean_bias": true` gives a
  `BernoulliMLP` its output-bias variable (`output_bias`, initialised from `train_images` in
  `build`, else 0 until a checkpoint restores it). `RelaxedInput` (`tfpvi.discrete`) wraps the
  decoder its "decoder" entry describes (`log_space`, `straight_through`).
- prior: `standard_normal` (`latent_size`), `MixtureOfGaussians` (its constructor arguments) or
  `VampPrior` (`input_shape`, `num_components`, ...; it is built on the spec's encoder) from
  `tfpvi.priors`; `one_hot` or `relaxed` (`tfpvi.discrete.one_hot_prior` / `relaxed_prior`:
  `num_variables`, `num_classes`, and for `relaxed` its `temperature` and `log_space`).
- `"kind": "hierarchical"`: Burda et al.'s two stochastic layers (`tfpvi.hierarchical.two_layer_spec`).

A user's own modules need no entry here: they are recorded and rebuilt through `tfpvi.config`.
"""

from __future__ import annotations

import inspect
import json
import pathlib
from typing import Any, Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import config, files, run_record
from tfpvi.models import conv, decoders, discrete, encoders, flows, hierarchical, priors
from tfpvi.models.vae import VAE, standard_normal_prior

__all__ = [
  "DATA_FORMATS",
  "build",
  "differences",
  "load_model",
  "normalize",
  "output_shape",
  "rebuild_model",
  "restore_weights",
]

tfd = tfp.distributions

_MODEL_KEYS = ("encoder", "decoder", "prior")
DATA_FORMATS = ("binary", "eight_bit", "grey")
_ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.nn.tanh, "elu": tf.nn.elu, "softplus": tf.nn.softplus}
_ENCODERS = {
  "GaussianMLP": encoders.GaussianMLP,
  "ResNetEncoder": conv.ResNetEncoder,
  "iaf_mlp": flows.iaf_mlp,
  "planar_mlp": flows.planar_mlp,
  "GumbelSoftmaxMLP": discrete.GumbelSoftmaxMLP,
}
_DECODERS = {
  "BernoulliMLP": decoders.BernoulliMLP,
  "DiscretizedLogisticMLP": decoders.DiscretizedLogisticMLP,
  "DiscretizedLogisticMixtureMLP": decoders.DiscretizedLogisticMixtureMLP,
  "NormalMLP": decoders.NormalMLP,
  "ResNetDecoder": conv.ResNetDecoder,
  "RelaxedInput": discrete.RelaxedInput,
}
_PRIORS = {
  "standard_normal": None,
  "MixtureOfGaussians": priors.MixtureOfGaussians,
  "VampPrior": priors.VampPrior,
  "one_hot": discrete.one_hot_prior,
  "relaxed": discrete.relaxed_prior,
}


def _module(table: dict, spec: dict, role: str, train_images=None):
  spec = dict(spec)
  name = spec.pop("class", None)
  if name not in table:
    raise ValueError(f"{role} class must be one of {sorted(table)}, got {name!r}.")
  if "activation" in spec:
    activation = spec["activation"]
    if activation not in _ACTIVATIONS:
      raise ValueError(f"{role} activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}.")
    spec["activation"] = _ACTIVATIONS[activation]
  if "input_range" in spec:
    spec["input_range"] = tuple(spec["input_range"])
  if name == "RelaxedInput":
    if not isinstance(spec.get("decoder"), dict) or spec["decoder"].get("class") == "RelaxedInput":
      raise ValueError(
        f"a RelaxedInput decoder spec needs a 'decoder' entry describing the decoder it wraps, "
        f"got {spec.get('decoder')!r}."
      )
    spec["decoder"] = _module(table, spec["decoder"], role, train_images)
  if spec.pop("pixel_mean_bias", False):
    spec["output_bias"] = (
      np.zeros(spec.get("output_shape", []), np.float32)
      if train_images is None
      else decoders.pixel_mean_logits(train_images)
    )  # zeros: a checkpoint restore fills it
  try:
    return table[name](**spec)
  except TypeError as error:  # an unknown or missing argument
    raise ValueError(f"the {role} spec {dict(spec, **{'class': name})!r} does not fit {name}: {error}.") from error


def _prior(spec: dict, encoder):
  spec = dict(spec)
  name = spec.pop("class", None)
  if name not in _PRIORS:
    raise ValueError(f"prior class must be one of {sorted(_PRIORS)}, got {name!r}.")
  try:
    if name == "standard_normal":
      return standard_normal_prior(int(spec["latent_size"]))
    if name == "VampPrior":
      return priors.VampPrior(encoder, **spec)
    return _PRIORS[name](**spec)
  except (KeyError, TypeError) as error:
    raise ValueError(f"the prior spec {dict(spec, **{'class': name})!r} does not fit {name}: {error!r}.") from error


def build(spec: dict[str, Any], *, train_images=None) -> VAE:
  """Builds the VAE a spec describes (variables are created on the first call).

  Args:
    spec: the spec dict (see the module docstring).
    train_images: binary training images [N, *output_shape]; a decoder with "pixel_mean_bias"
      starts its output bias at their clipped pixel-mean logits (else at 0).

  Raises:
    ValueError: if the spec names an unknown class or arguments its class does not take.
  """
  if spec.get("kind") == "hierarchical":  # two stochastic layers: tfpvi.hierarchical.two_layer_spec
    model = hierarchical.from_spec(spec, train_images)
  else:
    for key in _MODEL_KEYS:
      if key not in spec:
        raise ValueError(f"a model spec needs 'encoder', 'decoder' and 'prior'; '{key}' is missing.")
    encoder = _module(_ENCODERS, spec["encoder"], "encoder")
    decoder = _module(_DECODERS, spec["decoder"], "decoder", train_images)
    model = VAE(encoder, decoder, _prior(spec["prior"], encoder))
  return model


def _defaults(cls) -> dict[str, Any]:
  """Constructor defaults of a module class, activations by name (output_bias as pixel_mean_bias)."""
  reverse = {fn: name for name, fn in _ACTIVATIONS.items()}
  out = {}
  for name, parameter in inspect.signature(cls if inspect.isfunction(cls) else cls.__init__).parameters.items():
    if name in ("self", "name") or parameter.default is inspect.Parameter.empty:
      continue
    if name == "output_bias":
      out["pixel_mean_bias"] = False
      continue
    default = parameter.default
    out[name] = reverse.get(default, default) if callable(default) else default
  return out


def normalize(spec: dict[str, Any]) -> dict[str, Any]:
  """The model part of a spec (kind, encoder, decoder, prior) with every constructor default filled in.

  Two specs that build the same model normalize to equal dicts (lists for sequences).
  """
  out = {"kind": spec.get("kind") or "flat"}
  for key, table in (("encoder", _ENCODERS), ("decoder", _DECODERS), ("prior", _PRIORS)):
    part = dict(spec.get(key) or {})
    cls = table.get(part.get("class"))
    if cls is not None:
      part = {**_defaults(cls), **part}
    out[key] = json.loads(json.dumps(part))  # tuples -> lists, as read back from JSON
  return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """Where two specs describe different models or data, e.g. ["encoder.latent_size: 16 vs 100"]."""
  found = []
  a, b = normalize(old), normalize(new)
  if a["kind"] != b["kind"]:
    found.append(f"kind: {a['kind']!r} vs {b['kind']!r}")
  for key in _MODEL_KEYS:
    for field in sorted(set(a[key]) | set(b[key])):
      if a[key].get(field) != b[key].get(field):
        found.append(f"{key}.{field}: {a[key].get(field)!r} vs {b[key].get(field)!r}")
  if old.get("data") and new.get("data") and old["data"] != new["data"]:
    found.append(f"data: {old['data']!r} vs {new['data']!r}")
  return found


def output_shape(spec: dict[str, Any]) -> list[int]:
  """The image shape [H, W, C] a spec's decoder models (that of the decoder a RelaxedInput wraps)."""
  decoder = spec["decoder"]
  while decoder.get("class") == "RelaxedInput":
    decoder = decoder["decoder"]
  return list(decoder["output_shape"])


def _example_shape(record: dict[str, Any]) -> Optional[list[int]]:
  """The shape of one training example, from the data layout fit recorded (None for a nest)."""
  layout = record.get("settings", {}).get("data") or {}
  if isinstance(layout.get("example"), dict) and "shape" in layout["example"]:
    return list(layout["example"]["shape"])
  if isinstance(layout.get("batch"), dict) and "shape" in layout["batch"]:
    return list(layout["batch"]["shape"][1:])
  return None


def load_model(run_dir, *, checkpoint: Optional[str] = None):
  """Rebuilds the trained model of a run folder: from its run.json, then its latest checkpoint.

  The model is rebuilt by importing the classes its record names (`tfpvi.config`), so a model made
  of the user's own modules loads where their module can be imported; folders of older runs are
  rebuilt from their model_spec.json. Only the model's variables are read (the optimizer's slots
  and the training counters in the checkpoint are left alone, without warnings about them).

  Args:
    run_dir: a folder written by `tfpvi.train.fit` or an experiment (run.json, checkpoints/).
    checkpoint: a checkpoint path (e.g. ".../checkpoints/ckpt-3000"); default: the latest one.

  Returns:
    the model with the trained weights; for a `tfpvi.VAE`, `model.sample(16, seed=0)` generates
    from it.

  Raises:
    FileNotFoundError: if the folder has no record or no checkpoint.
    ValueError: if the record says the model could not be described (and why).
    tfpvi.config.ConfigError: if a class it names cannot be imported.
  """
  model = rebuild_model(run_dir)
  path = checkpoint or tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / "checkpoints"))
  if path is None:
    raise FileNotFoundError(
      f"no checkpoint in {pathlib.Path(run_dir) / 'checkpoints'}: the model was never saved "
      "(train it with tfpvi.train.fit(..., output_dir=...) first)."
    )
  restore_weights(model, path)
  return model


def rebuild_model(run_dir):
  """The untrained model a run folder's record describes, its variables made where the record allows.

  The first half of `load_model`: a VAE whose record holds its example shape gets its variables now,
  so that `restore_weights` fills them at once; other models get theirs on their first call.

  Raises:
    FileNotFoundError: if the folder has no record.
    ValueError: if the record says the model could not be described (and why).
    tfpvi.config.ConfigError: if a class it names cannot be imported.
  """
  folder = pathlib.Path(run_dir)
  record = run_record.read(folder)
  if not record:
    raise FileNotFoundError(
      f"no {run_record.RECORD_FILE} in {folder}: expected the output folder of one trained model (an experiment "
      "writes one sub-folder per model, e.g. runs/iwae/iwae_k50 or runs/flows/iaf)."
    )
  if record.get("model") is not None:
    model = config.from_config(record["model"])
    shape = _example_shape(record)
  elif record.get("legacy_spec"):
    model, shape = build(record["legacy_spec"]), output_shape(record["legacy_spec"])
  else:
    raise ValueError(
      f"{folder / run_record.RECORD_FILE} holds no description of its model: "
      f"{record.get('model_note', 'it was written without one')}"
    )
  if isinstance(model, VAE) and shape is not None:
    model.log_weights(tf.zeros([1, *shape]), 1)  # creates the variables, so a restore fills them at once
  return model


def _has_variables(model) -> bool:
  try:
    return bool(model.variables)
  except ValueError:  # a Sonnet module asked for its variables before its first call
    return False


def restore_weights(model, checkpoint: str) -> None:
  """Reads the model's variables from a checkpoint path (e.g. ".../checkpoints/ckpt-3000").

  Variables that exist are read at once, from a pin of the checkpoint (`tfpvi.files.pinned_checkpoint`)
  so that a training process replacing it meanwhile cannot cut the read; variables made later are
  filled when they are made (a deferred restore). The optimizer's slots and training counters in the
  checkpoint are left alone.

  Raises:
    FileNotFoundError: if the checkpoint's files are gone.
  """
  if not _has_variables(model):
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    return
  with files.pinned_checkpoint(checkpoint) as pinned:
    tf.train.Checkpoint(model=model).restore(pinned).expect_partial().assert_existing_objects_matched()
