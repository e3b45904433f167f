"""PixelCNN++'s mixture of discretized logistics over whole pixels, with linear channel coupling."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.distributions.discretized_logistic import (
  IntegerSupportDistribution,
  log_bin_probability,
  positive_scale_property,
  support_assertions,
)

tfd = tfp.distributions

__all__ = ["PixelCNNMixture", "coupling_pairs"]


def coupling_pairs(num_channels: int) -> list[tuple[int, int]]:
  """The (target, source) channel pairs of the coupling coefficients, in their order on the axis.

  For RGB: [(1, 0), (2, 0), (2, 1)], i.e. G on R, B on R, B on G (PixelCNN++'s alpha, beta, gamma).
  """
  return [(i, j) for i in range(num_channels) for j in range(i)]


class PixelCNNMixture(tfd.Distribution):
  """Images of integer pixels: a K-component discretized-logistic mixture per pixel, channels coupled.

  Each pixel (h, w) draws one mixture indicator k ~ softmax(mixture_logits[h, w]), shared by its C
  channels; given k, channel c is a discretized logistic (`DiscretizedLogistic`) whose location
  depends linearly on the channels before it (Salimans et al. 2017, section 2.2):

  ```none
  P(x[h, w, :]) = sum_k pi_k prod_c DL(x_c; m_ck, s_ck)
  m_ck = locs[c, k] + sum_{j < c} coefficients[(c, j), k] * (x_j - center),  center = (num_bins - 1) / 2
  ```

  For RGB: m_G = mu_G + alpha (x_R - center), m_B = mu_B + beta (x_R - center) + gamma (x_G - center).
  Pixels are independent given the parameters; the event is the whole image [H, W, C]. Measured
  from the centre of the range, the coefficients equal PixelCNN++'s on its [-1, 1] scale. With
  all coefficients 0 the channels are independent given k (not independent overall when K > 1,
  as the indicator is shared); with C = 1 this is `DiscretizedLogisticMixture` per pixel.

  Log-probabilities use the interior-bin identity of `log_bin_probability` and a logsumexp over
  components, so they and their gradients are finite for any finite parameters and positive
  scales. Samples draw k by Gumbel-max, then the channels in order, each conditioned on the
  integer values already drawn, so that samples follow exactly the law `log_prob` describes.

  Parameters (K components, C channels, P = C (C - 1) / 2 coupling pairs, see `coupling_pairs`):
    mixture_logits: [*batch, H, W, K]; locs, scales: [*batch, H, W, C, K] in bin units;
    coefficients: [*batch, H, W, P, K].

  There is no closed-form `mean` (the coupled channel means need sums over the joint support);
  draw samples instead.

  #### Examples

  ```python
  d = PixelCNNMixture(logits, locs, scales, coefficients)   # event_shape [32, 32, 3]
  d.log_prob(images)          # images: float integers 0..255, [..., 32, 32, 3] -> [...]
  d.sample(4, seed=(0, 1))    # [4, *batch, 32, 32, 3]
  ```

  #### References

  [1] Tim Salimans, Andrej Karpathy, Xi Chen, Diederik P. Kingma. PixelCNN++: Improving the PixelCNN
      with Discretized Logistic Mixture Likelihood and Other Modifications. ICLR 2017.
  """

  def __init__(
    self,
    mixture_logits,
    locs,
    scales,
    coefficients=None,
    num_bins: int = 256,
    dtype=tf.float32,
    validate_args: bool = False,
    allow_nan_stats: bool = True,
    name: str = "PixelCNNMixture",
  ):
    """Builds the distribution.

    Args:
      mixture_logits: float Tensor [*batch, H, W, K], unnormalized log weights of the components.
      locs: float Tensor [*batch, H, W, C, K], component locations in bin units (0..num_bins-1).
      scales: float positive Tensor [*batch, H, W, C, K], component scales in bin units.
      coefficients: float Tensor [*batch, H, W, C (C - 1) / 2, K], coupling coefficients in the
        order of `coupling_pairs(C)`; None means all zeros.
      num_bins: Python int >= 2, each channel takes values in {0, ..., num_bins - 1}.
      dtype: float dtype of parameters, samples and log-probabilities.
      validate_args: if True, `log_prob` checks that its input holds integers in the support.
      allow_nan_stats: TFP convention; unused.
      name: name of the distribution.

    Raises:
      ValueError: if num_bins is not an integer >= 2, or the static shapes of the parameters do not
        agree (H, W, C and K must be known statically).
    """
    parameters = dict(locals())
    self._num_bins = IntegerSupportDistribution._checked_num_bins(num_bins)
    with tf.name_scope(name) as name:
      self._mixture_logits = tf.convert_to_tensor(mixture_logits, dtype=dtype, name="mixture_logits")
      self._locs = tf.convert_to_tensor(locs, dtype=dtype, name="locs")
      self._scales = tf.convert_to_tensor(scales, dtype=dtype, name="scales")
      self._check_shapes()
      num_pairs = len(coupling_pairs(self.num_channels))
      if coefficients is None:
        coefficients = tf.zeros(tf.concat([tf.shape(self._locs)[:-2], [num_pairs, self.num_components]], 0), dtype)
      self._coefficients = tf.convert_to_tensor(coefficients, dtype=dtype, name="coefficients")
      if self._coefficients.shape.rank is not None and self._coefficients.shape[-2] is not None:
        if self._coefficients.shape[-2] != num_pairs or self._coefficients.shape[-1] != self.num_components:
          raise ValueError(
            f"{type(self).__name__}: expected coefficients with shape [..., {num_pairs}, "
            f"{self.num_components}] (C (C - 1) / 2 pairs for C = {self.num_channels} channels, "
            f"K components), got {self._coefficients.shape.as_list()}."
          )
      super().__init__(
        dtype=dtype,
        reparameterization_type=tfd.NOT_REPARAMETERIZED,
        validate_args=validate_args,
        allow_nan_stats=allow_nan_stats,
        parameters=parameters,
        name=name,
      )

  def _check_shapes(self) -> None:
    who = type(self).__name__
    for label, tensor, rank in (
      ("mixture_logits", self._mixture_logits, 3),
      ("locs", self._locs, 4),
      ("scales", self._scales, 4),
    ):
      shape = tensor.shape
      if shape.rank is None or shape.rank < rank or any(d is None for d in shape[-rank:]):
        raise ValueError(
          f"{who}: expected {label} with static trailing shape of rank {rank} "
          f"({'[..., H, W, K]' if rank == 3 else '[..., H, W, C, K]'}), got {shape}."
        )
    height, width, channels, components = self._locs.shape[-4:]
    if self._scales.shape[-4:] != self._locs.shape[-4:]:
      raise ValueError(
        f"{who}: expected scales with trailing shape {self._locs.shape[-4:].as_list()} like locs, got "
        f"{self._scales.shape[-4:].as_list()}."
      )
    if self._mixture_logits.shape[-3:].as_list() != [height, width, components]:
      raise ValueError(
        f"{who}: expected mixture_logits with trailing shape {[height, width, components]} "
        f"([H, W, K] of locs), got {self._mixture_logits.shape[-3:].as_list()}."
      )

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return dict(
      mixture_logits=tfp.util.ParameterProperties(event_ndims=3),
      locs=tfp.util.ParameterProperties(event_ndims=4),
      scales=positive_scale_property(dtype, event_ndims=4),
      coefficients=tfp.util.ParameterProperties(event_ndims=4),
    )

  @property
  def mixture_logits(self):
    return self._mixture_logits

  @property
  def locs(self):
    return self._locs

  @property
  def scales(self):
    return self._scales

  @property
  def coefficients(self):
    return self._coefficients

  @property
  def num_bins(self) -> int:
    return self._num_bins

  @property
  def num_channels(self) -> int:
    return int(self._locs.shape[-2])

  @property
  def num_components(self) -> int:
    return int(self._locs.shape[-1])

  def _event_shape(self):
    return self._locs.shape[-4:-1]

  def _event_shape_tensor(self):
    return tf.constant(self._locs.shape[-4:-1].as_list(), tf.int32)

  def _center(self):
    return tf.constant((self._num_bins - 1) / 2.0, self.dtype)

  def _coupled_locs(self, x):
    """Component locations given the pixel values x [..., H, W, C]: [..., H, W, C, K]."""
    pairs = coupling_pairs(self.num_channels)
    if not pairs:
      return self._locs
    targets, sources = zip(*pairs)
    centered = tf.gather(x - self._center(), list(sources), axis=-1)  # [..., H, W, P]
    terms = self._coefficients * centered[..., tf.newaxis]  # [..., H, W, P, K]
    to_target = tf.one_hot(list(targets), self.num_channels, dtype=self.dtype)  # [P, C]
    return self._locs + tf.einsum("...pk,pc->...ck", terms, to_target)

  def _log_prob(self, x):
    x = tf.convert_to_tensor(x, dtype=self.dtype)
    log_mass = log_bin_probability(x[..., tf.newaxis], self._coupled_locs(x), self._scales, self._num_bins)
    log_weights = tf.math.log_softmax(self._mixture_logits, axis=-1)
    per_pixel = tf.reduce_logsumexp(log_weights + tf.reduce_sum(log_mass, axis=-2), axis=-1)
    return tf.reduce_sum(per_pixel, axis=[-2, -1])

  def _sample_n(self, n, seed=None):
    component_seed, *channel_seeds = tfp.random.split_seed(seed, n=1 + self.num_channels)
    batch_shape = self._batch_shape_tensor()
    height, width = self._locs.shape[-4:-2]
    logits_shape = tf.concat([[n], batch_shape, [height, width, self.num_components]], 0)
    tiny = tf.experimental.numpy.finfo(self.dtype.as_numpy_dtype).tiny
    uniform = tf.random.stateless_uniform(logits_shape, component_seed, minval=tiny, maxval=1.0, dtype=self.dtype)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    index = tf.argmax(self._mixture_logits + gumbel, axis=-1)  # [n, *batch, H, W]
    chosen = tf.one_hot(index, self.num_components, dtype=self.dtype)[..., tf.newaxis, :]  # [.., 1, K]
    locs = tf.reduce_sum(chosen * self._locs, axis=-1)  # [n, *batch, H, W, C]
    scales = tf.reduce_sum(chosen * self._scales, axis=-1)
    coefficients = tf.reduce_sum(chosen * self._coefficients, axis=-1)  # [n, *batch, H, W, P]
    pairs = coupling_pairs(self.num_channels)
    channels = []
    for c in range(self.num_channels):  # a static loop over channels: each depends on the earlier ones
      loc = locs[..., c]
      for p, (target, source) in enumerate(pairs):
        if target == c:
          loc = loc + coefficients[..., p] * (channels[source] - self._center())
      u = tf.random.stateless_uniform(tf.shape(loc), channel_seeds[c], minval=tiny, maxval=1.0, dtype=self.dtype)
      continuous = loc + scales[..., c] * (tf.math.log(u) - tf.math.log1p(-u))
      channels.append(tf.clip_by_value(tf.round(continuous), 0.0, self._num_bins - 1.0))
    return tf.stack(channels, axis=-1)

  def _sample_control_dependencies(self, x):
    if not self.validate_args:
      return []
    return support_assertions(x, self._num_bins, type(self).__name__)

  def _parameter_control_dependencies(self, is_init):
    if not self.validate_args or not is_init:
      return []
    return [tf.debugging.assert_positive(self._scales, message=f"{type(self).__name__}: scales must be positive.")]
