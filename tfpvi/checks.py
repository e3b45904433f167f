"""Input checks with messages that name what was expected and what came.

Static checks (shapes, Python arguments) raise at trace time. Value checks are TensorFlow
assertions: they raise in eager mode and in plain `tf.function`s, and compile to nothing under
`jit_compile=True` (XLA drops assertions), so they cost nothing in compiled training loops.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "assert_binary",
    "assert_finite",
    "check_distribution",
    "check_event_shape",
    "check_num_samples",
]


def check_num_samples(num_samples, name: str = "num_samples") -> int:
  """Returns `num_samples` as a Python int, or raises ValueError if it is not an integer >= 1."""
  if isinstance(num_samples, bool) or not isinstance(num_samples, int):
    try:
      as_int = int(num_samples)
    except (TypeError, ValueError):
      as_int = None
    if as_int is None or as_int != num_samples:
      raise ValueError(f"{name} must be a Python integer >= 1, got {num_samples!r}.")
    num_samples = as_int
  if num_samples < 1:
    raise ValueError(f"{name} must be >= 1, got {num_samples}.")
  return num_samples


def check_distribution(value, role: str) -> tfd.Distribution:
  """Raises TypeError unless `value` is a `tfd.Distribution`; `role` names who returned it."""
  if not isinstance(value, tfd.Distribution):
    raise TypeError(
        f"{role} must return a tfp.distributions.Distribution, got {type(value).__name__}"
        f"{' with shape ' + str(list(value.shape)) if hasattr(value, 'shape') else ''}. "
        "Wrap network outputs in a distribution, e.g. "
        "tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)."
    )
  return value


def check_event_shape(x: tf.Tensor, distribution: tfd.Distribution, role: str) -> None:
  """Raises ValueError unless `x`'s trailing dimensions match `distribution.event_shape`."""
  event_shape = distribution.event_shape
  if event_shape.rank is None or x.shape.rank is None:
    return
  ndims = event_shape.rank
  trailing = x.shape[x.shape.rank - ndims :] if ndims else tf.TensorShape([])
  if x.shape.rank < ndims + 1 or not trailing.is_compatible_with(event_shape):
    raise ValueError(
        f"{role}: expected x with shape [batch, {', '.join(map(str, event_shape.as_list()))}] "
        f"(event shape {event_shape.as_list()}), got shape {x.shape.as_list()}."
    )


def assert_finite(x: tf.Tensor, what: str) -> tf.Tensor:
  """Returns `x` after asserting it holds no NaN or Inf."""
  return tf.debugging.assert_all_finite(
      x, message=f"{what}: expected finite values, got NaN or Inf (missing data?)."
  )


def assert_binary(x: tf.Tensor, who: str):
  """An assertion that every value of `x` is 0 or 1."""
  x = tf.convert_to_tensor(x)
  binary = tf.reduce_all(tf.logical_or(tf.equal(x, 0), tf.equal(x, 1)))
  return tf.debugging.Assert(
      binary,
      [
          f"{who}: expected binary x with values in {{0, 1}}, got values from",
          tf.reduce_min(x),
          "to",
          tf.reduce_max(x),
          "that are not all 0 or 1. Binarize the data first, e.g. "
          "tfpvi.data.load(..., binarize='dynamic'), or use a discretized-logistic decoder.",
      ],
  )
