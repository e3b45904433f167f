"""Modules that describe themselves: constructor arguments as JSON, rebuilt by import.

A model is saved as the importable path of its class and the arguments it was built with,
recursively: `tfpvi.VAE(encoder, decoder, prior)` becomes

```none
{"class": "tfpvi.models.vae:VAE", "config": {
    "encoder": {"class": "tfpvi.models.encoders:GaussianMLP", "config": {"hidden_sizes": [200, 200], ...,
                "activation": {"function": "tensorflow:nn.tanh"}}},
    "decoder": {...}, "prior": {"class": "tensorflow_probability:distributions.Independent", ...}}}
```

and `from_config` rebuilds it by importing the classes: there is no registry to edit. What can
describe itself:

- a class decorated with `@configurable` (every encoder, decoder, prior, flow and model tfpvi
  ships is): it records the arguments each instance is built with, and gains `get_config()`;
- any object with a `get_config()` method returning its constructor's keyword arguments (the
  Keras convention), rebuilt with `cls.from_config(config)` if the class has one, else
  `cls(**config)`;
- TFP distributions and bijectors, from their public `parameters`;
- functions (activations) by their importable name, arrays and Tensors by value, variables by
  value (rebuilt as variables, which a checkpoint restore then overwrites), and None, numbers,
  strings, lists, tuples and dicts of those.

A module used in two places (a VampPrior built on the model's encoder) is written once and
referred to (`{"same_as": "encoder"}`), so the rebuilt model shares it too.

#### Examples

```python
>>> import tensorflow as tf
>>> import tfpvi
>>> encoder = tfpvi.encoders.GaussianMLP([8], latent_size=2, activation=tf.nn.tanh)
>>> config = tfpvi.config.to_config(encoder)
>>> config["class"], config["config"]["activation"]
('tfpvi.models.encoders:GaussianMLP', {'function': 'tensorflow:nn.tanh'})
>>> rebuilt = tfpvi.config.from_config(config)
>>> type(rebuilt).__name__, rebuilt.latent_size
('GaussianMLP', 2)

```
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import weakref
from typing import Any, TypeVar

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["ConfigError", "class_path", "configurable", "differences", "from_config", "get_config", "to_config"]

T = TypeVar("T")

# The arguments each instance of a @configurable class was built with. Held outside the instances:
# an attribute of a tf.Module would be tracked, and the modules among the arguments would appear a
# second time in its checkpoints.
_ARGUMENTS: "weakref.WeakKeyDictionary[Any, tuple[type, dict[str, Any]]]" = weakref.WeakKeyDictionary()

# Public namespaces searched for a class's or function's name, before its defining module (whose
# path may be internal, e.g. tensorflow.python.ops.math_ops for tf.nn.tanh).
_PUBLIC = (
  ("tensorflow", "nn", tf.nn),
  ("tensorflow", "math", tf.math),
  ("tensorflow", "", tf),
  ("tensorflow_probability", "distributions", tfp.distributions),
  ("tensorflow_probability", "bijectors", tfp.bijectors),
  ("tensorflow_probability", "math", tfp.math),
)


class ConfigError(TypeError):
  """An object that cannot be written as a config, or a config that cannot be rebuilt."""


def configurable(cls: type[T]) -> type[T]:
  """Class decorator: instances record their constructor arguments and gain `get_config()`.

  `get_config()` returns the arguments as bound to the constructor's signature, defaults filled
  in, so that `type(module)(**module.get_config())` builds the same module (fresh variables).
  A subclass of a configurable class must be decorated itself (its constructor may take other
  arguments); `get_config` refuses an undecorated subclass with a sentence that says so.

  Args:
    cls: the class; its `__init__` takes no `*args` (keyword and positional parameters are fine,
      and `**kwargs` are recorded by name).

  Returns:
    the same class, its `__init__` wrapped.

  Raises:
    TypeError: if the constructor takes `*args`.
  """
  init = cls.__init__
  signature = inspect.signature(init)
  if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
    raise TypeError(
      f"@configurable {cls.__qualname__}.__init__ takes *args, which a config cannot name; give them names."
    )

  @functools.wraps(init)
  def __init__(self, *args, **kwargs):
    if self not in _ARGUMENTS:  # the outermost constructor records (a subclass calls super().__init__)
      bound = signature.bind(self, *args, **kwargs)
      bound.apply_defaults()
      arguments = dict(bound.arguments)
      arguments.pop(next(iter(signature.parameters)))  # self
      for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
          arguments.update(arguments.pop(name, {}))
      _ARGUMENTS[self] = (cls, arguments)
    init(self, *args, **kwargs)

  cls.__init__ = __init__
  if "get_config" not in vars(cls):
    cls.get_config = get_config
  return cls


def get_config(module) -> dict[str, Any]:
  """The constructor arguments of an instance of a `@configurable` class (modules stay objects).

  Raises:
    ConfigError: if the instance's class is not itself decorated.
  """
  recorded = _ARGUMENTS.get(module)
  if recorded is None:
    raise ConfigError(
      f"{type(module).__qualname__} does not record its constructor arguments: decorate the class "
      "with @tfpvi.config.configurable."
    )
  cls, arguments = recorded
  if cls is not type(module):
    raise ConfigError(
      f"{type(module).__qualname__} subclasses the configurable {cls.__qualname__} but is not "
      "decorated itself: decorate it with @tfpvi.config.configurable."
    )
  return dict(arguments)


def class_path(obj) -> str:
  """'module:qualified.name' that imports `obj` (a class or function), public names first.

  A class defined in a module run as `python -m package.module` is named by that module (it is
  importable as such, if its top level only defines things and runs its work under
  `if __name__ == "__main__":`); one defined in a script run by its file name, or in a notebook, is not.

  Raises:
    ConfigError: if `obj` cannot be imported by name (a lambda, a local, or defined in a script or
      notebook's __main__).
  """
  name = getattr(obj, "__name__", None)
  for package, namespace, module in _PUBLIC:
    if name and getattr(module, name, None) is obj:
      return f"{package}:{namespace + '.' if namespace else ''}{name}"
  module_name, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
  what = f"{type(obj).__name__} {qualname if qualname else repr(obj)}"
  if not module_name or not qualname or "<" in qualname:
    raise ConfigError(
      f"the {what} cannot be imported by name (a lambda or a local definition); define it at the top level of a module."
    )
  main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
  if module_name == "__main__" and main_spec is not None and main_spec.name not in (None, "__main__"):
    # run as `python -m package.module`: another process imports the same definition by that name
    if _attribute_path(sys.modules["__main__"], qualname) is obj:
      return f"{main_spec.name}:{qualname}"
  if module_name == "__main__":
    raise ConfigError(
      f"the {what} is defined in __main__ (a script or a notebook), which another process cannot "
      "import; move it into a module file (e.g. my_models.py beside the script) and import it "
      "from there."
    )
  if _resolve(f"{module_name}:{qualname}") is not obj:
    raise ConfigError(
      f"the {what} is not found again as {module_name}.{qualname}; define it at the top level of a module."
    )
  return f"{module_name}:{qualname}"


def _attribute_path(namespace, qualname: str):
  """namespace.a.b for qualname "a.b", or None."""
  for part in qualname.split("."):
    namespace = getattr(namespace, part, None)
  return namespace


def _resolve(path: str):
  module_name, _, qualname = path.partition(":")
  try:
    obj = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
      obj = getattr(obj, part)
  except (ImportError, AttributeError) as error:
    raise ConfigError(
      f"{path} cannot be imported ({type(error).__name__}: {error}); is the module that defines "
      "it on the Python path (PYTHONPATH, or the folder the command runs in)?"
    ) from None
  return obj


def _arguments_of(obj) -> dict[str, Any]:
  own = getattr(type(obj), "get_config", None)
  if own is get_config or (own is None and _recorded(obj)):
    return get_config(obj)
  if callable(own):
    config = obj.get_config()
    if not isinstance(config, dict):
      raise ConfigError(
        f"{type(obj).__qualname__}.get_config() returned a {type(config).__name__}, not a dict "
        "of constructor arguments."
      )
    return config
  if isinstance(obj, (tfp.distributions.Distribution, tfp.bijectors.Bijector)):
    return dict(obj.parameters)
  if isinstance(obj, tf.Module):
    raise ConfigError(
      f"the {type(obj).__qualname__} does not describe itself, so it cannot be saved and rebuilt: "
      "decorate its class with @tfpvi.config.configurable (it then records its constructor "
      "arguments), or give it a get_config() method that returns them."
    )
  raise ConfigError(
    f"a {type(obj).__qualname__} cannot be written as a config (expected numbers, strings, lists, "
    "dicts, arrays, importable functions, or objects that describe themselves)."
  )


def _recorded(obj) -> bool:
  try:
    return obj in _ARGUMENTS
  except TypeError:  # not weakly referable or not hashable
    return False


def to_config(obj) -> Any:
  """A JSON-able description of `obj` that `from_config` rebuilds (see the module docstring).

  Raises:
    ConfigError: naming the place (e.g. "encoder" or "prior.encoder") of the first part that cannot be
      described, and what to do about it.
  """
  return _Writer().write(obj, "")


class _Writer:
  def __init__(self):
    self.seen: dict[int, str] = {}
    self.keep: list = []  # keeps the objects seen alive, so that their ids stay theirs

  def write(self, value, where: str):
    if value is None or isinstance(value, (bool, int, float, str)):
      return value
    if isinstance(value, np.generic):
      return value.item()
    if isinstance(value, tf.dtypes.DType):
      return {"dtype": value.name}
    if isinstance(value, tf.Variable):
      return {"variable": np.asarray(value).tolist(), "dtype": value.dtype.name, "trainable": bool(value.trainable)}
    if isinstance(value, (np.ndarray, tf.Tensor)):
      array = np.asarray(value)
      return {"array": array.tolist(), "dtype": array.dtype.name}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
      return {"tuple": [self.write(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
      return [self.write(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
      if set(value) & _MARKERS:  # a plain dict that looks like a marker is wrapped
        return {"dict": {k: self.write(v, _join(where, k)) for k, v in value.items()}}
      return {k: self.write(v, _join(where, k)) for k, v in value.items()}
    if inspect.isfunction(value) or inspect.isbuiltin(value) or inspect.isclass(value):
      return {"function": self._path(value, where)}
    if id(value) in self.seen:
      return {"same_as": self.seen[id(value)]}
    try:
      arguments = _arguments_of(value)
    except ConfigError as error:
      raise ConfigError(f"{where or 'the object'}: {error}") from None
    path = self._path(type(value), where)
    self.seen[id(value)] = where
    self.keep.append(value)
    return {"class": path, "config": {k: self.write(v, _join(where, k)) for k, v in arguments.items()}}

  @staticmethod
  def _path(obj, where: str) -> str:
    try:
      return class_path(obj)
    except ConfigError as error:
      raise ConfigError(f"{where or 'the object'}: {error}") from None


_MARKERS = frozenset({"class", "function", "array", "variable", "dtype", "tuple", "dict", "same_as"})


def _join(where: str, key: str) -> str:
  return f"{where}.{key}" if where else key


def from_config(config) -> Any:
  """Rebuilds what `to_config` described: classes are imported and called with their arguments.

  Raises:
    ConfigError: if a class cannot be imported (its module is not on the Python path) or does not
      accept the recorded arguments.
  """
  return _Reader().read(config, "")


class _Reader:
  def __init__(self):
    self.built: dict[str, Any] = {}

  def read(self, value, where: str):
    if isinstance(value, list):
      return [self.read(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
      return value
    if "class" in value and "config" in value:
      cls = _resolve(value["class"])
      arguments = {k: self.read(v, _join(where, k)) for k, v in value["config"].items()}
      try:
        built = cls.from_config(arguments) if callable(getattr(cls, "from_config", None)) else cls(**arguments)
      except TypeError as error:
        raise ConfigError(
          f"{where or 'the config'}: {value['class']} does not accept the recorded arguments "
          f"{sorted(arguments)} ({error})."
        ) from None
      self.built[where] = built
      return built
    if "same_as" in value:
      if value["same_as"] not in self.built:
        raise ConfigError(f"{where}: refers to {value['same_as']!r}, which the config does not build before it.")
      return self.built[value["same_as"]]
    if "function" in value:
      return _resolve(value["function"])
    if "array" in value:
      return np.asarray(value["array"], dtype=value["dtype"])
    if "variable" in value:
      return tf.Variable(np.asarray(value["variable"], dtype=value["dtype"]), trainable=value.get("trainable", True))
    if "dtype" in value:
      return tf.dtypes.as_dtype(value["dtype"])
    if "tuple" in value:
      return tuple(self.read(v, f"{where}[{i}]") for i, v in enumerate(value["tuple"]))
    if "dict" in value:
      return {k: self.read(v, _join(where, k)) for k, v in value["dict"].items()}
    return {k: self.read(v, _join(where, k)) for k, v in value.items()}


def differences(old, new, where: str = "") -> list[str]:
  """Where two configs describe different modules, e.g. ["encoder.latent_size: 16 vs 100"].

  Arrays and variables are initial values (a checkpoint holds the trained ones): they differ only
  in shape or dtype. A tuple and a list of the same values are the same setting.
  """
  old, new = (value["tuple"] if isinstance(value, dict) and set(value) == {"tuple"} else value for value in (old, new))
  if isinstance(old, dict) and isinstance(new, dict):
    arrays = [next((v for k, v in value.items() if k in ("array", "variable")), None) for value in (old, new)]
    if arrays[0] is not None and arrays[1] is not None:
      shapes = [(np.shape(value), side.get("dtype")) for value, side in zip(arrays, (old, new))]
      return [] if shapes[0] == shapes[1] else [f"{where or 'value'}: {_array(*shapes[0])} vs {_array(*shapes[1])}"]
    if set(old) == set(new) and len(old) == 1 and set(old) <= _MARKERS - {"tuple", "dict"}:  # a function or dtype
      value_old, value_new = next(iter(old.values())), next(iter(new.values()))
      return [] if value_old == value_new else [f"{where or 'value'}: {_brief(value_old)} vs {_brief(value_new)}"]
    if {"class", "config"} <= set(old) and {"class", "config"} <= set(new):  # module paths without ".config"
      found = [] if old["class"] == new["class"] else [f"{where or 'model'}: {old['class']} vs {new['class']}"]
      return found + differences(old["config"], new["config"], where)
    found = []
    for key in sorted(set(old) | set(new)):
      found += differences(old.get(key), new.get(key), _join(where, key))
    return found
  nested = any(
    isinstance(v, (dict, list))
    for v in [*(old if isinstance(old, list) else []), *(new if isinstance(new, list) else [])]
  )
  if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and nested:
    return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}[{i}]")]
  return [] if old == new else [f"{where or 'value'}: {_brief(old)} vs {_brief(new)}"]


def _array(shape, dtype) -> str:
  return f"a {dtype} array of shape {list(shape)}"


def _brief(value, limit: int = 80) -> str:
  if isinstance(value, dict) and ("array" in value or "variable" in value):
    return _array(np.shape(value.get("array", value.get("variable"))), value.get("dtype"))
  text = repr(value)
  return text if len(text) <= limit else text[: limit - 3] + "..."
