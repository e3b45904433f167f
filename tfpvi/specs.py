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

Settings that only set initial values (a prior's `seed`, `init_spread`, ...) cannot be read back
from a model by `describe`; they take their defaults there, which a checkpoint restore makes moot.
"""

from __future__ import annotations

import inspect
import json
import pathlib
from typing import Any, Optional

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import conv, decoders, discrete, encoders, flows, hierarchical, priors
from tfpvi.files import atomic_write
from tfpvi.vae import VAE, standard_normal_prior

__all__ = ["DATA_FORMATS", "build", "describe", "differences", "has_checkpoints", "load", "load_model", "normalize",
           "output_shape", "save"]

tfd = tfp.distributions

SPEC_FILE = "model_spec.json"
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
_PRIORS = {"standard_normal": None, "MixtureOfGaussians": priors.MixtureOfGaussians, "VampPrior": priors.VampPrior,
           "one_hot": discrete.one_hot_prior, "relaxed": discrete.relaxed_prior}


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
      raise ValueError(f"a RelaxedInput decoder spec needs a 'decoder' entry describing the decoder it wraps, "
                       f"got {spec.get('decoder')!r}.")
    spec["decoder"] = _module(table, spec["decoder"], role, train_images)
  if spec.pop("pixel_mean_bias", False):
    spec["output_bias"] = 0.0 if train_images is None else decoders.pixel_mean_logits(train_images)
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
  # Remembered as a string (not a tracked attribute), so `describe` returns it exactly.
  model._tfpvi_spec_json = json.dumps({key: spec[key] for key in ("kind", *_MODEL_KEYS) if key in spec})
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


def _activation_name(fn) -> str:
  name = next((name for name, known in _ACTIVATIONS.items() if known is fn), None)
  if name is None:
    raise ValueError(f"activation {getattr(fn, '__name__', fn)!r} has no name in specs")
  return name


def _mlp_settings(mlp, drop_last: bool) -> dict[str, Any]:
  layers = list(mlp._layers)[:-1] if drop_last else list(mlp._layers)
  return {"hidden_sizes": [int(layer.output_size) for layer in layers], "activation": _activation_name(mlp._activation)}


def _normalization_settings(final_norm, blocks) -> dict[str, Any]:
  """normalization and groups of a ResNet module, from its final normalization and residual blocks."""
  if blocks:
    return {"normalization": blocks[0]._normalization, "groups": int(blocks[0]._groups)}
  if isinstance(final_norm, snt.GroupNorm):  # gcd(groups, channels), which rebuilds the same layer
    return {"normalization": "group", "groups": int(final_norm._groups)}
  return {"normalization": "none"}


def _blocks_per_stage(stages, blocks_of) -> int:
  counts = {len(blocks_of(stage)) for stage in stages}
  if len(counts) != 1:
    raise ValueError(f"the ResNet stages have different numbers of residual blocks ({sorted(counts)})")
  return counts.pop()


def _describe_encoder(encoder) -> dict[str, Any]:
  if type(encoder) is encoders.GaussianMLP:
    return {"class": "GaussianMLP", **_mlp_settings(encoder._torso, drop_last=False),
            "latent_size": encoder.latent_size, "min_scale": encoder.min_scale, "input_scale": encoder.input_scale}
  if type(encoder) is conv.ResNetEncoder:
    stages = encoder._stages
    blocks = [block for _, stage_blocks in stages for block in stage_blocks]
    return {"class": "ResNetEncoder", "latent_size": encoder.latent_size,
            "channels": [int(down.output_channels) for down, _ in stages],
            "blocks_per_stage": _blocks_per_stage(stages, lambda stage: stage[1]),
            "activation": _activation_name(encoder._activation),
            **_normalization_settings(encoder._final_norm, blocks),
            "input_range": [encoder._low, encoder._high], "max_log_scale": encoder.max_log_scale}
  raise ValueError(f"the encoder is a {type(encoder).__name__}, not one of {sorted(_ENCODERS)}")


def _describe_decoder(decoder) -> dict[str, Any]:
  name = type(decoder).__name__
  if _DECODERS.get(name) is not type(decoder):
    raise ValueError(f"the decoder is a {name}, not one of {sorted(_DECODERS)}")
  if type(decoder) is conv.ResNetDecoder:
    stages = decoder._stages
    blocks = [block for stage_blocks, _ in stages for block in stage_blocks]
    return {"class": name, "output_shape": list(decoder.output_shape),
            "channels": [int(decoder._start[2])] + [int(up._output_channels) for _, up in stages[:-1]],
            "blocks_per_stage": _blocks_per_stage(stages, lambda stage: stage[0]),
            "num_components": decoder.num_components, "num_bins": decoder.num_bins,
            "activation": _activation_name(decoder._activation),
            **_normalization_settings(decoder._final_norm, blocks),
            "min_scale": decoder.min_scale, "log_scale_range": decoder.log_scale_range,
            "validate_args": bool(decoder.validate_args)}
  out = {"class": name, **_mlp_settings(decoder._mlp, drop_last=True),
         "output_shape": list(decoder.output_shape), "validate_args": bool(decoder.validate_args)}
  for field in ("num_bins", "num_components", "min_scale", "latent_ndims", "latent_keys"):
    if hasattr(decoder, field):
      out[field] = getattr(decoder, field)
  if getattr(decoder, "logit_offset", None) is not None:
    out["pixel_mean_bias"] = True
  return out


def _describe_prior(prior, encoder) -> dict[str, Any]:
  if type(prior) is priors.MixtureOfGaussians:
    components, latent_size = (int(d) for d in prior.locs.shape)
    return {"class": "MixtureOfGaussians", "latent_size": latent_size, "num_components": components,
            "min_scale": prior.min_scale}
  if type(prior) is priors.VampPrior:
    if prior.encoder is not encoder:
      raise ValueError("the VampPrior is built on another encoder than the model's")
    return {"class": "VampPrior", "input_shape": [int(d) for d in prior.pseudo_inputs.shape[1:]],
            "num_components": int(prior.pseudo_inputs.shape[0])}
  base = getattr(prior, "distribution", None)
  if isinstance(prior, tfd.Independent) and isinstance(base, tfd.Normal) and prior.event_shape.rank == 1:
    loc, scale = tf.convert_to_tensor(base.loc), tf.convert_to_tensor(base.scale)
    if not isinstance(base.loc, tf.Variable) and not isinstance(base.scale, tf.Variable) and bool(
        tf.reduce_all(loc == 0.0) and tf.reduce_all(scale == 1.0)
    ):
      return {"class": "standard_normal", "latent_size": int(prior.event_shape[0])}
  raise ValueError(
      f"the prior ({type(prior).__name__}) is not a standard normal N(0, I), a tfpvi.priors.MixtureOfGaussians "
      "or a tfpvi.priors.VampPrior"
  )


def _describe_hierarchical(model) -> dict[str, Any]:
  encoder, decoder, prior = model.encoder, model.decoder, model._prior
  if type(decoder) is not decoders.BernoulliMLP or type(prior) is not hierarchical.TwoLayerPrior:
    raise ValueError("a TwoLayerEncoder model needs a BernoulliMLP decoder and a TwoLayerPrior "
                     f"(tfpvi.hierarchical.burda_two_layer), got {type(decoder).__name__} and {type(prior).__name__}")
  q1, q2 = _mlp_settings(encoder._z1._torso, False), _mlp_settings(encoder._z2._torso, False)
  p1, px = _mlp_settings(prior._z1._torso, False), _mlp_settings(decoder._mlp, True)
  spec = hierarchical.two_layer_spec(
      output_shape=decoder.output_shape, latent_sizes=(encoder._z1.latent_size, encoder._z2.latent_size),
      hidden_sizes=(q1["hidden_sizes"], q2["hidden_sizes"]), activation=q1["activation"],
      pixel_mean_bias=decoder.logit_offset is not None,
  )
  mirrored = (px["hidden_sizes"] == spec["decoder"]["hidden_sizes"]
              and p1["hidden_sizes"] == spec["prior"]["hidden_sizes"]
              and list(prior.latent_sizes) == spec["prior"]["latent_sizes"] and decoder.latent_keys == ["z1"]
              and {q2["activation"], p1["activation"], px["activation"]} == {q1["activation"]}
              and encoder.input_scale == 1.0)
  if not mirrored:
    raise ValueError("the two-layer model's generative path does not mirror its encoder (as "
                     "tfpvi.hierarchical.burda_two_layer builds it)")
  return spec


def describe(model) -> tuple[Optional[dict[str, Any]], str]:
  """(spec, "") for a model `build` can rebuild, else (None, the reason in words).

  Models from `build` return their spec; `tfpvi.VAE`s made of the modules the module docstring
  lists (and `tfpvi.hierarchical.burda_two_layer`'s models) are read from their modules. The spec
  has no "data" part (how test data are prepared); `save` keeps the one already in a folder.
  """
  remembered = getattr(model, "_tfpvi_spec_json", None)
  if remembered is not None:
    return json.loads(remembered), ""
  if not isinstance(model, VAE):
    return None, f"the model is a {type(model).__name__}, not a tfpvi.VAE"
  try:
    if type(model.encoder) is hierarchical.TwoLayerEncoder:
      return _describe_hierarchical(model), ""
    spec = {"encoder": _describe_encoder(model.encoder), "decoder": _describe_decoder(model.decoder),
            "prior": _describe_prior(model._prior, model.encoder)}
  except (AttributeError, TypeError, ValueError) as error:
    return None, str(error)
  return spec, ""


def output_shape(spec: dict[str, Any]) -> list[int]:
  """The image shape [H, W, C] a spec's decoder models (that of the decoder a RelaxedInput wraps)."""
  decoder = spec["decoder"]
  while decoder.get("class") == "RelaxedInput":
    decoder = decoder["decoder"]
  return list(decoder["output_shape"])


def has_checkpoints(run_dir) -> bool:
  return tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / "checkpoints")) is not None


