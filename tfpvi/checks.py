"""Input checks with messages that name what was expected and what came.

Static checks (shapes, Python arguments) raise at trace time. Value checks are TensorFlow
assertions: they raise in eager mode and in plain `tf.function`s, and compile to nothing under
`jit_compile=True` (XLA drops assertions), so they cost nothing in compiled training loops.
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
  "assert_binary",
  "assert_finite",
  "check_distribution",
  "check_examples",
  "check_event_shape",
  "check_num_samples",
  "check_output_dir",
  "stateless_seed",
]


def check_output_dir(path, what: str = "output_dir"):
  """Returns `path` as a pathlib.Path, or raises ValueError if it cannot be a folder.

  A path that is an existing file, or that lies under one, is refused with a sentence that names
  the file (instead of FileExistsError or NotADirectoryError from deep inside a run).
  """
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise ValueError(
      f"{what} {path} is an existing file, not a folder; give the path of a folder (new or existing) instead."
    )
  for parent in path.parents:
    if parent.exists():
      if not parent.is_dir():
        raise ValueError(f"{what} {path} lies under {parent}, which is a file, not a folder; give another path.")
      break
  return path


def stateless_seed(seed) -> tf.Tensor:
  """A stateless [2] int32 seed: a Python int gives the same seed at every call.

  `tfp.random.sanitize_seed(int)` draws the stateless seed from a stateful generator, so two calls
  with the same int differ in eager mode; here an int n becomes [n mod 2^31, n div 2^31] (any
  non-negative int up to 2^62), a Tensor or pair is used as it is, and None draws a fresh seed.

  Raises:
    ValueError: for a negative or too large int, or a value that is no seed.
  """
  if seed is None:
    return tfp.random.sanitize_seed(None)
  if isinstance(seed, (bool, np.bool_)):
    raise ValueError(f"seed must be None, a non-negative Python int or a [2] int Tensor, got the boolean {seed!r}.")
  if isinstance(seed, (int, np.integer)):
    seed = int(seed)
    if not 0 <= seed < 2**62:
      raise ValueError(f"seed must be an int in [0, 2**62), got {seed}.")
    return tf.constant([seed % 2**31, seed // 2**31], tf.int32)
  try:
    return tfp.random.sanitize_seed(seed)
  except (TypeError, ValueError) as error:
    raise ValueError(f"seed must be None, a non-negative Python int or a [2] int Tensor, got {seed!r}.") from error


MAX_SAMPLES = 2**31 - 1


def check_num_samples(num_samples, name: str = "num_samples") -> int:
  """Returns `num_samples` as a Python int, or raises ValueError unless it is an integer in [1, 2**31 - 1]."""
  if isinstance(num_samples, (bool, np.bool_)):
    raise ValueError(f"{name} must be a Python integer >= 1, got the boolean {num_samples!r}.")
  if not isinstance(num_samples, int):
    try:
      as_int = int(num_samples)
    except (TypeError, ValueError):
      as_int = None
    if as_int is None or as_int != num_samples:
      raise ValueError(f"{name} must be a Python integer >= 1, got {num_samples!r}.")
    num_samples = as_int
  if num_samples < 1:
    raise ValueError(f"{name} must be >= 1, got {num_samples}.")
  if num_samples > MAX_SAMPLES:
    raise ValueError(
      f"{name} must be at most 2**31 - 1 = {MAX_SAMPLES} (TensorFlow counts samples and chunks in "
      f"int32), got {num_samples}; that many samples per example would take years anyway."
    )
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
  """Returns `x` after asserting it holds no NaN or Inf (a plain sentence when run eagerly)."""
  message = f"{what}: expected finite values, got NaN or Inf (missing data?)."
  if tf.executing_eagerly():
    x = tf.convert_to_tensor(x)
    if x.dtype.is_floating:
      finite = tf.math.is_finite(x)
      if not bool(tf.reduce_all(finite)):
        count = int(tf.size(x)) - int(tf.reduce_sum(tf.cast(finite, tf.int32)))
        raise tf.errors.InvalidArgumentError(
          None, None, f"{what}: expected finite values, got {count} NaN or Inf of {int(tf.size(x))} (missing data?)."
        )
    return x
  return tf.debugging.assert_all_finite(x, message=message)


def _value_check(condition: tf.Tensor, message: str, value: tf.Tensor):
  """Asserts `condition`; the error is `message` followed by `value`, with no TensorFlow wrapping.

  Eagerly this raises `tf.errors.InvalidArgumentError` with the plain sentence. Inside a graph it
  is a `tf.debugging.Assert` (the sentence arrives as "assertion failed: [sentence] [value]").
  """
  if tf.executing_eagerly():
    if not bool(condition):
      raise tf.errors.InvalidArgumentError(None, None, f"{message} {float(value):g}.")
    return None
  return tf.debugging.Assert(condition, [message, value], summarize=1)


def assert_binary(x: tf.Tensor, who: str):
  """An assertion that every value of `x` is 0 or 1, naming the kind of value that is not."""
  x = tf.convert_to_tensor(x)
  between = tf.logical_and(x > 0, x < 1)
  outside = tf.logical_not(tf.logical_or(tf.logical_and(x >= 0, x <= 1), tf.math.is_nan(x)))
  advice = (
    "binarize first, e.g. tfpvi.data.binarize_static(x) or tfpvi.data.load(..., binarize='dynamic'), "
    "or use a discretized-logistic decoder for grey levels"
  )
  grey = _value_check(
    tf.logical_not(tf.reduce_any(between)),
    f"{who}: expected binary x with values in {{0, 1}}; values strictly between 0 and 1 found; {advice}. "
    "One such value:",
    tf.reduce_max(tf.where(between, x, tf.zeros_like(x))),
  )
  out_of_range = _value_check(
    tf.logical_not(tf.reduce_any(outside)),
    f"{who}: expected binary x with values in {{0, 1}}; values outside [0, 1] found (8-bit "
    f"intensities? divide by 255 and {advice}). Largest magnitude:",
    tf.reduce_max(tf.where(outside, tf.abs(x), tf.zeros_like(x))),
  )
  if grey is None:
    return None
  return tf.group(grey, out_of_range)


def check_examples(model, x: tf.Tensor) -> None:
  """Refuses x that the model cannot score: wrong shape, NaN or Inf, or outside the likelihood's support.

  Run eagerly by every estimator of log p(x) (importance sampling, AIS, `evaluate_dataset` on each
  batch before its compiled call), so that the same sentence arrives in eager, graph and XLA runs:
  XLA drops TensorFlow's assertions, and an unchecked out-of-support value would be scored as if
  it were data (uint8 images against a Bernoulli decoder give a positive "log p(x)"). Inside a
  `tf.function` only the shape is checked here; the likelihood's own assertions check the rest.

  Args:
    model: a `tfpvi.VAE` (anything with `prior` and `likelihood(z)`).
    x: [B, ...] observations.

  Raises:
    TypeError: for a model that is not a `tfpvi.VAE` (e.g. a `LinearGaussian`: use `.as_vae()`).
    ValueError: for x of the wrong shape (naming the decoder's output_shape).
    tf.errors.InvalidArgumentError: for NaN or Inf, or values outside the likelihood's support,
      with one sentence that says what was expected and what to do.
  """
  missing = [name for name in ("prior", "likelihood", "log_weight_terms") if not hasattr(model, name)]
  if missing:
    hint = " (a tfpvi.LinearGaussian: pass model.as_vae())" if hasattr(model, "as_vae") else ""
    raise TypeError(
      f"expected a tfpvi.VAE (an object with prior, likelihood(z) and log_weight_terms), got a "
      f"{type(model).__name__} without {', '.join(missing)}{hint}."
    )
  x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
  _check_examples_shape(model, x)
  if not tf.executing_eagerly():
    return
  assert_finite(x, "x")
  prior = model.prior
  z = prior.sample([1, int(tf.shape(x)[0])], seed=tf.constant([0, 0]))
  likelihood = model.likelihood(z)
  check_event_shape(x, likelihood, "log p(x|z)")
  likelihood.log_prob(x)  # the likelihood's validate_args checks raise here, eagerly, with their sentence


def _check_examples_shape(model, x: tf.Tensor) -> None:
  """Raises ValueError unless x is a batch [B, *output_shape] for a decoder that names its output_shape."""
  output_shape = getattr(getattr(model, "decoder", None), "output_shape", None)
  if output_shape is None or x.shape.rank is None:
    return
  output_shape = tf.TensorShape(output_shape)
  if x.shape.rank == output_shape.rank + 1 and x.shape[1:].is_compatible_with(output_shape):
    return
  hint = " (one example without its batch dimension? use x[None])" if x.shape.is_compatible_with(output_shape) else ""
  raise ValueError(
    f"expected x with shape [batch, {', '.join(map(str, output_shape.as_list()))}] (the decoder's "
    f"output_shape), got shape {x.shape.as_list()}{hint}."
  )
