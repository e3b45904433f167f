"""Convolutional (ResNet) encoders and decoders for images, as Sonnet 2 modules returning distributions.

`ResNetEncoder` maps images [..., H, W, C] to a diagonal Gaussian q(z|x); `ResNetDecoder` maps z
[..., latent] to a per-pixel likelihood p(x|z) over integer intensities: a mixture of discretized
logistics per pixel for grey images (`tfpvi.distributions.DiscretizedLogisticMixture`) and
PixelCNN++'s channel-coupled mixture for colour (`tfpvi.distributions.PixelCNNMixture`).

Design choices (the CIFAR-10 VAE of the importance-sampling blog post needed each of them):

- Sample dimensions are folded into the batch: z [S, B, latent] runs through the convolutions as
  [S * B, latent] and the parameters are unfolded back to [S, B, H, W, ...], so K importance
  samples cost one call.
- Normalization is per example: group normalization (Wu & He 2018) over each example's channels
  and positions, never batch normalization. Batch normalization in training mixes the statistics
  of the S * B folded rows, so one image's log-likelihood would depend on the other samples and
  images of the batch (its bound is no longer a bound per example), and in evaluation it switches
  to moving averages, a different function from the one trained. Group normalization behaves the
  same in training and evaluation (no `is_training` switch to get wrong, and `tfpvi.VAE` needs
  none), and no statistic crosses examples or samples, which the tests check. It gives the
  conditioning benefit the seed saw from batch normalization. `normalization="none"` removes it.
- Residual blocks are pre-activation (He et al. 2016) and their last convolution starts at zero,
  so each block starts as the identity and deep stacks train from the first step.
- Bounded, smooth parameterizations instead of clipping (clipping zeroes gradients): the
  posterior log-scale is `max_log_scale * tanh(raw / max_log_scale)` (seed: tanh x 5), and the
  likelihood log-scale is `log(min_scale) + log_scale_range * sigmoid(raw)` (seed: sigmoid x 7),
  so no exponential can overflow and no scale reaches 0, at any network output.
- The encoder maps intensities in `input_range` linearly to [-1, 1] before its first layer (raw
  0..255 inputs saturate the network and collapse the posterior).

References:
  He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.
  Wu, He. Group Normalization. ECCV 2018.
  Kingma et al. Improving Variational Inference with Inverse Autoregressive Flow. NeurIPS 2016.
  Salimans, Karpathy, Chen, Kingma. PixelCNN++. ICLR 2017.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import precision
from tfpvi.config import configurable
from tfpvi.distributions import DiscretizedLogisticMixture, PixelCNNMixture
from tfpvi.distributions.pixelcnn_mixture import coupling_pairs
from tfpvi.types import Activation

tfd = tfp.distributions

__all__ = ["NORMALIZATIONS", "ResNetDecoder", "ResNetEncoder", "ResidualBlock", "fold_leading", "unfold_leading"]

NORMALIZATIONS = ("group", "none")


def fold_leading(x: tf.Tensor, event_rank: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Folds every leading dimension of x into one: [*lead, *event] -> ([prod(lead), *event], lead)."""
  if x.shape.rank is None:
    raise ValueError(f"expected a Tensor of known rank, got shape {x.shape}.")
  split = x.shape.rank - event_rank
  shape = tf.shape(x)
  folded = tf.reshape(x, tf.concat([[-1], shape[split:]], 0))
  folded.set_shape(tf.TensorShape([None]).concatenate(x.shape[split:]))
  return folded, shape[:split]


def unfold_leading(x: tf.Tensor, lead: tf.Tensor, static_lead: tf.TensorShape) -> tf.Tensor:
  """Inverse of `fold_leading`: [N, *rest] -> [*lead, *rest], keeping static shapes where known."""
  out = tf.reshape(x, tf.concat([lead, tf.shape(x)[1:]], 0))
  out.set_shape(static_lead.concatenate(x.shape[1:]))
  return out


def _normalization(kind: str, channels: int, groups: int, name: str):
  if kind == "none":
    return lambda h: h
  return snt.GroupNorm(math.gcd(groups, channels), name=name)


def _check_choice(value, choices, label):
  if value not in choices:
    raise ValueError(f"{label} must be one of {choices}, got {value!r}.")


