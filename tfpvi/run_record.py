"""run.json: the one record of what a run folder holds.

```none
run.json
  model        the model as class paths and constructor arguments (`tfpvi.config`), or null
  model_note   why the model could not be described, when it could not
  data         which data the model was trained on and how it was prepared (set by the caller)
  settings     what a resume must match: objective, optimizer, batch size, preprocessing, seed, ...
  run          recorded, not compared: steps asked for, jit_compile, versions, ...
  variables    the model's variables and their shapes
  changes      settings changed by forced resumes, with the step of each
  ...          sections of the caller's own (an experiment's plan), kept as they are
```

`tfpvi.train.fit` writes model, settings, run, variables and changes when it opens the folder;
every other section is the caller's (`update`) and is kept by fit. Folders written before run.json
existed hold training.json and model_spec.json instead: `read` merges them into one record, and the
next `fit` into the folder writes run.json and removes them (saying so).
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import sys
from typing import Any, Union

from tfpvi.files import atomic_write

__all__ = ["LEGACY_FILES", "RECORD_FILE", "exists", "holds_model", "machine", "read", "read_json", "update", "write"]

RECORD_FILE = "run.json"
FORMAT = 2
_LEGACY_SETTINGS, _LEGACY_SPEC = "training.json", "model_spec.json"
LEGACY_FILES = (_LEGACY_SETTINGS, _LEGACY_SPEC)

Folder = Union[str, os.PathLike]


def machine() -> str:
  """The host as a run record names it: the CPU's model name and core count, and the OS.

  Examples:
    >>> "cores" in machine()
    True
  """
  name = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        name = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{name}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


_FORCE_REMEDY = "delete it and continue with resume='force' (--resume force) to record these settings anew"


def read_json(path: pathlib.Path, remedy: str = _FORCE_REMEDY) -> dict:
  """A JSON record (a dict) of a run folder; a cut or garbled one is named, with what to do.

  Args:
    path: the file.
    remedy: what to do besides restoring it from a copy, e.g. "delete the folder to start over".

  Raises:
    ValueError: naming the file, if it is not readable JSON or holds no JSON object.
  """
  try:
    value = json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as error:
    raise ValueError(f"{path} is not readable JSON ({error}); restore it from a copy, or {remedy}.") from None
  if not isinstance(value, dict):
    raise ValueError(
      f"{path} holds a JSON {type(value).__name__}, not a run record; restore it from a copy, or {remedy}."
    )
  return value


def exists(folder: Folder) -> bool:
  """Whether the folder holds a run record (run.json, or the training.json / model_spec.json of older runs)."""
  folder = pathlib.Path(folder)
  return any((folder / name).exists() for name in (RECORD_FILE, *LEGACY_FILES))


def holds_model(folder: Folder) -> bool:
  """Whether the folder is one model's run folder: its record describes a model or a training run.

  An experiment's own folder may hold a run.json with only its sections (which experiment, smoke
  or not) above the model folders.
  """
  if not exists(folder):
    return False
  record = read(folder)
  return any(key in record for key in ("model", "model_note", "legacy_spec", "settings", "data"))


def read(folder: Folder) -> dict[str, Any]:
  """The folder's record ({} if it has none); an older folder's two files merged into one.

  In an older folder's record, the model is "legacy_spec" (the shorthand of `tfpvi.specs`, which
  `tfpvi.specs.load_model` still rebuilds) and "model" is absent.

  Raises:
    ValueError: naming the file, if it is not readable JSON.
  """
  folder = pathlib.Path(folder)
  if (folder / RECORD_FILE).exists():
    return read_json(folder / RECORD_FILE)
  record: dict[str, Any] = {}
  if (folder / _LEGACY_SETTINGS).exists():
    old = read_json(folder / _LEGACY_SETTINGS)
    record.update({key: old[key] for key in ("settings", "run", "variables", "changes") if key in old})
  if (folder / _LEGACY_SPEC).exists():
    spec = read_json(folder / _LEGACY_SPEC)
    if spec.get("data"):
      record["data"] = spec["data"]
    record["legacy_spec"] = {key: value for key, value in spec.items() if key != "data"}
  return record


def write(folder: Folder, record: dict[str, Any]) -> None:
  """Writes run.json atomically; an older folder's training.json and model_spec.json then go (said)."""
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  atomic_write(folder / RECORD_FILE, json.dumps({"format": FORMAT, **record}, indent=2))
  old = [name for name in LEGACY_FILES if (folder / name).exists()]
  for name in old:
    (folder / name).unlink()
  if old:
    print(
      f"tfpvi: {folder / RECORD_FILE} now records this run; {' and '.join(old)} (the older records, merged "
      "into it) were removed.",
      file=sys.stderr,
      flush=True,
    )


def update(folder: Folder, **sections: Any) -> dict[str, Any]:
  """Sets sections of the record (a None value removes one) and writes it; returns the record.

  For the caller's own sections (e.g. `data={"name": "mnist", "format": "binary"}`, an
  experiment's `plan`); fit's sections are written by fit.
  """
  record = {key: value for key, value in read(folder).items() if key != "format"}
  for key, value in sections.items():
    if value is None:
      record.pop(key, None)
    else:
      record[key] = json.loads(json.dumps(value))
  write(folder, record)
  return record
