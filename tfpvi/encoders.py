"""Encoders: Sonnet modules that map a batch of inputs to a distribution q(z|x)."""

from __future__ import annotations

from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.types import Activation

tfd = tfp.distributions

__all__ = ["GaussianMLP"]


class GaussianMLP(snt.Module):
  """An MLP encoder returning a diagonal Gaussian q(z|x).

  `enc(x)` flattens each example of `x` (shape [B, ...]), runs it through an MLP with
  `hidden_sizes` and `activation`, and returns

  ```none
  q(z|x) = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)
  loc = Linear(h),  scale = min_scale + softplus(Linear(h))
  ```

  with batch shape [B] and event shape [latent_size]. The softplus with a floor keeps the scale
  positive and away from 0 without an exponential that can overflow.

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
      input_scale: float = 1.0,
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
        collapses).
      name: module name.
    """
    super().__init__(name=name)
    if latent_size < 1:
      raise ValueError(f"latent_size must be >= 1, got {latent_size}.")
    self.latent_size = int(latent_size)
    self.min_scale = float(min_scale)
    self.input_scale = float(input_scale)
    self._flatten_input = snt.Flatten()
    self._torso = snt.nets.MLP(list(hidden_sizes), activation=activation, activate_final=True)
    self._head = snt.Linear(2 * self.latent_size, name="loc_and_scale")

  def __call__(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q(z|x).

    Args:
      x: float Tensor [B, ...], a batch of inputs.

    Returns:
      `tfd.Distribution` with batch_shape [B] and event_shape [latent_size].
    """
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    if x.shape.rank is not None and x.shape.rank < 2:
      raise ValueError(
          f"{self.name}: expected a batch of inputs with shape [batch, ...], got shape "
          f"{x.shape.as_list()}."
      )
    hidden = self._torso(self._flatten_input(x * self.input_scale))
    loc, raw_scale = tf.split(self._head(hidden), 2, axis=-1)
    scale = self.min_scale + tf.nn.softplus(raw_scale)
    return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)
