"""Compiling: when to use XLA, and the one cache of compiled functions.

Which is faster on a CPU depends on the machine and the model: benchmarks/ found XLA 2x slower
than TensorFlow's graph kernels for the Burda IWAE step on one 2-core machine and 1.5-2x faster
on another. `resolve("auto")` is the rule without a measurement (XLA exactly when a GPU is
visible); `tfpvi.train.fit` with jit_compile="auto" times both on real steps when a run is long
enough (`tfpvi.train.fitting`). True and False force either.

`function` and `cached` are the library's one way to keep compiled functions: TensorFlow counts
the traces of a `tf.function` per Python code object, so closures made anew for each of several
models (one trace each, as it should be) would add up to a "retracing" warning after five;
`function` gives each its own count. `cached` keeps one compiled function per model and key, held
weakly by the model, so that a later call reuses the trace and a dropped model takes its traces
with it.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Hashable, Union

import tensorflow as tf

from tfpvi import precision

__all__ = ["JitCompile", "cached", "cached_keys", "function", "resolve"]

JitCompile = Union[bool, str]


def resolve(jit_compile: JitCompile = "auto") -> bool:
  """True/False as given; "auto" is True iff TensorFlow sees a GPU."""
  if jit_compile == "auto":
    return bool(tf.config.list_physical_devices("GPU"))
  if isinstance(jit_compile, bool):
    return jit_compile
  raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}.")


class _Traced:
  """Calls `fn`; as an object of its own, not a closure, TensorFlow counts its traces apart."""

  def __init__(self, fn: Callable):
    self._fn = fn

  def __call__(self, *args, **kwargs):
    return self._fn(*args, **kwargs)


def function(fn: Callable, **tf_function_options) -> Callable:
  """`tf.function(fn, **tf_function_options)`, its traces counted apart from other closures' (see above)."""
  return tf.function(_Traced(fn), **tf_function_options)


# owner -> {key: compiled function}; an entry goes when its owner (a model) is garbage-collected.
_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def cached(owner, key: Hashable, build: Callable[[], Callable]) -> Callable:
  """The compiled function of `owner` (e.g. a model) for `key`, made by `build()` on first use.

  Args:
    owner: the object the function belongs to; held weakly. An owner that cannot be weakly
      referenced gets a fresh function on each call.
    key: what else the function depends on (sample counts, jit_compile, ...), hashable. The
      precision policy in force (`tfpvi.precision`) is part of the key too: a function traced
      under one policy is never reused under another.
    build: makes the function, e.g. `lambda: xla.function(fn, jit_compile=True)`. It should hold
      `owner` weakly itself if the function refers to it (or the entry lives as long as the process).

  Returns:
    the function `build()` returned for (owner, key), the same object on every later call.

  Examples:
    >>> class Model:
    ...   pass
    >>> model, built = Model(), []
    >>> make = lambda: built.append(1) or function(lambda x: 2 * x)
    >>> first = cached(model, ("double",), make)
    >>> cached(model, ("double",), make) is first, len(built), cached_keys(model)
    (True, 1, [('double',)])
  """
  key = (key, precision.current())  # a trace reads the precision policy: one function per policy
  try:
    per_owner = _CACHE.setdefault(owner, {})
  except TypeError:
    return build()
  if key not in per_owner:
    per_owner[key] = build()
  return per_owner[key]


def cached_keys(owner) -> list:
  """The keys `cached` holds a compiled function for, for `owner` under the current precision policy."""
  try:
    return [key for key, policy in _CACHE.get(owner, {}) if policy == precision.current()]
  except TypeError:
    return []
