"""Decoders: Sonnet modules that map latents z [..., latent] to a likelihood p(x|z).

Every decoder accepts z with any number of leading sample and batch dimensions and returns a
distribution with `batch_shape = z.shape[:-1]` and `event_shape = output_shape`, so several Monte
Carlo samples [S, B, latent] flow through one call (seed 000's broadcasting).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.distributions import DiscretizedLogistic, DiscretizedLogisticMixture
from tfpvi.types import Activation

tfd = tfp.distributions

__all__ = ["BernoulliMLP", "DiscretizedLogisticMLP", "DiscretizedLogisticMixtureMLP"]


class _ValidatedBernoulli(tfd.Bernoulli):
  """A float Bernoulli whose `validate_args` check says what non-binary data it received."""

  def _sample_control_dependencies(self, x):
    if not self.validate_args:
      return []
    return [checks.assert_binary(x, "Bernoulli likelihood")]


class _MLPDecoder(snt.Module):
  """An MLP from z [..., latent] to `params_per_dim` raw parameters per output dimension."""

  def __init__(
      self,
      hidden_sizes: Sequence[int],
      output_shape: Sequence[int],
      params_per_dim: int,
      activation: Activation,
      validate_args: bool,
      name: Optional[str],
  ):
    super().__init__(name=name)
    self.output_shape = tuple(int(d) for d in output_shape)
    if not self.output_shape or any(d < 1 for d in self.output_shape):
      raise ValueError(f"output_shape must be a non-empty list of positive ints, got {output_shape}.")
    self.validate_args = validate_args
    self._params_per_dim = params_per_dim
    self._mlp = snt.nets.MLP(
        list(hidden_sizes) + [math.prod(self.output_shape) * params_per_dim],
        activation=activation,
    )

  def _raw_params(self, z: tf.Tensor) -> tf.Tensor:
    """Returns raw parameters [*z.shape[:-1], *output_shape, params_per_dim]."""
    z = tf.convert_to_tensor(z, dtype=tf.float32)
    if z.shape.rank is not None and z.shape.rank < 2:
      raise ValueError(
          f"{self.name}: expected z with shape [..., batch, latent], got shape {z.shape.as_list()}."
      )
    leading = tf.shape(z)[:-1]
    flat = self._mlp(tf.reshape(z, [-1, z.shape[-1]]))
    out_shape = tf.concat([leading, list(self.output_shape) + [self._params_per_dim]], axis=0)
    params = tf.reshape(flat, out_shape)
    params.set_shape(z.shape[:-1].concatenate(self.output_shape + (self._params_per_dim,)))
    return params

  def _independent(self, distribution: tfd.Distribution) -> tfd.Distribution:
    return tfd.Independent(distribution, reinterpreted_batch_ndims=len(self.output_shape))


class BernoulliMLP(_MLPDecoder):
  """An MLP decoder with independent Bernoulli pixels, for binarized images.

  `dec(z)` returns `tfd.Independent(Bernoulli(logits), len(output_shape))` over float {0, 1}
  values; its `mean()` is the pixel probabilities. log p(x|z) is the negative binary
  cross-entropy summed over pixels, in nats.
  """

  def __init__(
      self,
      hidden_sizes: Sequence[int],
      output_shape: Sequence[int],
      activation: Activation = tf.nn.relu,
      validate_args: bool = True,
      name: Optional[str] = None,
  ):
    """Builds the decoder.

    Args:
      hidden_sizes: sizes of the hidden layers.
      output_shape: event shape of x, e.g. [28, 28, 1].
      activation: nonlinearity between layers.
      validate_args: check in `log_prob` that x is binary (eager and plain `tf.function`; compiled
        away under XLA).
      name: module name.
    """
    super().__init__(hidden_sizes, output_shape, 1, activation, validate_args, name)

  def __call__(self, z: tf.Tensor) -> tfd.Distribution:
    """Returns p(x|z) with batch_shape z.shape[:-1] and event_shape output_shape."""
    logits = self._raw_params(z)[..., 0]
    return self._independent(
        _ValidatedBernoulli(logits=logits, dtype=tf.float32, validate_args=self.validate_args)
    )


def _location(raw: tf.Tensor, num_bins: int) -> tf.Tensor:
  """Maps an unconstrained output to a location in bin units, 0 -> the middle bin."""
  return (num_bins - 1) * (0.5 + raw)


def _scale(raw: tf.Tensor, num_bins: int, min_scale: float) -> tf.Tensor:
  """Maps an unconstrained output to a positive scale in bin units (about num_bins / 23 at 0)."""
  return min_scale + tf.nn.softplus(raw) * (num_bins / 16.0)


class DiscretizedLogisticMLP(_MLPDecoder):
  """An MLP decoder with independent discretized-logistic pixels, for 8-bit images.

  `dec(z)` returns `tfd.Independent(DiscretizedLogistic(loc, scale, num_bins), len(output_shape))`
  over float integers {0, ..., num_bins - 1}. Scales are floored at `min_scale` bins.
  """

  def __init__(
      self,
      hidden_sizes: Sequence[int],
      output_shape: Sequence[int],
      num_bins: int = 256,
      activation: Activation = tf.nn.relu,
      min_scale: float = 1e-2,
      validate_args: bool = True,
      name: Optional[str] = None,
  ):
    """Builds the decoder.

    Args:
      hidden_sizes: sizes of the hidden layers.
      output_shape: event shape of x, e.g. [28, 28, 1].
      num_bins: number of intensity levels; x takes values in {0, ..., num_bins - 1}.
      activation: nonlinearity between layers.
      min_scale: lower bound of the logistic scale, in bins.
      validate_args: check in `log_prob` that x holds integers in the support.
      name: module name.
    """
    super().__init__(hidden_sizes, output_shape, 2, activation, validate_args, name)
    self.num_bins = int(num_bins)
    self.min_scale = float(min_scale)

  def __call__(self, z: tf.Tensor) -> tfd.Distribution:
    """Returns p(x|z) with batch_shape z.shape[:-1] and event_shape output_shape."""
    raw_loc, raw_scale = tf.unstack(self._raw_params(z), axis=-1)
    return self._independent(
        DiscretizedLogistic(
            loc=_location(raw_loc, self.num_bins),
            scale=_scale(raw_scale, self.num_bins, self.min_scale),
            num_bins=self.num_bins,
            validate_args=self.validate_args,
        )
    )


class DiscretizedLogisticMixtureMLP(_MLPDecoder):
  """An MLP decoder with a mixture of discretized logistics per pixel (PixelCNN++'s likelihood)."""

  def __init__(
      self,
      hidden_sizes: Sequence[int],
      output_shape: Sequence[int],
      num_components: int = 5,
      num_bins: int = 256,
      activation: Activation = tf.nn.relu,
      min_scale: float = 1e-2,
      validate_args: bool = True,
      name: Optional[str] = None,
  ):
    """Builds the decoder.

    Args:
      hidden_sizes: sizes of the hidden layers.
      output_shape: event shape of x, e.g. [28, 28, 1].
      num_components: mixture components per pixel (5 in PixelCNN++).
      num_bins: number of intensity levels; x takes values in {0, ..., num_bins - 1}.
      activation: nonlinearity between layers.
      min_scale: lower bound of each component's scale, in bins.
      validate_args: check in `log_prob` that x holds integers in the support.
      name: module name.
    """
    if num_components < 1:
      raise ValueError(f"num_components must be >= 1, got {num_components}.")
    super().__init__(hidden_sizes, output_shape, 3 * num_components, activation, validate_args, name)
    self.num_components = int(num_components)
    self.num_bins = int(num_bins)
    self.min_scale = float(min_scale)

  def __call__(self, z: tf.Tensor) -> tfd.Distribution:
    """Returns p(x|z) with batch_shape z.shape[:-1] and event_shape output_shape."""
    logits, raw_loc, raw_scale = tf.split(self._raw_params(z), 3, axis=-1)
    # Spread the initial component locations over the range so components differ from the start.
    offsets = tf.linspace(-0.5, 0.5, self.num_components) if self.num_components > 1 else 0.0
    return self._independent(
        DiscretizedLogisticMixture(
            mixture_logits=logits,
            locs=_location(raw_loc + offsets, self.num_bins),
            scales=_scale(raw_scale, self.num_bins, self.min_scale),
            num_bins=self.num_bins,
            validate_args=self.validate_args,
        )
    )
