"""tf.data pipelines over MNIST and Fashion-MNIST with the binarization protocols of the seeds."""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from tfpvi.data.sources import load_arrays

__all__ = ["BINARIZATIONS", "binarize_dynamic", "binarize_static", "dequantize", "load"]

BINARIZATIONS = (None, "dynamic", "static")
STATIC_BINARIZATION_SEED = 1234


def _grey_range_error(who: str, nan_count: int, low: float, high: float) -> str:
  if nan_count:
    return f"{who}: expected grey levels in [0, 1], got {nan_count} NaN or Inf values (missing data?)."
  hint = " (8-bit intensities? divide by 255 first)" if high > 1 else ""
  return f"{who}: expected grey levels in [0, 1], got values from {low:g} to {high:g}{hint}."


def binarize_static(images, seed: int = STATIC_BINARIZATION_SEED) -> np.ndarray:
  """Bernoulli pixels drawn once for a whole split, identical on every call (for evaluation).

  Args:
    images: float [N, 28, 28, 1] grey levels in [0, 1]: the whole split, in file order, so that
      example i always gets the same draw.
    seed: Python int.

  Returns:
    float32 numpy array of 0s and 1s, same shape.

  Raises:
    ValueError: if images hold NaN or Inf, or values outside [0, 1].

  Examples:
    >>> grey = np.full([2, 28, 28, 1], 0.5)
    >>> once, again = binarize_static(grey), binarize_static(grey)
    >>> bool((once == again).all()), sorted(np.unique(once).tolist())
    (True, [0.0, 1.0])
  """
  images = np.asarray(images, np.float32)
  finite = np.isfinite(images)
  if not finite.all() or images.size and (images.min() < 0 or images.max() > 1):
    nan_count = int(images.size - finite.sum())
    low, high = (float(images.min()), float(images.max())) if not nan_count else (0.0, 0.0)
    raise ValueError(_grey_range_error("binarize_static", nan_count, low, high))
  uniform = tf.random.stateless_uniform(images.shape, seed=[seed, images.shape[0]]).numpy()
  return (uniform < images).astype(np.float32)


def dequantize(images: tf.Tensor, seed: tf.Tensor, *, num_levels: int = 256) -> tf.Tensor:
  """Uniform dequantization of integer levels to [0, 1): (x + u) / num_levels, u ~ U[0, 1) (Theis et al. 2016).

  For a density model (`tfpvi.decoders.NormalMLP`) of 8-bit images; usable as fit's `preprocess`,
  fresh noise at every step. Report `tfpvi.evaluation.bits_per_dim(log_px, D,
  dequantized_levels=num_levels)`, an upper bound on the discrete data's bits/dim.

  Args:
    images: Tensor of integers 0..num_levels-1 (any float or int dtype), any shape.
    seed: [2] int Tensor, a stateless seed.
    num_levels: the number of levels (256 for 8-bit data).

  Returns:
    float32 Tensor of the same shape, in [0, 1).

  Raises:
    InvalidArgumentError: (eagerly) if images hold values that are not integers in [0, num_levels).
  """
  images = tf.cast(tf.convert_to_tensor(images), tf.float32)
  if tf.executing_eagerly():
    valid = tf.reduce_all((images >= 0) & (images <= num_levels - 1) & (tf.math.floor(images) == images))
    if not bool(valid):
      raise tf.errors.InvalidArgumentError(
        None,
        None,
        f"dequantize: expected integer levels in [0, {num_levels - 1}], got values in "
        f"[{float(tf.reduce_min(images)):g}, {float(tf.reduce_max(images)):g}] (or non-integers); give the raw "
        "levels (e.g. uint8 images), not images already scaled to [0, 1].",
      )
  noise = tf.random.stateless_uniform(tf.shape(images), seed=seed)
  return (images + noise) / float(num_levels)


