"""When to compile with XLA.

Measured here (benchmarks/results_cpu.md): on a 2-core CPU, XLA runs the Burda IWAE step about
2x slower than TensorFlow's graph kernels, while on GPUs XLA is the faster path. So "auto"
compiles with XLA exactly when a GPU is visible; True and False force either.
"""

from __future__ import annotations

from typing import Union

import tensorflow as tf

__all__ = ["JitCompile", "resolve"]

JitCompile = Union[bool, str]


def resolve(jit_compile: JitCompile = "auto") -> bool:
  """True/False as given; "auto" is True iff TensorFlow sees a GPU."""
  if jit_compile == "auto":
    return bool(tf.config.list_physical_devices("GPU"))
  if isinstance(jit_compile, bool):
    return jit_compile
  raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}.")
