"""A mixture of discretized logistics on the integers {0, ..., num_bins - 1}."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.distributions.discretized_logistic import (
  DiscretizedLogistic,
  IntegerSupportDistribution,
  log_bin_probability,
  positive_scale_property,
)

tfd = tfp.distributions

__all__ = ["DiscretizedLogisticMixture"]


class DiscretizedLogisticMixture(IntegerSupportDistribution):
  """A mixture of K discretized logistics sharing the support {0, ..., num_bins - 1}.

  ```none
  P(x) = sum_k softmax(mixture_logits)_k * DiscretizedLogistic(x; locs_k, scales_k)
  ```

  Mixture components are on the last axis of every parameter: `mixture_logits`, `locs` and `scales`
  have shape `batch_shape + [K]`; the distribution is scalar (event shape []). With K = 1 it equals
  `DiscretizedLogistic(locs[..., 0], scales[..., 0])`. Log-probabilities are a `logsumexp` over
  components of the stable per-bin log masses, so they stay finite at extreme parameters.

  #### References

  [1] Tim Salimans, Andrej Karpathy, Xi Chen, Diederik P. Kingma. PixelCNN++. ICLR 2017, eq. 2.
  """

  def __init__(
    self,
    mixture_logits,
    locs,
    scales,
    num_bins: int = 256,
    dtype=tf.float32,
    validate_args: bool = False,
    allow_nan_stats: bool = True,
    name: str = "DiscretizedLogisticMixture",
  ):
    """Builds the mixture.

    Args:
      mixture_logits: float Tensor `batch_shape + [K]`, unnormalized log mixture weights.
      locs: float Tensor `batch_shape + [K]`, component locations in bin units.
      scales: float positive Tensor `batch_shape + [K]`, component scales in bin units.
      num_bins: Python int >= 2, the support is {0, ..., num_bins - 1}.
      dtype: float dtype of parameters, samples and log-probabilities.
      validate_args: if True, `log_prob` checks that its input is integer-valued and in the support.
      allow_nan_stats: TFP convention; statistics here are always defined.
      name: name of the distribution.
    """
    parameters = dict(locals())
    self._num_bins = self._checked_num_bins(num_bins)
    with tf.name_scope(name) as name:
      self._mixture_logits = tf.convert_to_tensor(mixture_logits, dtype=dtype, name="logits")
      self._locs = tf.convert_to_tensor(locs, dtype=dtype, name="locs")
      self._scales = tf.convert_to_tensor(scales, dtype=dtype, name="scales")
      super().__init__(
        dtype=dtype,
        reparameterization_type=tfd.NOT_REPARAMETERIZED,
        validate_args=validate_args,
        allow_nan_stats=allow_nan_stats,
        parameters=parameters,
        name=name,
      )

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return dict(
      mixture_logits=tfp.util.ParameterProperties(event_ndims=1),
      locs=tfp.util.ParameterProperties(event_ndims=1),
      scales=positive_scale_property(dtype, event_ndims=1),
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
  def num_components(self) -> int:
    return int(self._locs.shape[-1])

  def components(self) -> DiscretizedLogistic:
    """The K components as one DiscretizedLogistic with batch shape `batch_shape + [K]`."""
    return DiscretizedLogistic(self._locs, self._scales, self._num_bins, dtype=self.dtype)

  def _log_prob(self, x):
    x = tf.convert_to_tensor(x, dtype=self.dtype)[..., tf.newaxis]
    log_mass = log_bin_probability(x, self._locs, self._scales, self._num_bins)
    log_weights = tf.math.log_softmax(self._mixture_logits, axis=-1)
    return tf.reduce_logsumexp(log_weights + log_mass, axis=-1)

  def _sample_n(self, n, seed=None):
    component_seed, value_seed = tfp.random.split_seed(seed, n=2)
    batch_shape = self._batch_shape_tensor()
    logits = tf.broadcast_to(self._mixture_logits, tf.concat([batch_shape, [self.num_components]], axis=0))
    index = tfd.Categorical(logits=logits).sample(n, seed=component_seed)  # [n, *batch]
    one_hot = tf.one_hot(index, self.num_components, dtype=self.dtype)
    loc = tf.reduce_sum(one_hot * self._locs, axis=-1)
    scale = tf.reduce_sum(one_hot * self._scales, axis=-1)
    # One draw per (sample, batch) element from the chosen component.
    return DiscretizedLogistic(loc, scale, self._num_bins, dtype=self.dtype).sample(seed=value_seed)

  def _mean(self):
    # exp(log_softmax): TensorFlow's CPU softmax kernel rejects inputs of rank > 5 (S, B, H, W, C, K).
    weights = tf.exp(tf.math.log_softmax(self._mixture_logits, axis=-1))
    return tf.reduce_sum(weights * self.components().mean(), axis=-1)