def binarize_dynamic(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Fresh Bernoulli pixels for a stateless seed ([2] int): the IWAE paper's training protocol.

  Args:
    images: float Tensor of grey levels in [0, 1], any shape.
    seed: [2] int Tensor, a stateless seed.

  Returns:
    Tensor of 0s and 1s of the same shape and dtype. NaN (or Inf) pixels stay NaN, so they are never
    silently binarized: eagerly and in plain `tf.function`s they raise here; under XLA (which drops
    assertions) they reach the loss, where `tfpvi.train.fit` stops on the first non-finite value.

  Raises:
    InvalidArgumentError: if images hold NaN or Inf, or values outside [0, 1].
  """
  images = tf.convert_to_tensor(images, dtype_hint=tf.float32)
  finite = tf.math.is_finite(images)
  in_range = tf.logical_and(images >= 0, images <= 1)
  valid = tf.reduce_all(tf.logical_and(finite, in_range))
  if tf.executing_eagerly():
    if not bool(valid):
      nan_count = int(tf.size(images)) - int(tf.reduce_sum(tf.cast(finite, tf.int32)))
      low, high = (float(tf.reduce_min(images)), float(tf.reduce_max(images))) if not nan_count else (0.0, 0.0)
      raise tf.errors.InvalidArgumentError(None, None, _grey_range_error("binarize_dynamic", nan_count, low, high))
    check = []
  else:
    check = [
      tf.debugging.Assert(
        valid,
        [
          "binarize_dynamic: expected finite grey levels in [0, 1] (8-bit intensities? divide by 255 first); "
          "got values from",
          tf.reduce_min(images),
          "to",
          tf.reduce_max(images),
          "(NaN shows as nan).",
        ],
        summarize=1,
      )
    ]
  with tf.control_dependencies(check):
    binary = tf.cast(tf.random.stateless_uniform(tf.shape(images), seed=seed) < images, images.dtype)
    # images * 0 is 0 for finite pixels and NaN for NaN or Inf ones: those stay visible downstream.
    return binary + images * 0


def load(
  name: str,
  split: str,
  *,
  binarize: Optional[str] = None,
  eight_bit: bool = False,
  batch_size: Optional[int] = None,
  shuffle: bool = False,
  repeat: bool = False,
  seed: int = 0,
  drop_remainder: bool = False,
  data_dir: Optional[str] = None,
) -> tf.data.Dataset:
  """MNIST or Fashion-MNIST as a `tf.data.Dataset` of dicts {"image", "label"}.

  Args:
    name: "mnist" or "fashion_mnist".
    split: "train" (60,000 examples) or "test" (10,000).
    binarize: None for grey levels; "dynamic" draws fresh Bernoulli(pixel) images on every pass
      (Burda et al. 2016's training protocol); "static" draws once per example with a fixed seed,
      identical on every call (for evaluation).
    eight_bit: if True (and binarize is None), images hold the integer intensities 0..255 as
      float32, for discretized-logistic likelihoods.
    batch_size: if given, batch the examples.
    shuffle: shuffle the examples (with `seed`) on every pass.
    repeat: repeat forever.
    seed: seed for shuffling and dynamic binarization.
    drop_remainder: drop the last partial batch.
    data_dir: root of the local IDX folders.

  Returns:
    Dataset of {"image": float32 [28, 28, 1] (in [0, 1], binary or 0..255), "label": int64},
    with a leading batch dimension if batch_size is given.
  """
  if binarize not in BINARIZATIONS:
    raise ValueError(f"binarize must be one of {BINARIZATIONS}, got {binarize!r}.")
  if eight_bit and binarize is not None:
    raise ValueError("eight_bit=True gives integer intensities; it cannot be combined with binarize.")
  arrays = load_arrays(name, split, data_dir=data_dir)
  images = arrays.images
  if binarize == "static":
    images = binarize_static(images.astype(np.float32) / 255.0)
  dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": arrays.labels})
  if shuffle:
    dataset = dataset.shuffle(len(arrays.labels), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()
  if binarize == "dynamic":
    noise_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    dataset = tf.data.Dataset.zip((dataset, noise_seeds))
    dataset = dataset.map(
      lambda ex, s: dict(ex, image=binarize_dynamic(tf.cast(ex["image"], tf.float32) / 255.0, s)),
      num_parallel_calls=tf.data.AUTOTUNE,
    )
  else:
    dataset = dataset.map(
      lambda ex: dict(ex, image=_convert(ex, binarize, eight_bit)),
      num_parallel_calls=tf.data.AUTOTUNE,
    )
  if batch_size is not None:
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _convert(example, binarize, eight_bit):
  image = tf.cast(example["image"], tf.float32)
  if eight_bit or binarize == "static":  # static images are already binary floats
    return image
  return image / 255.0
