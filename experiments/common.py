"""Shared plumbing for experiment modules: flags from a frozen Config, output folder, results."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import time
from typing import Any, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfpvi  # noqa: E402


def parse_config(config_cls, argv: Optional[Sequence[str]], description: str):
  """Builds a Config from command-line flags: one flag per field, plus --smoke.

  `--smoke` applies `config_cls.SMOKE` (a dict of overrides) first, for a run of seconds on tiny
  data; explicit flags win over it.
  """
  parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--smoke", action="store_true", help="a run of seconds on tiny data (for tests)")
  for field in dataclasses.fields(config_cls):
    default = field.default
    kind = type(default)
    if kind is bool:
      parser.add_argument(f"--{field.name}", type=lambda v: v.lower() in ("1", "true", "yes"), default=None,
                          help=f"(default {default})")
    elif isinstance(default, tuple):
      listed = ",".join(map(str, default))
      parser.add_argument(f"--{field.name}", type=str, default=None, help=f"comma-separated (default {listed})")
    else:
      parser.add_argument(f"--{field.name}", type=kind if default is not None else str, default=None,
                          help=f"(default {default})")
  args = parser.parse_args(argv)
  overrides = dict(getattr(config_cls, "SMOKE", {})) if args.smoke else {}
  for field in dataclasses.fields(config_cls):
    value = getattr(args, field.name)
    if value is None:
      continue
    if isinstance(field.default, tuple):
      element = type(field.default[0]) if field.default else str
      value = tuple(element(v) for v in value.split(",") if v)
    overrides[field.name] = value
  return dataclasses.replace(config_cls(), **overrides), args.smoke


def start(config_cls, argv: Optional[Sequence[str]], description: str):
  """Starts an experiment run: (config from the flags, the created output folder, start time)."""
  started = time.time()
  config, _ = parse_config(config_cls, argv, description)
  out = pathlib.Path(config.output_dir)
  out.mkdir(parents=True, exist_ok=True)
  return config, out, started


def write_results(out: pathlib.Path, config, metrics: dict[str, Any], started: float) -> dict:
  """Writes results.json: final metrics, the full config, versions and run time."""
  results = {
      "metrics": metrics,
      "config": dataclasses.asdict(config),
      "seconds": round(time.time() - started, 1),
      "versions": {
          "tfpvi": tfpvi.__version__,
          "tensorflow": tf.__version__,
          "python": platform.python_version(),
          "devices": [d.device_type for d in tf.config.list_physical_devices()],
      },
  }
  (out / "results.json").write_text(json.dumps(results, indent=2, default=_jsonable))
  return results


def _jsonable(value):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return str(value)


def mnist_like(name: str, split: str, limit: Optional[int] = None, *, eight_bit: bool = False):
  """(images float32 [N, 28, 28, 1] in [0, 1] (or 0..255 if eight_bit), labels int64 [N])."""
  arrays = tfpvi.data.load_arrays(name, split)
  images, labels = arrays.images[:limit], arrays.labels[:limit]
  images = images.astype(np.float32) if eight_bit else images.astype(np.float32) / 255.0
  return images, labels


def binarized_test_set(name: str = "mnist", limit: Optional[int] = None):
  """The statically binarized test split (as tfpvi.data.load(..., binarize='static')), first `limit`."""
  images, labels = mnist_like(name, "test")
  return tfpvi.data.binarize_static(images)[:limit], labels[:limit]


def say(message: str) -> None:
  print(message, flush=True)