@configurable
class ResidualBlock(snt.Module):
  """A pre-activation residual block: h + conv(act(norm(conv(act(norm(h)))))).

  Input and output [N, H, W, channels]; the channel count is read from the input on the first
  call. The second convolution is initialized at zero, so the block starts as the identity.
  """

  def __init__(
    self,
    activation: Activation = tf.nn.elu,
    normalization: str = "group",
    groups: int = 8,
    name: Optional[str] = None,
  ):
    super().__init__(name=name)
    _check_choice(normalization, NORMALIZATIONS, "normalization")
    self._activation = activation
    self._normalization = normalization
    self._groups = groups
    self._layers = None

  @snt.once
  def _build(self, channels: int) -> None:
    self._norm1 = _normalization(self._normalization, channels, self._groups, "norm1")
    self._conv1 = snt.Conv2D(channels, 3, name="conv1")
    self._norm2 = _normalization(self._normalization, channels, self._groups, "norm2")
    self._conv2 = snt.Conv2D(channels, 3, w_init=snt.initializers.Zeros(), name="conv2")

  def __call__(self, h: tf.Tensor) -> tf.Tensor:
    """Returns [N, H, W, C] for h [N, H, W, C]."""
    self._build(int(h.shape[-1]))
    residual = self._conv1(self._activation(self._norm1(h)))
    return h + self._conv2(self._activation(self._norm2(residual)))


