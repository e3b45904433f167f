"""Hierarchical latents from Sonnet modules: Burda et al.'s model with two stochastic layers.

The model is a plain `tfpvi.VAE` whose q(z|x) and p(z) are joint distributions over a dict
{"z1", "z2"}; nothing in the objectives or evaluators is specific to it.

```none
q(z1, z2 | x) = q(z1 | x) q(z2 | z1)          x  -> 200-200 tanh -> z1 (100) -> 100-100 tanh -> z2 (50)
p(x, z1, z2)  = p(z2) p(z1 | z2) p(x | z1)    z2 -> 100-100 tanh -> z1       -> 200-200 tanh -> x
p(z2) = N(0, I); every conditional Gaussian has a linear mean and an exp-linear scale; p(x|z1)
is Bernoulli.
```

as in the authors' code (yburda/iwae), which also initialises the Bernoulli output bias to the logit
of the training-set pixel means clipped to [0.001, 0.999] (`train_images` below; see
`tfpvi.decoders.pixel_mean_logits`).

```python
model = tfpvi.hierarchical.burda_two_layer(train_images=train_images)
loss = -tfpvi.objectives.iwae(model, x, num_samples=50, gradient_estimator="dreg")
# z: {"z1": [50, B, 100], "z2": [50, B, 50]}
```

References:
  Burda, Grosse, Salakhutdinov. Importance weighted autoencoders. ICLR 2016 (section 5, appendix).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.config import configurable
from tfpvi.models import decoders
from tfpvi.models.vae import VAE
from tfpvi.types import Activation

tfd = tfp.distributions

__all__ = ["GaussianLayer", "TwoLayerEncoder", "TwoLayerPrior", "burda_two_layer", "from_spec", "two_layer_spec"]

_ACTIVATIONS = {"tanh": tf.nn.tanh, "relu": tf.nn.relu, "elu": tf.nn.elu, "softplus": tf.nn.softplus}


@configurable
class GaussianLayer(snt.Module):
  """A stochastic layer: h -> MLP -> N(Linear(.), exp(Linear(.))) as one event of size latent_size.

  Accepts inputs with any leading dimensions [..., features] (or [..., *event] with
  `input_ndims` > 1) and returns a distribution with batch shape [...].
  """

  def __init__(
    self,
    hidden_sizes: Sequence[int],
    latent_size: int,
    activation: Activation = tf.nn.tanh,
    *,
    input_ndims: int = 1,
    name: Optional[str] = None,
  ):
    """Builds the layer.

    Args:
      hidden_sizes: deterministic hidden layers before the Gaussian, e.g. [200, 200].
      latent_size: size of the Gaussian event.
      activation: nonlinearity of the hidden layers (tanh in Burda et al.).
      input_ndims: trailing input dimensions that form one example (3 for images [28, 28, 1]).
      name: module name.
    """
    super().__init__(name=name)
    self.latent_size = int(latent_size)
    self.input_ndims = int(input_ndims)
    self._torso = snt.nets.MLP(list(hidden_sizes), activation=activation, activate_final=True)
    self._loc = snt.Linear(self.latent_size, name="loc")
    self._log_scale = snt.Linear(self.latent_size, name="log_scale")

  def __call__(self, inputs: tf.Tensor) -> tfd.Distribution:
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    leading = tf.shape(inputs)[: -self.input_ndims]
    size = tf.reduce_prod(tf.shape(inputs)[-self.input_ndims :])
    hidden = self._torso(tf.reshape(inputs, tf.concat([[-1], [size]], 0)))
    out_shape = tf.concat([leading, [self.latent_size]], 0)
    loc = tf.reshape(self._loc(hidden), out_shape)
    scale = tf.reshape(tf.exp(self._log_scale(hidden)), out_shape)
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


@configurable
class TwoLayerEncoder(snt.Module):
  """q(z1, z2 | x) = q(z1 | x) q(z2 | z1) as a `tfd.JointDistributionNamed` over {"z1", "z2"}."""

  def __init__(
    self,
    latent_sizes: Sequence[int] = (100, 50),
    hidden_sizes: Sequence[Sequence[int]] = ((200, 200), (100, 100)),
    activation: Activation = tf.nn.tanh,
    input_scale: float = 1.0,
    name: Optional[str] = None,
  ):
    """Builds the encoder.

    Args:
      latent_sizes: sizes of z1 and z2.
      hidden_sizes: hidden layers of x -> z1 and of z1 -> z2.
      activation: nonlinearity of the hidden layers.
      input_scale: multiplies x first (1/255 for 8-bit intensities).
      name: module name.
    """
    super().__init__(name=name)
    self.input_scale = float(input_scale)
    self._z1 = GaussianLayer(hidden_sizes[0], latent_sizes[0], activation, input_ndims=1, name="q_z1")
    self._z2 = GaussianLayer(hidden_sizes[1], latent_sizes[1], activation, name="q_z2")

  def __call__(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q with batch shape [B] per part, events {"z1": [d1], "z2": [d2]}."""
    x = tf.convert_to_tensor(x, tf.float32) * self.input_scale
    flat = tf.reshape(x, tf.concat([tf.shape(x)[:1], [-1]], 0))
    if x.shape.rank is not None:
      flat.set_shape([x.shape[0], x.shape[1:].num_elements()])
    return tfd.JointDistributionNamed(dict(z1=self._z1(flat), z2=lambda z1: self._z2(z1)))


