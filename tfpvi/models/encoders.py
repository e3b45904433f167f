"""Encoders: Sonnet modules that map a batch of inputs to a distribution q(z|x)."""

from __future__ import annotations

from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks, precision
from tfpvi.config import configurable
from tfpvi.types import Activation

tfd = tfp.distributions

__all__ = ["GaussianMLP"]


@configurable
class GaussianMLP(snt.Module):
  """An MLP encoder returning a diagonal Gaussian q(z|x).

  `enc(x)` flattens each example of `x` (shape [B, ...]), runs it through an MLP with
  `hidden_sizes` and `activation`, and returns

  ```none
  q(z|x) = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)
  loc = Linear(h),  scale = min_scale + softplus(Linear(h))
  ```

  Examples:
    >>> encoder = GaussianMLP([8], latent_size=2)
    >>> q = encoder(tf.zeros([5, 4, 4, 1]))  # q(z|x) for 5 examples
    >>> q.batch_shape, q.event_shape
    (TensorShape([5]), TensorShape([2]))

    with batch shape [B] and event shape [latent_size]. The softplus with a floor keeps the scale
    positive and away from 0 without an exponential that can overflow.

    The MLP should see inputs of order 1. With `input_scale=None` (the default) a `tfpvi.VAE` sets
    it from its decoder: 1 / (num_bins - 1) for discretized likelihoods over {0, ..., num_bins - 1}
    (1/255 for 8-bit images), 1 otherwise. An explicit scale that would feed a discretized model's
    encoder inputs far above 1 is refused (raw 0..255 inputs saturate the first layer and the ELBO
    collapses to about -1e8). The first call fixes the example shape; a later x of another shape is
    refused with the shape expected.

    #### Examples

    ```python
    enc = GaussianMLP([200, 200], latent_size=50, activation=tf.nn.tanh)
    q = enc(tf.zeros([20, 28, 28, 1]))   # batch_shape [20], event_shape [50]
    z = q.sample(5)                       # [5, 20, 50]
    ```
  """

  def __init__(
    self,
    hidden_sizes: Sequence[int],
    latent_size: int,
    activation: Activation = tf.nn.relu,
    min_scale: float = 1e-4,
    input_scale: Optional[float] = None,
    name: Optional[str] = None,
  ):
    """Builds the encoder; variables are created on the first call, from the input's shape.

    Args:
      hidden_sizes: sizes of the hidden layers, e.g. [200, 200].
      latent_size: dimension of z.
      activation: nonlinearity between layers, e.g. `tf.nn.tanh` (Burda et al. 2016).
      min_scale: lower bound added to the posterior scale.
      input_scale: multiplies x before the MLP, e.g. 1/255 for 8-bit intensities, so that the
        first layer sees inputs of order 1 (raw 0..255 inputs saturate it and the posterior
        collapses). None: set by `tfpvi.VAE` from the decoder's likelihood (see above); 1 when
        the encoder is used on its own.
      name: module name.
    """
    super().__init__(name=name)
    if latent_size < 1:
      raise ValueError(f"latent_size must be >= 1, got {latent_size}.")
    self.latent_size = int(latent_size)
    self.min_scale = float(min_scale)
    if input_scale is not None and not float(input_scale) > 0:
      raise ValueError(f"input_scale must be a positive float or None, got {input_scale!r}.")
    self.input_scale = None if input_scale is None else float(input_scale)
    self._matched_input_scale = None  # chosen by match_likelihood when input_scale is None
    self._example_shape = None  # fixed by the first call
    self._flatten_input = snt.Flatten()
    self._torso = snt.nets.MLP(list(hidden_sizes), activation=activation, activate_final=True)
    self._head = snt.Linear(2 * self.latent_size, name="loc_and_scale")

  @property
  def effective_input_scale(self) -> float:
    """The factor x is multiplied by: `input_scale`, or the one the VAE chose when it was None (else 1)."""
    if self.input_scale is not None:
      return self.input_scale
    return self._matched_input_scale or 1.0

  def match_likelihood(self, decoder) -> None:
    """Chooses (or checks) the input scale for the data range of `decoder`'s likelihood (`tfpvi.VAE` calls it).

    Discretized decoders (with a `num_bins` attribute) model x in {0, ..., num_bins - 1}: with
    `input_scale=None` the encoder multiplies x by 1 / (num_bins - 1); an explicit `input_scale`
    that leaves inputs above 2 raises. For other decoders None means 1. `input_scale` itself keeps
    the value given (so a saved model spec rebuilds the same encoder); `effective_input_scale` is
    the factor used.

    Raises:
      ValueError: for an explicit input_scale that would feed the MLP raw intensities.
    """
    num_bins = getattr(decoder, "num_bins", None)
    if num_bins is None:
      self._matched_input_scale = None
      return
    largest = num_bins - 1
    if self.input_scale is None:
      self._matched_input_scale = 1.0 / largest
    elif self.input_scale * largest > 2.0:
      raise ValueError(
        f"{self.name}: input_scale={self.input_scale:g} feeds the encoder inputs up to "
        f"{self.input_scale * largest:g} for a decoder over {{0, ..., {largest}}}; the first layer "
        f"saturates and the ELBO collapses. Leave input_scale unset (the VAE then uses 1/{largest}) "
        f"or pass input_scale=1/{largest}."
      )

  def _check_shape(self, x: tf.Tensor) -> None:
    shape = x.shape
    if shape.rank is not None and shape.rank < 2:
      raise ValueError(f"{self.name}: expected a batch of inputs with shape [batch, ...], got shape {shape.as_list()}.")
    if self._example_shape is None:
      if shape.rank is not None and shape[1:].is_fully_defined():
        self._example_shape = shape[1:]
      return
    if shape.rank is not None and not shape[1:].is_compatible_with(self._example_shape):
      expected = [*self._example_shape.as_list()]
      hint = (
        " (one example without its batch dimension? use x[None])"
        if shape.is_compatible_with(self._example_shape)
        else ""
      )
      raise ValueError(
        f"{self.name}: expected x with shape [batch, {', '.join(map(str, expected))}] (the shape it was "
        f"built with), got shape {shape.as_list()}{hint}."
      )

  def _network(self, flat: tf.Tensor) -> tf.Tensor:
    return self._head(self._torso(flat))

  def __call__(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q(z|x).

    Args:
      x: float Tensor [B, ...], a batch of inputs; finite (NaN or Inf raise, in eager mode and
        plain `tf.function`s).

    Returns:
      `tfd.Distribution` with batch_shape [B] and event_shape [latent_size].

    Raises:
      ValueError: if x is not batched or its example shape differs from the first call's.
    """
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    self._check_shape(x)
    with tf.control_dependencies([checks.assert_finite(x, "x")]):
      x = tf.identity(x)
    params = precision.network(self._network, self._flatten_input(x * self.effective_input_scale))
    loc, raw_scale = tf.split(params, 2, axis=-1)
    scale = self.min_scale + tf.nn.softplus(raw_scale)
    return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)