@configurable
class ResNetEncoder(snt.Module):
  """A convolutional encoder returning a diagonal Gaussian q(z|x) (the CIFAR-10 encoder of the IS blog post).

  ```none
  h = conv3x3(2 (x - low) / (high - low) - 1)                   # [N, H, W, channels[0]]
  for c in channels: h = blocks(stride-2 conv(h, c))              # halves H and W per stage
  loc, raw = split(Linear(act(norm(flatten(h)))))
  q(z|x) = Independent(Normal(loc, exp(m * tanh(raw / m))))        # m = max_log_scale
  ```

  Leading dimensions of x are folded into one batch: x [*lead, H, W, C] gives batch shape [*lead]
  and event shape [latent_size]. Variables are created on the first call from x's shape.

  #### Examples

  ```python
  enc = ResNetEncoder(latent_size=32, channels=(32, 64))
  q = enc(tf.zeros([20, 28, 28, 1]))   # batch_shape [20], event_shape [32]
  ```
  """

  def __init__(
    self,
    latent_size: int,
    channels: Sequence[int] = (32, 64),
    blocks_per_stage: int = 1,
    activation: Activation = tf.nn.elu,
    normalization: str = "group",
    groups: int = 8,
    input_range: tuple[float, float] = (0.0, 255.0),
    max_log_scale: float = 5.0,
    name: Optional[str] = None,
  ):
    """Builds the encoder.

    Args:
      latent_size: dimension of z.
      channels: channels of each stage; each stage halves the spatial size.
      blocks_per_stage: residual blocks after each downsampling.
      activation: nonlinearity.
      normalization: "group" (per example, see the module docstring) or "none".
      groups: groups of the group normalization (1 is layer normalization).
      input_range: (low, high) of the input intensities, mapped linearly to [-1, 1]: (0, 255) for
        8-bit images, (0, 1) for binary or [0, 1] grey images.
      max_log_scale: bound m of the posterior log-scale, m tanh(raw / m) in (-m, m).
      name: module name.

    Raises:
      ValueError: on a non-positive size or an unknown normalization.
    """
    super().__init__(name=name)
    if latent_size < 1 or not channels or min(channels) < 1 or blocks_per_stage < 0:
      raise ValueError(
        f"expected latent_size >= 1, non-empty positive channels and blocks_per_stage >= 0, got "
        f"{latent_size}, {tuple(channels)}, {blocks_per_stage}."
      )
    _check_choice(normalization, NORMALIZATIONS, "normalization")
    low, high = (float(v) for v in input_range)
    if not high > low:
      raise ValueError(f"input_range must be (low, high) with high > low, got {input_range}.")
    self.latent_size = int(latent_size)
    self.max_log_scale = float(max_log_scale)
    self._low, self._high = low, high
    self._activation = activation
    self._stem = snt.Conv2D(channels[0], 3, name="stem")
    self._stages = []
    for i, c in enumerate(channels):
      blocks = [ResidualBlock(activation, normalization, groups, name=f"block{i}_{j}") for j in range(blocks_per_stage)]
      self._stages.append((snt.Conv2D(c, 3, stride=2, name=f"down{i}"), blocks))
    self._final_norm = _normalization(normalization, channels[-1], groups, "final_norm")
    self._head = snt.Linear(2 * self.latent_size, name="loc_and_scale")

  def _network(self, h: tf.Tensor) -> tf.Tensor:
    """[N, 2 * latent_size] raw parameters for scaled images h [N, H, W, C]."""
    h = self._stem(h)
    for down, blocks in self._stages:
      h = down(h)
      for block in blocks:
        h = block(h)
    return self._head(snt.flatten(self._activation(self._final_norm(h))))

  def __call__(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q(z|x).

    Args:
      x: float Tensor [*lead, H, W, C] of intensities in `input_range`.

    Returns:
      `tfd.Distribution` with batch shape [*lead] and event shape [latent_size].
    """
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    if x.shape.rank is not None and x.shape.rank < 4:
      raise ValueError(
        f"{self.name}: expected images with shape [batch, height, width, channels], got shape "
        f"{x.shape.as_list()} (add a channel axis to grey images: x[..., None])."
      )
    static_lead = x.shape[:-3]
    flat, lead = fold_leading(x, 3)
    params = precision.network(self._network, 2.0 * (flat - self._low) / (self._high - self._low) - 1.0)
    loc, raw_scale = tf.split(params, 2, axis=-1)
    log_scale = self.max_log_scale * tf.tanh(raw_scale / self.max_log_scale)
    loc, log_scale = (unfold_leading(t, lead, static_lead) for t in (loc, log_scale))
    return tfd.Independent(tfd.Normal(loc=loc, scale=tf.exp(log_scale)), reinterpreted_batch_ndims=1)


@configurable
class ResNetDecoder(snt.Module):
  """A convolutional decoder from z [..., latent] to a per-pixel discretized-logistic mixture p(x|z).

  ```none
  h = reshape(Linear(z), [ceil(H / 2^n), ceil(W / 2^n), channels[0]])    # n = len(channels)
  for i: h = upsample_x2(blocks(h), channels[i + 1] or channels[-1])
  params = conv3x3(act(norm(h)))[:H, :W]                                # per-pixel parameters
  ```

  The likelihood has event shape `output_shape` = [H, W, C] over the integers 0..num_bins-1:
  for C = 1, `tfd.Independent(DiscretizedLogisticMixture)` (K components per pixel, with an
  exact `mean`); otherwise `PixelCNNMixture` (one indicator per pixel, G's location linear in R,
  B's in R and G, coupling coefficients tanh-bounded as in PixelCNN++). Locations are
  `(num_bins - 1) (0.5 + raw + offset_k)` with offsets spreading the K components over the range
  at the start; log-scales are `log(min_scale) + log_scale_range * sigmoid(raw)`.

  z may carry any leading dimensions ([S, B, latent]): they are folded into one batch for the
  convolutions and restored, so the likelihood's batch shape is z.shape[:-1].

  #### Examples

  ```python
  dec = ResNetDecoder(output_shape=[32, 32, 3], num_components=5)
  p = dec(tf.zeros([10, 4, 32]))    # batch_shape [10, 4], event_shape [32, 32, 3]
  ```
  """

  def __init__(
    self,
    output_shape: Sequence[int],
    channels: Sequence[int] = (64, 32),
    blocks_per_stage: int = 1,
    num_components: int = 5,
    num_bins: int = 256,
    activation: Activation = tf.nn.elu,
    normalization: str = "group",
    groups: int = 8,
    min_scale: float = 0.1,
    log_scale_range: float = 7.0,
    validate_args: bool = True,
    name: Optional[str] = None,
  ):
    """Builds the decoder.

    Args:
      output_shape: [H, W, C], the event shape of x.
      channels: channels of each stage, from the coarsest; each stage doubles the spatial size.
      blocks_per_stage: residual blocks per stage.
      num_components: K, logistic components per pixel (1 is a single discretized logistic).
      num_bins: intensity levels; x takes values in {0, ..., num_bins - 1}.
      activation: nonlinearity.
      normalization: "group" or "none" (see the module docstring).
      groups: groups of the group normalization.
      min_scale: smallest logistic scale, in bins (0.1 puts 98.7% of the mass in one bin).
      log_scale_range: the log-scale spans [log(min_scale), log(min_scale) + log_scale_range].
      validate_args: check in `log_prob` that x holds integers in the support.
      name: module name.

    Raises:
      ValueError: on a malformed output_shape, non-positive sizes or an unknown normalization.
    """
    super().__init__(name=name)
    self.output_shape = tuple(int(d) for d in output_shape)
    if len(self.output_shape) != 3 or min(self.output_shape) < 1:
      raise ValueError(f"output_shape must be [height, width, channels] of positive ints, got {output_shape}.")
    if num_components < 1 or not channels or min(channels) < 1 or blocks_per_stage < 0 or min_scale <= 0:
      raise ValueError(
        f"expected num_components >= 1, non-empty positive channels, blocks_per_stage >= 0 and "
        f"min_scale > 0, got {num_components}, {tuple(channels)}, {blocks_per_stage}, {min_scale}."
      )
    _check_choice(normalization, NORMALIZATIONS, "normalization")
    self.num_components = int(num_components)
    self.num_bins = int(num_bins)
    self.min_scale = float(min_scale)
    self.log_scale_range = float(log_scale_range)
    self.validate_args = validate_args
    self._activation = activation
    height, width, num_channels = self.output_shape
    factor = 2 ** len(channels)
    self._start = (math.ceil(height / factor), math.ceil(width / factor), int(channels[0]))
    self._project = snt.Linear(math.prod(self._start), name="project")
    self._stages = []
    for i, c in enumerate(channels):
      blocks = [ResidualBlock(activation, normalization, groups, name=f"block{i}_{j}") for j in range(blocks_per_stage)]
      out_channels = channels[i + 1] if i + 1 < len(channels) else channels[-1]
      self._stages.append((blocks, snt.Conv2DTranspose(out_channels, 3, stride=2, name=f"up{i}")))
    self._final_norm = _normalization(normalization, channels[-1], groups, "final_norm")
    self._num_pairs = len(coupling_pairs(num_channels))
    # Per pixel: K logits, then C locations, C log-scales and P coupling coefficients per component.
    params_per_pixel = self.num_components * (1 + 2 * num_channels + self._num_pairs)
    # Small initial weights: every pixel starts near the components' spread-out locations with
    # moderate scales, instead of at arbitrary far-off locations (tens of bits/dim at step 0).
    self._head = snt.Conv2D(params_per_pixel, 3, w_init=snt.initializers.VarianceScaling(0.01), name="head")

  def _params(self, z: tf.Tensor) -> tf.Tensor:
    """Raw parameters [*z.shape[:-1], H, W, params_per_pixel]."""
    z = tf.convert_to_tensor(z, dtype=tf.float32)
    if z.shape.rank is not None and z.shape.rank < 2:
      raise ValueError(f"{self.name}: expected z with shape [..., batch, latent], got shape {z.shape.as_list()}.")
    static_lead = z.shape[:-1]
    flat, lead = fold_leading(z, 1)
    params = precision.network(self._network, flat)
    return unfold_leading(params, lead, static_lead)

  def _network(self, flat: tf.Tensor) -> tf.Tensor:
    """[N, H, W, params_per_pixel] raw parameters for latents flat [N, latent]."""
    h = tf.reshape(self._project(flat), [-1, *self._start])
    for blocks, up in self._stages:
      for block in blocks:
        h = block(h)
      h = up(h)
    height, width, _ = self.output_shape
    return self._head(self._activation(self._final_norm(h)))[:, :height, :width, :]

  def __call__(self, z: tf.Tensor) -> tfd.Distribution:
    """Returns p(x|z) with batch shape z.shape[:-1] and event shape output_shape.

    Args:
      z: float Tensor [..., latent].
    """
    params = self._params(z)
    k, c, p = self.num_components, self.output_shape[-1], self._num_pairs
    logits, raw_locs, raw_scales, raw_coefficients = tf.split(params, [k, c * k, c * k, p * k], axis=-1)

    def per_channel(t, n):  # [..., H, W, n * K] -> [..., H, W, n, K]
      out = tf.reshape(t, tf.concat([tf.shape(t)[:-1], [n, k]], 0))
      out.set_shape(t.shape[:-1].concatenate([n, k]))
      return out

    raw_locs, raw_scales, raw_coefficients = (
      per_channel(raw_locs, c),
      per_channel(raw_scales, c),
      per_channel(raw_coefficients, p),
    )
    offsets = tf.linspace(-0.5, 0.5, k) if k > 1 else tf.zeros([1])
    locs = (self.num_bins - 1) * (0.5 + raw_locs + offsets)
    scales = tf.exp(math.log(self.min_scale) + self.log_scale_range * tf.sigmoid(raw_scales))
    if c == 1:
      mixture = DiscretizedLogisticMixture(
        logits[..., tf.newaxis, :], locs, scales, num_bins=self.num_bins, validate_args=self.validate_args
      )
      return tfd.Independent(mixture, reinterpreted_batch_ndims=3)
    return PixelCNNMixture(
      logits, locs, scales, tf.tanh(raw_coefficients), num_bins=self.num_bins, validate_args=self.validate_args
    )
