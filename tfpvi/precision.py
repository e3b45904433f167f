"""Mixed precision: the networks' matmuls and convolutions in bfloat16, everything probabilistic in float32.

A precision policy names the dtype the networks compute in:

- "float32" (the default): everything in float32.
- "mixed_bfloat16": inside `network(...)` the inputs and the module's variables are cast to
  bfloat16, so the matmuls and convolutions run in bfloat16 (AVX512_BF16 / AMX CPUs, TPUs, A100,
  H100 and later GPUs have fast bfloat16 units); the outputs come back as float32 before they
  become a distribution's parameters. Log-probabilities, log-sum-exps, KL terms, the sums over
  pixels and samples, gradients as applied, the optimizer's state and the checkpoints stay
  float32: the variables themselves are float32 and only their reads inside `network` are cast.

bfloat16 has float32's exponent range, so gradients neither overflow nor underflow where float32's
would not, and no loss scaling is needed. float16 (5 exponent bits) would need loss scaling to keep
small gradients from flushing to zero; it is not offered: the hardware that runs float16 fast
(V100 and later GPUs) runs bfloat16 fast too from the A100 on.

Where it applies: `tfpvi.train.fit` (`tfpvi.train.Loop(precision=...)`), and the evaluators
`tfpvi.evaluation.log_marginal_likelihood` and `evaluate_dataset` (`precision=...`). The library's
networks (the MLP encoders and decoders, the conv ResNets) run their layers through `network`; a
module of your own does the same by calling its layers as `tfpvi.precision.network(layers, x)`, and
runs in float32 where it does not. The policy is read when a function is traced, and compiled
functions are cached per policy (`tfpvi.xla.cached`), so float32 and mixed runs of one model never
share a trace.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator, Literal

import sonnet as snt
import tensorflow as tf
import tree

from tfpvi import _startup

__all__ = ["POLICIES", "Precision", "bfloat16_is_fast", "check", "compute_dtype", "current", "network", "policy"]

Precision = Literal["float32", "mixed_bfloat16"]
POLICIES: dict[str, tf.DType] = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16}

# dm-tree prints a note the first time it flattens a set, as Sonnet's variable getter (below) does
# with each module's `snt.once` set: printed here once, where tfpvi's filter drops it.
with _startup.filtered_native_stderr():
  tree.flatten({0})

_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("tfpvi_precision", default="float32")


def check(name: Any, argument: str = "precision") -> str:
  """Returns `name` if it is a policy; else raises ValueError listing the policies."""
  if isinstance(name, str) and name in POLICIES:
    return name
  hint = (
    " float16 would need loss scaling; use 'mixed_bfloat16' (same speed-up where both are fast, float32's range)."
    if isinstance(name, str) and "float16" in name and "bfloat16" not in name
    else ""
  )
  raise ValueError(f"{argument} must be one of {', '.join(map(repr, POLICIES))}, got {name!r}.{hint}")


def bfloat16_is_fast() -> bool:
  """Whether this machine has bfloat16 matmul units: a GPU of compute capability >= 8.0 (A100, H100,
  ...) or, without a GPU, a CPU reporting AVX512_BF16 or AMX-BF16 (Linux /proc/cpuinfo).

  Examples:
    >>> isinstance(bfloat16_is_fast(), bool)
    True
  """
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus]
    return all(c is not None and tuple(c) >= (8, 0) for c in capabilities)
  try:
    flags = set(open("/proc/cpuinfo").read().split())
  except OSError:
    return False
  return bool(flags & {"avx512_bf16", "amx_bf16"})


def current() -> str:
  """The policy in force: "float32" unless inside `policy(...)`."""
  return _CURRENT.get()


def compute_dtype() -> tf.DType:
  """The dtype networks compute in under the current policy (tf.float32 or tf.bfloat16)."""
  return POLICIES[current()]


@contextlib.contextmanager
def policy(name: str) -> Iterator[str]:
  """Sets the policy for the code inside the `with` block (nested blocks restore the outer one).

  Examples:
    >>> with policy("mixed_bfloat16"):
    ...   print(current(), compute_dtype().name)
    mixed_bfloat16 bfloat16
    >>> current()
    'float32'
  """
  token = _CURRENT.set(check(name))
  try:
    yield name
  finally:
    _CURRENT.reset(token)


def _cast(structure, dtype: tf.DType):
  def cast(x):
    if isinstance(x, (tf.Tensor, tf.Variable)) and x.dtype.is_floating and x.dtype != dtype:
      return tf.cast(x, dtype)
    return x

  return tree.map_structure(cast, structure)


def _owner(fn: Callable) -> Any:
  """The Sonnet module `fn` is, or whose method it is (None for other callables)."""
  if isinstance(fn, snt.Module):
    return fn
  owner = getattr(fn, "__self__", None)
  return owner if isinstance(owner, snt.Module) else None


def _has_variables(module: snt.Module) -> bool:
  try:
    return bool(module.variables)
  except ValueError:  # Sonnet refuses to list the variables of a module that has none yet
    return False


def network(fn: Callable, *inputs: Any) -> Any:
  """`fn(*inputs)` computed in the policy's dtype, its floating outputs returned as float32.

  Under "float32", or before the module has created its variables (the first call builds them in
  float32 whatever the policy), this is `fn(*inputs)`. Under "mixed_bfloat16", floating inputs are
  cast to bfloat16, and every `tf.Variable` read from a Sonnet module during the call is cast too
  (`snt.custom_variable_getter`), so the layers compute in bfloat16 while the variables, and the
  gradients applied to them, stay float32.

  Args:
    fn: a Sonnet module, a method of one (e.g. a module's private forward pass), or a callable
      whose layers are Sonnet modules.
    *inputs: its arguments; Tensors and nests of them.

  Returns:
    fn's output, with every floating Tensor in it as float32.

  Examples:
    >>> mlp = snt.nets.MLP([3])
    >>> y = network(mlp, tf.ones([2, 4]))  # the first call builds the float32 variables
    >>> with policy("mixed_bfloat16"):
    ...   y = network(mlp, tf.ones([2, 4]))
    >>> y.dtype.name, {v.dtype.name for v in mlp.variables}
    ('float32', {'float32'})
  """
  dtype = compute_dtype()
  owner = _owner(fn)
  built = owner is None or _has_variables(owner)
  if dtype == tf.float32 or not built:
    return fn(*inputs)
  with snt.custom_variable_getter(lambda variable: _cast(variable, dtype)):
    outputs = fn(*_cast(inputs, dtype))
  return _cast(outputs, tf.float32)