def save(run_dir, spec: dict[str, Any]) -> None:
  """Writes run_dir/model_spec.json; refuses to replace the spec of a folder with checkpoints.

  A spec equal to the folder's (after `normalize`) is merged into it: a "data" part is added
  where the folder's spec has none.

  Raises:
    ValueError: if run_dir holds checkpoints and its model_spec.json describes another model.
  """
  path = pathlib.Path(run_dir)
  path.mkdir(parents=True, exist_ok=True)
  target = path / SPEC_FILE
  if target.exists():
    existing = json.loads(target.read_text())
    found = differences(existing, spec)
    if found and has_checkpoints(path):
      raise ValueError(
          f"{path} holds checkpoints of the model in its {SPEC_FILE}, which differs from this spec "
          f"({'; '.join(found)}); use a new output folder, or delete {path} to start fresh."
      )
    if not found:
      spec = {**existing, **spec, "data": spec.get("data") or existing.get("data")}
      spec = {key: value for key, value in spec.items() if value is not None}
  atomic_write(target, json.dumps(spec, indent=2))


def load(run_dir) -> dict[str, Any]:
  path = pathlib.Path(run_dir) / SPEC_FILE
  if not path.exists():
    raise FileNotFoundError(
        f"no {SPEC_FILE} in {run_dir}: expected the output folder of one trained VAE (an experiment writes "
        "one sub-folder per model, e.g. runs/iwae/iwae_k50 or runs/flows/iaf)."
    )
  return json.loads(path.read_text())


def load_model(run_dir, *, checkpoint: Optional[str] = None) -> VAE:
  """Rebuilds the trained model of a run folder: its model_spec.json, then its latest checkpoint.

  Only the model's variables are read (the optimizer's slots and the training counters in the
  checkpoint are left alone, without warnings about them).

  Args:
    run_dir: a folder written by `tfpvi.train.fit` or an experiment (model_spec.json, checkpoints/).
    checkpoint: a checkpoint path (e.g. ".../checkpoints/ckpt-3000"); default: the latest one.

  Returns:
    the `tfpvi.VAE` with the trained weights; `model.sample(16, seed=0)` generates from it.

  Raises:
    FileNotFoundError: if the folder has no model_spec.json or no checkpoint.
  """
  spec = load(run_dir)
  model = build(spec)
  path = checkpoint or tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / "checkpoints"))
  if path is None:
    raise FileNotFoundError(f"no checkpoint in {pathlib.Path(run_dir) / 'checkpoints'}: the model was never saved "
                            "(train it with tfpvi.train.fit(..., output_dir=...) first).")
  model.log_weights(tf.zeros([1, *output_shape(spec)]), 1)  # creates the variables
  tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
  return model