@configurable
class TwoLayerPrior(snt.Module):
  """p(z1, z2) = N(z2; 0, I) p(z1 | z2), a learned prior returning a `tfd.JointDistributionNamed`."""

  def __init__(
    self,
    latent_sizes: Sequence[int] = (100, 50),
    hidden_sizes: Sequence[int] = (100, 100),
    activation: Activation = tf.nn.tanh,
    name: Optional[str] = None,
  ):
    super().__init__(name=name)
    self.latent_sizes = tuple(int(d) for d in latent_sizes)
    self._z1 = GaussianLayer(hidden_sizes, self.latent_sizes[0], activation, name="p_z1")

  def __call__(self) -> tfd.Distribution:
    top = tfd.Independent(tfd.Normal(tf.zeros([self.latent_sizes[1]]), 1.0), reinterpreted_batch_ndims=1)
    return tfd.JointDistributionNamed(dict(z2=top, z1=lambda z2: self._z1(z2)))


def two_layer_spec(
  *,
  output_shape: Sequence[int] = (28, 28, 1),
  latent_sizes: Sequence[int] = (100, 50),
  hidden_sizes: Sequence[Sequence[int]] = ((200, 200), (100, 100)),
  activation: str = "tanh",
  pixel_mean_bias: bool = True,
) -> dict[str, Any]:
  """The JSON-able spec (for `tfpvi.specs.build` / `from_spec`) of `burda_two_layer`'s model."""
  hidden = [list(h) for h in hidden_sizes]
  return {
    "kind": "hierarchical",
    "encoder": {
      "class": "TwoLayerEncoder",
      "latent_sizes": list(latent_sizes),
      "hidden_sizes": hidden,
      "activation": activation,
    },
    "decoder": {
      "class": "BernoulliMLP",
      "hidden_sizes": list(reversed(hidden[0])),
      "output_shape": list(output_shape),
      "activation": activation,
      "latent_keys": ["z1"],
      "pixel_mean_bias": bool(pixel_mean_bias),
    },
    "prior": {
      "class": "TwoLayerPrior",
      "latent_sizes": list(latent_sizes),
      "hidden_sizes": list(reversed(hidden[1])),
      "activation": activation,
    },
  }


def from_spec(spec: dict[str, Any], train_images=None) -> VAE:
  """Builds the model of a `two_layer_spec` spec.

  Args:
    spec: the spec dict ("kind": "hierarchical").
    train_images: binary training images [N, *output_shape]; with the spec's pixel_mean_bias, the
      output bias starts at their pixel-mean logits. Without them it starts at 0 (the value a
      checkpoint restore then overwrites).
  """
  try:
    encoder, decoder, prior = (dict(spec[k]) for k in ("encoder", "decoder", "prior"))
    activation = _ACTIVATIONS[encoder["activation"]]
    if encoder.get("class") != "TwoLayerEncoder" or prior.get("class") != "TwoLayerPrior":
      raise ValueError
  except (KeyError, ValueError) as error:
    raise ValueError(
      "a hierarchical spec needs encoder class 'TwoLayerEncoder', prior class 'TwoLayerPrior' and an "
      f"activation in {sorted(_ACTIVATIONS)}; got {spec!r} (use tfpvi.hierarchical.two_layer_spec)."
    ) from error
  bias = None
  if decoder.get("pixel_mean_bias"):
    bias = (
      np.zeros(decoder["output_shape"], np.float32)
      if train_images is None
      else decoders.pixel_mean_logits(train_images)
    )
  return VAE(
    TwoLayerEncoder(encoder["latent_sizes"], encoder["hidden_sizes"], activation),
    decoders.BernoulliMLP(
      decoder["hidden_sizes"],
      decoder["output_shape"],
      _ACTIVATIONS[decoder["activation"]],
      output_bias=bias,
      latent_keys=decoder.get("latent_keys", ["z1"]),
    ),
    TwoLayerPrior(prior["latent_sizes"], prior["hidden_sizes"], _ACTIVATIONS[prior["activation"]]),
  )


def burda_two_layer(
  train_images=None,
  *,
  output_shape: Sequence[int] = (28, 28, 1),
  latent_sizes: Sequence[int] = (100, 50),
  hidden_sizes: Sequence[Sequence[int]] = ((200, 200), (100, 100)),
  activation: str = "tanh",
) -> VAE:
  """Burda et al.'s two-stochastic-layer model as a `tfpvi.VAE` (see the module docstring).

  Args:
    train_images: binary training images [N, *output_shape] to initialise the Bernoulli output bias
      at their clipped pixel-mean logits (the authors' code); None starts it at 0.
    output_shape: event shape of x.
    latent_sizes: sizes of z1 and z2 (100, 50).
    hidden_sizes: hidden layers of x -> z1 and z1 -> z2 ((200, 200), (100, 100)); the generative
      path mirrors them.
    activation: "tanh" (Burda et al.), "relu", "elu" or "softplus".

  Returns:
    a `tfpvi.VAE` whose latents are {"z1": [..., 100], "z2": [..., 50]}; its spec is
    `two_layer_spec(...)` with the same arguments.
  """
  spec = two_layer_spec(
    output_shape=output_shape,
    latent_sizes=latent_sizes,
    hidden_sizes=hidden_sizes,
    activation=activation,
    pixel_mean_bias=train_images is not None,
  )
  return from_spec(spec, train_images)
