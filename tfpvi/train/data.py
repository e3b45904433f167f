"""Training data for `tfpvi.train.fit`: arrays, nests of arrays and `tf.data` Datasets as batches.

The rules (one for every kind of data, so objectives for labelled data need no special case):

- `train_data` is an array or Tensor [N, ...], a tuple or dict nest of arrays that share the
  leading dimension N, or a `tf.data.Dataset` of batches (Tensors or nests).
- A batch has the structure of one element of `train_data`: a tuple `(x, y)` stays a tuple
  `(x, y)`, a dict stays a dict.
- The `inputs` selector: when an element is a dict holding the key `inputs` (default "image"),
  the batch is that entry alone. This keeps VAE objectives working on `tfpvi.data` datasets of
  `{"image", "label"}` dicts; pass `loop=tfpvi.train.Loop(inputs=None)` to `fit` to receive whole dicts.
- dtypes: a batch that is a single Tensor is float32 (images of any dtype); in a nest, floating
  leaves become float32 and integer or boolean leaves (labels) keep their dtype.

In-memory data stay on the device and batches are gathered inside the compiled loop (rows drawn
with replacement from a stateless seed); a Dataset's batches are pulled on the host and fed to
the compiled loop stacked, a group of equal shapes per call.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Optional

import numpy as np
import tensorflow as tf

__all__ = ["DEFAULT_INPUTS", "TrainData", "describe", "select_inputs"]

DEFAULT_INPUTS = "image"


def select_inputs(element, inputs: Optional[str], role: str = "train_data"):
  """Returns `element[inputs]` for a dict holding that key, else the whole element."""
  if inputs is None or not isinstance(element, Mapping):
    return element
  if inputs in element:
    return element[inputs]
  if inputs != DEFAULT_INPUTS:
    raise ValueError(f"inputs={inputs!r} names no entry of the {role} dicts, whose keys are {sorted(element)}.")
  return element


def _as_tensor(value, single: bool) -> tf.Tensor:
  tensor = value if tf.is_tensor(value) else tf.convert_to_tensor(np.asarray(value))
  if single or tensor.dtype.is_floating:
    return tf.cast(tensor, tf.float32)
  return tensor


def as_batch(element) -> Any:
  """One batch (or the whole in-memory data) with the dtype rules of this module."""
  single = not tf.nest.is_nested(element)
  return tf.nest.map_structure(lambda leaf: _as_tensor(leaf, single), element)


def _leaf_paths(nest, prefix: str) -> list[str]:
  """Names of the leaves in `tf.nest.flatten` order, e.g. ["train_data[0]", "train_data[1]"]."""
  if isinstance(nest, Mapping):
    return [path for key in sorted(nest) for path in _leaf_paths(nest[key], f"{prefix}[{key!r}]")]
  if isinstance(nest, (list, tuple)):
    return [path for i, item in enumerate(nest) for path in _leaf_paths(item, f"{prefix}[{i}]")]
  return [prefix]


def _leading_sizes(nest, role: str) -> list[tuple[str, int]]:
  leaves = tf.nest.flatten(nest)
  return [(path, int(t.shape[0]) if t.shape.rank else -1) for path, t in zip(_leaf_paths(nest, role), leaves)]


def describe(batch) -> Any:
  """A JSON-able nest of {"shape", "dtype"} per leaf (for the record of a run folder)."""
  return tf.nest.map_structure(lambda t: {"shape": [d for d in t.shape.as_list()], "dtype": t.dtype.name}, batch)


class TrainData:
  """The training (or evaluation) data of one `fit` call, as in-memory examples or a Dataset.

  Attributes:
    examples: in-memory data, a nest of Tensors [N, ...] (None for a Dataset).
    num_examples: N (None for a Dataset).
    steps_per_epoch: N / batch_size rounded up, or the Dataset's cardinality (None if unknown).
    iterator: the Dataset's iterator over its batches, repeated (None for in-memory data); it is
      saved in checkpoints so that a resumed run continues where the data were.
  """

  def __init__(
    self,
    data,
    *,
    batch_size: Optional[int],
    inputs: Optional[str] = DEFAULT_INPUTS,
    role: str = "train_data",
    repeat: bool = True,
  ):
    """Checks the data and puts in-memory examples on the device.

    Args:
      data: see the module docstring.
      batch_size: rows per batch for in-memory data; ignored for a Dataset.
      inputs: the dict key selected as the batch (module docstring), or None.
      role: the argument name used in error messages.
      repeat: training data (a Dataset repeated forever, in-memory batches of batch_size) or
        evaluation data (one pass over a Dataset, in-memory slices of 500 rows).

    Raises:
      ValueError: on no examples, leaves of different lengths, a missing or too large batch_size.
      TypeError: on data of another kind.
    """
    self.inputs = inputs
    self.role = role
    self.dataset = data if isinstance(data, tf.data.Dataset) else None
    self.examples = None
    self.num_examples = None
    self.iterator: Optional[Iterator] = None
    if self.dataset is not None:
      cardinality = int(self.dataset.cardinality())
      if cardinality == 0:
        raise ValueError(f"{role} is an empty Dataset (0 batches); expected at least one batch.")
      self.steps_per_epoch = cardinality if cardinality > 0 else None
      if repeat:
        self.iterator = iter(self.dataset.repeat())
      return
    if data is None or isinstance(data, (str, bytes)) or callable(data):
      raise TypeError(
        f"{role} must be an array [N, ...], a tuple or dict of arrays with a shared leading dimension, "
        f"or a tf.data.Dataset of batches; got {type(data).__name__}."
      )
    if isinstance(data, list) and len(data) > 4 and all(np.shape(item) == np.shape(data[0]) for item in data):
      raise TypeError(
        f"{role} is a Python list of {len(data)} arrays of shape {list(np.shape(data[0]))}; a list is read as a "
        "nest of inputs (one array per part, e.g. [images, labels]), not as examples. For a list of "
        "examples, stack them first: np.stack(images)."
      )
    self.examples = as_batch(select_inputs(data, inputs, role))
    sizes = _leading_sizes(self.examples, role)
    if any(size < 0 for _, size in sizes):
      raise ValueError(f"{role} must hold examples along a leading dimension [N, ...]; got a scalar {sizes}.")
    if len({size for _, size in sizes}) > 1:
      listed = ", ".join(f"{path} {size}" for path, size in sizes)
      raise ValueError(f"the arrays of {role} must share the leading dimension N (examples); got {listed}.")
    self.num_examples = sizes[0][1]
    if self.num_examples == 0:
      raise ValueError(f"{role} holds 0 examples; expected at least one.")
    if not repeat:  # evaluation data: sliced in fixed chunks, no batch_size
      self.batch_size, self.steps_per_epoch = None, None
      return
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
      raise ValueError(f"in-memory {role} needs batch_size >= 1 (an int), got {batch_size!r}.")
    if batch_size > self.num_examples:
      raise ValueError(
        f"{role} holds {self.num_examples} examples, fewer than batch_size {batch_size}; give "
        f"batch_size <= {self.num_examples} (batches are drawn with replacement, so a larger batch "
        "would repeat examples within every batch)."
      )
    self.batch_size = int(batch_size)
    self.steps_per_epoch = math.ceil(self.num_examples / self.batch_size)

  def record(self) -> dict[str, Any]:
    """JSON-able layout: examples and per-example shapes (in memory), or the Dataset's batch shapes."""
    if self.in_memory:
      return {"examples": self.num_examples, "example": describe(tf.nest.map_structure(lambda t: t[0], self.examples))}
    return {"examples": "dataset", "batch": describe(self.first_batch())}

  @property
  def in_memory(self) -> bool:
    return self.examples is not None

  def first_batch(self):
    """A batch to build the model's variables with (does not advance the training iterator)."""
    if self.in_memory:
      return tf.nest.map_structure(lambda t: t[: self.batch_size], self.examples)
    if getattr(self, "_first", None) is None:
      try:
        element = next(iter(self.dataset))
      except StopIteration:
        raise ValueError(f"{self.role} Dataset yielded no batches; expected at least one.") from None
      self._first = self.convert(element)
    return self._first

  def convert(self, element):
    return as_batch(select_inputs(element, self.inputs, self.role))

  def draw(self, seed: tf.Tensor):
    """In-graph: a batch of in-memory rows drawn with replacement by a stateless int32 [2] seed."""
    rows = tf.random.stateless_uniform([self.batch_size], seed, maxval=self.num_examples, dtype=tf.int64)
    return tf.nest.map_structure(lambda t: tf.gather(t, rows), self.examples)

  def next_batches(self, num: int) -> list[tuple[Any, int]]:
    """Host: the next `num` Dataset batches as [(stacked nest [n, ...], n)], grouped by shape.

    Consecutive batches of one shape are stacked into one group (one compiled call); a batch of
    another shape (e.g. a short last batch) starts a new group.
    """
    groups: list[list[Any]] = []
    signature = None
    for _ in range(num):
      batch = self.convert(next(self.iterator))
      shapes = tuple(tuple(t.shape.as_list()) for t in tf.nest.flatten(batch))
      if shapes != signature:
        groups.append([])
        signature = shapes
      groups[-1].append(batch)
    return [(tf.nest.map_structure(lambda *xs: tf.stack(xs), *group), len(group)) for group in groups]

  def eval_batches(self, size: int = 500):
    """Evaluation batches: in-memory rows in slices of `size`, or one pass over the Dataset."""
    if self.in_memory:
      for start in range(0, self.num_examples, size):
        yield tf.nest.map_structure(lambda t, s=start: t[s : s + size], self.examples)
    else:
      for element in self.dataset:
        yield self.convert(element)
