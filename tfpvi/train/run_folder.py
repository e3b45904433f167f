"""The output folder of one `fit` run: history, checkpoints, TensorBoard events and one record.

```none
output_dir/
  history.csv       one row per logged step (written atomically, before each checkpoint)
  checkpoints/      model, optimizer, step, interval sums and the Dataset iterator
  run.json          the record (`tfpvi.run_record`): the model as class paths and constructor
                    arguments (`tfpvi.config`), what it was trained with (objective, its kwargs,
                    optimizer, batch size, preprocessing, seed, data layout), variable shapes,
                    and the caller's own sections (the data, an experiment's plan)
  tensorboard/      the logged rows as TensorBoard scalars
```

A run into a folder that holds checkpoints resumes from the last one, after three checks that
fail with one sentence: the model's variables must have the checkpoint's shapes (before TensorFlow
tries to restore them), the model must be the recorded one, and the settings must equal the
recorded ones, unless the caller resumes with `resume="force"` (the change is then recorded).
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import functools
import io
import json
import os
import pathlib
import re
import shutil
import socket
import sys
import time
from typing import Any, Callable, Optional, Union

import numpy as np
import pandas as pd
import tensorflow as tf

from tfpvi import checks, config, run_record
from tfpvi.files import atomic_write

__all__ = [
  "RECORD_FILE",
  "FolderWriteError",
  "History",
  "RunFolder",
  "checkpoints_on_disk",
  "describe_callable",
  "jsonable",
  "settings_differences",
]

RECORD_FILE = run_record.RECORD_FILE
_FINGERPRINT_STEPS = (0, 1, 10, 100, 1000, 10000, 100000)


def _note(message: str) -> None:
  print(f"tfpvi: {message}", file=sys.stderr, flush=True)


class History:
  """Rows of the training history, written atomically as CSV."""

  def __init__(self, path: Optional[pathlib.Path]):
    self.path = path
    self.rows: list[dict[str, Any]] = []

  def restore(self, last_step: int) -> None:
    """Reads the rows up to `last_step` back (a resume); says what it cannot read.

    Raises:
      ValueError: if history.csv holds something other than a history (naming the file).
    """
    if self.path is None or last_step <= 0:
      return
    if not self.path.exists():
      _note(
        f"{self.path} is missing: the history before step {last_step} is lost; training continues from the "
        "checkpoint and history.csv starts again with the rows logged from now on."
      )
      return
    text = self.path.read_text()
    if not text.strip():  # stopped before its first logged row
      return
    try:
      frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
      raise ValueError(
        f"{self.path} is not a readable training history ({type(error).__name__}: {error}); move it "
        "away to continue training without the old rows, or restore it from a copy."
      ) from None
    if "step" not in frame.columns:
      raise ValueError(
        f"{self.path} is not a training history (no 'step' column; columns {list(frame.columns)}); "
        "move it away to continue training without the old rows, or restore it from a copy."
      )
    complete = frame.dropna(subset=["step"])
    if len(frame) and not text.endswith("\n"):  # a row cut by a kill: dropped, and said
      _note(f"{self.path} ended in a cut row (step {frame['step'].iloc[-1]!r}); it is dropped.")
      complete = complete.iloc[:-1] if len(complete) == len(frame) else complete
    self.rows = complete[complete["step"] <= last_step].to_dict("records")

  def append(self, row: dict[str, Any]) -> None:
    if self.rows and self.rows[-1]["step"] == row["step"]:
      self.rows[-1].update(row)
    else:
      self.rows.append(row)

  @property
  def wall_time(self) -> float:
    return float(self.rows[-1]["wall_time"]) if self.rows else 0.0

  def frame(self) -> pd.DataFrame:
    return pd.DataFrame(self.rows)

  def write(self) -> None:
    if self.path is None:
      return
    atomic_write(self.path, self.frame().to_csv(index=False))


# -- describing settings as JSON ---------------------------------------------------------------


def describe_callable(fn: Callable) -> str:
  """A readable, stable name: "tfpvi.objectives.elbo(return_terms=True)" for a partial."""
  if isinstance(fn, functools.partial):
    args = [repr(jsonable(a)) for a in fn.args] + [f"{k}={jsonable(v)!r}" for k, v in sorted(fn.keywords.items())]
    return f"{describe_callable(fn.func)}({', '.join(args)})"
  if dataclasses.is_dataclass(fn) and not isinstance(fn, type):  # e.g. a bound object: Renyi(alpha=0.5)
    return f"{type(fn).__module__}.{fn!r}"
  name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
  module = getattr(fn, "__module__", None) or type(fn).__module__
  return f"{module}.{name}"


def schedule_fingerprint(fn: Callable) -> dict[str, Any]:
  """A schedule as its name and its values at a few steps (so two lambdas compare by values)."""
  try:
    values = [round(float(fn(float(step))), 7) for step in _FINGERPRINT_STEPS]
  except Exception as error:  # noqa: BLE001 -- recorded, not fatal: fit reports the schedule's own error
    values = f"not evaluable on the host: {type(error).__name__}"
  return {
    "schedule": describe_callable(fn),
    "values_at_steps": dict(zip(map(str, _FINGERPRINT_STEPS), values)) if isinstance(values, list) else values,
  }


def jsonable(value) -> Any:
  """A JSON value for a setting: numbers, strings, lists, dicts; callables by name; else repr."""
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  if isinstance(value, (np.generic,)):
    return value.item()
  if isinstance(value, (tf.Variable, tf.Tensor, np.ndarray)):
    array = np.asarray(value)
    return array.item() if array.size == 1 else f"{array.dtype.name} array {list(array.shape)}"
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if callable(value):
    return describe_callable(value)
  return repr(value)


def optimizer_settings(optimizer, with_learning_rate: bool) -> dict[str, Any]:
  """The optimizer's class and scalar hyperparameters (not its state: steps and slots)."""
  out = {"class": f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"}
  for name, value in sorted(vars(optimizer).items()):
    if name.startswith("_") or name in ("step", "iterations") or (name == "learning_rate" and not with_learning_rate):
      continue
    if isinstance(value, (tf.Variable, tf.Tensor)) and (value.shape.rank != 0 or value.dtype.is_integer):
      continue
    if isinstance(value, (bool, int, float, str, tf.Variable, tf.Tensor, np.generic)):
      out[name] = jsonable(value)
  return out


def settings_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """Readable differences between two settings records; keys only one side has are skipped."""
  found = []
  for key in sorted(set(old) & set(new)):
    a, b = old[key], new[key]
    if key == "optimizer" and isinstance(a, dict) and isinstance(b, dict):
      changed = [f for f in sorted(set(a) & set(b)) if a[f] != b[f]]
      found += [f"optimizer {f} {a[f]!r} before, {b[f]!r} now" for f in changed]
    elif a != b:
      found.append(f"{key} {_short(a)} before, {_short(b)} now")
  return found


def _short(value, limit: int = 160) -> str:
  text = json.dumps(value) if not isinstance(value, str) else repr(value)
  return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the folder --------------------------------------------------------------------------------


def _variables(module) -> list[tuple[tuple[str, ...], tf.Variable]]:
  """Each variable of the module once, with the path of names a checkpoint saves it under.

  The checkpoint's own view of the object graph (`tf.train.TrackableView`), walked breadth first
  as checkpoints are written, so a variable shared by two parts (a VampPrior on the model's
  encoder) has the one, shortest path the checkpoint names it by.
  """
  found, seen = [], {id(module)}
  queue = collections.deque([((), module)])
  while queue:
    path, obj = queue.popleft()
    for name, child in tf.train.TrackableView.children(obj).items():
      if id(child) in seen:
        continue
      seen.add(id(child))
      if isinstance(child, tf.Variable):
        found.append(((*path, name), child))
      else:
        queue.append(((*path, name), child))
  return sorted(found, key=lambda item: [str(part) for part in item[0]])


_KEY_PREFIX, _KEY_SUFFIX = "model/", "/.ATTRIBUTES/VARIABLE_VALUE"


def _checkpoint_key(path: tuple) -> str:
  escaped = [str(p).replace(".", "..").replace("/", ".S") for p in path]
  return _KEY_PREFIX + "/".join(escaped) + _KEY_SUFFIX


def _variable_name(key: str) -> str:
  """ "encoder/_torso/..." for the checkpoint key "model/encoder/_torso/.../.ATTRIBUTES/VARIABLE_VALUE"."""
  return key.removeprefix(_KEY_PREFIX).removesuffix(_KEY_SUFFIX)


def shape_differences(checkpoint_path: str, model) -> list[str]:
  """How the model's variables differ from those the checkpoint holds under "model/"."""
  saved = {
    key: shape
    for key, shape in tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map().items()
    if key.startswith(_KEY_PREFIX) and key.endswith(_KEY_SUFFIX) and ".OPTIMIZER_SLOT" not in key
  }
  found, matched, unmatched = [], set(), []
  for path, variable in _variables(model):
    key = _checkpoint_key(path)
    if key in saved:
      matched.add(key)
      if list(saved[key]) != variable.shape.as_list():
        found.append(
          f"{_variable_name(key)} is {list(saved[key])} in the checkpoint but {variable.shape.as_list()} here"
        )
    else:
      unmatched.append(_variable_name(key))
  extra = sorted(set(saved) - matched)
  if unmatched:
    found.append(f"the checkpoint has no {', '.join(unmatched[:3])}{' ...' if len(unmatched) > 3 else ''}")
  if extra:
    found.append(f"this model has no {', '.join(map(_variable_name, extra[:3]))}{' ...' if len(extra) > 3 else ''}")
  return found if len(found) <= 3 else found[:3] + [f"and {len(found) - 3} more"]


def _describe(model) -> tuple[Optional[dict[str, Any]], str]:
  """(the model's config, "") where it describes itself (`tfpvi.config`), else (None, why not)."""
  try:
    return config.to_config(model), ""
  except config.ConfigError as error:
    return None, (
      f"the model cannot be rebuilt from this folder: {error} Until then, `tfpvi.load_model` and "
      "`python -m tfpvi.cli.evaluate` refuse it; training and resuming work."
    )


def _step_of(checkpoint_path: str) -> int:
  """The step a checkpoint holds (fit saves it in "step")."""
  return int(tf.train.load_checkpoint(checkpoint_path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


LOCK_FILE = ".tfpvi.lock"


class FolderWriteError(OSError):
  """history.csv or a checkpoint could not be written (a full disk, a file-size limit, a read-only folder)."""


class _WriterLock:
  """One writer per run folder: an exclusive `flock` on output_dir/.tfpvi.lock for one `fit`.

  The operating system releases it when the process ends, however it ends (kill -9 included), so a
  lock is never stale; the file says who holds it.
  """

  def __init__(self, folder: pathlib.Path):
    self.folder, self.path, self.fd = folder, folder / LOCK_FILE, None

  def acquire(self) -> None:
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
      os.close(fd)
      raise ValueError(
        f"{self.folder} is being trained by {holder} ({self.path} is locked); two writers would mix their "
        "checkpoints and history. Wait for it to finish or stop it, then run this again, or train into "
        "another output_dir."
      ) from None
    os.ftruncate(fd, 0)
    os.pwrite(
      fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0
    )
    self.fd = fd

  def release(self) -> None:
    if self.fd is not None:
      os.ftruncate(self.fd, 0)
      fcntl.flock(self.fd, fcntl.LOCK_UN)
      os.close(self.fd)
      self.fd = None


def _last_tensorboard_step(folder: pathlib.Path) -> int:
  """The last step the TensorBoard event files in folder hold a "loss" point for (0 for none)."""
  last = 0
  for events in folder.glob("events.out.tfevents.*"):
    try:
      for record in tf.data.TFRecordDataset(str(events)):
        event = tf.compat.v1.Event.FromString(record.numpy())
        if any(value.tag == "loss" for value in event.summary.value):
          last = max(last, int(event.step))
    except tf.errors.DataLossError:  # a file cut by a kill: the points before the cut count
      continue
  return last


def checkpoints_on_disk(folder) -> list[tuple[int, str]]:
  """(step, path) of each checkpoint in folder/checkpoints whose index and data files are both there, by step."""
  folder = pathlib.Path(folder) / "checkpoints"
  found = []
  for path in folder.glob("ckpt-*.index"):
    match = re.fullmatch(r"ckpt-(\d+)\.index", path.name)
    if match and path.stat().st_size > 0 and list(folder.glob(f"ckpt-{match.group(1)}.data-*")):  # not cut at 0
      found.append((int(match.group(1)), str(folder / f"ckpt-{match.group(1)}")))
  return sorted(found)


class RunFolder:
  """history.csv, checkpoints/, run.json and tensorboard/ of one output_dir."""

  def __init__(self, output_dir: Union[str, os.PathLike], *, max_to_keep: int = 2):
    self.path = pathlib.Path(output_dir)
    self.history = History(self.path / "history.csv")
    self.max_to_keep = max_to_keep
    self.writer = None
    self._unsaved: list[dict[str, Any]] = []  # logged rows not yet in a checkpoint (nor in TensorBoard)
    self._lock = _WriterLock(self.path)

  def open(
    self,
    *,
    model,
    tracked: dict[str, Any],
    settings: dict[str, Any],
    info: dict[str, Any],
    resume: Union[bool, str] = True,
    steps: Optional[int] = None,
  ) -> int:
    """Creates the folder or resumes from its last checkpoint; returns the step reached.

    Args:
      model: the model (its variables already created); saved in checkpoints as "model".
      tracked: the other objects for the checkpoint (optimizer, step, ...).
      settings: what must match for a resume (objective, optimizer, data, ...), JSON-able.
      info: recorded, not compared (steps, jit_compile, ...).
      resume: True resumes a folder with equal settings; "force" resumes whatever the settings;
        False refuses a folder that holds checkpoints.
      steps: the steps the run asks for; a folder that reached more is refused.

    Raises:
      ValueError: on variable shapes that differ from the checkpoint's, on other settings (unless
        resume="force"), on resume=False with checkpoints, on a folder past `steps`, or on a
        recorded model other than this one.
    """
    if resume not in (True, False, "force"):
      raise ValueError(f"resume must be True, False or 'force', got {resume!r}.")
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as read back from run.json
    checks.check_output_dir(self.path)
    self.path.mkdir(parents=True, exist_ok=True)
    self._lock.acquire()  # released by close(), or by the end of the process
    self._repair_checkpoint_state()
    self.checkpoint = tf.train.Checkpoint(model=model, **tracked)
    self.manager = tf.train.CheckpointManager(self.checkpoint, self.path / "checkpoints", max_to_keep=self.max_to_keep)
    latest = self.manager.latest_checkpoint
    record = run_record.read(self.path)
    if latest and "settings" not in record and resume != "force":
      raise ValueError(
        f"{self.path} holds checkpoints (step {_step_of(latest)}) but no {RECORD_FILE}, so its settings cannot be "
        "checked against these; restore the file from a copy, or continue it with these settings (they are "
        "then recorded): "
        "tfpvi.train.fit(..., checkpoints=tfpvi.train.Checkpoints(resume='force')), --resume force on an "
        "experiment's command line."
      )
    changes = list(record.get("changes", []))
    model_config, model_note = _describe(model)
    step = 0
    if latest:
      try:
        differences = self._check_resume(latest, model, record.get("settings", {}), settings, resume, steps)
        self._check_model(record.get("model"), model_config)
        if differences:
          changes.append({"at_step": _step_of(latest), "differences": differences})
        step = self._restore(latest, model, tracked)
        if step >= steps:
          _note(f"{self.path} already reached step {step} of {steps} ({os.path.basename(latest)}): nothing to train.")
        else:
          _note(f"resuming {self.path} from step {step} ({os.path.basename(latest)}).")
      except (tf.errors.OpError, IndexError) as error:  # a cut or damaged checkpoint file
        raise ValueError(self._unreadable(latest, error)) from None
    variables = {"/".join(map(str, path)): variable.shape.as_list() for path, variable in _variables(model)}
    kept = {
      key: value
      for key, value in record.items()
      if key not in ("format", "settings", "run", "model", "model_note", "variables", "changes")
    }
    if model_config is not None:
      kept.pop("legacy_spec", None)  # the model is now described in full
    new_record = {
      "model": model_config,
      **({"model_note": model_note} if model_note else {}),
      **kept,
      "settings": settings,
      "run": info,
      "variables": variables,
    }
    if changes:
      new_record["changes"] = changes
    run_record.write(self.path, new_record)
    if model_note:  # said now, not first when someone evaluates the folder
      _note(f"{model_note} (recorded in {self.path / RECORD_FILE})")
    self.writer = tf.summary.create_file_writer(str(self.path / "tensorboard"))
    if step:  # rows of the checkpoint that a kill kept out of TensorBoard (after the checkpoint, before the events)
      shown = _last_tensorboard_step(self.path / "tensorboard")
      self._unsaved = [row for row in self.history.rows if int(row["step"]) > shown]
      self._write_tensorboard()
    return step

  def _write_tensorboard(self) -> None:
    for row in self._unsaved:
      with self.writer.as_default(step=int(row["step"])):
        for key, value in row.items():
          if key != "step" and value is not None and np.isfinite(value):
            tf.summary.scalar(key, value)
    self._unsaved = []
    self.writer.flush()

  def _write_failure(self, step: int, error: Exception) -> str:
    """What to say when history.csv or a checkpoint cannot be written (a full disk, a file-size limit)."""
    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    if "No space left" in text:
      reason = "the disk is full"
    elif "File too large" in text:
      reason = "a file-size limit (ulimit -f) was reached"
    else:
      reason = text.splitlines()[0]
    where = getattr(error, "filename", None) or self.path
    latest = self.manager.latest_checkpoint
    kept = (
      f"the last checkpoint, {os.path.basename(latest)} (step {_step_of(latest)}), and the history up to it are intact"
      if latest
      else "no checkpoint was written yet"
    )
    return (
      f"could not save step {step} in {where}: {reason}. Training stopped; {kept}. Free space (or raise the "
      "limit) and run the same call (or command) again to resume."
    )

  def _unreadable(self, latest: str, error: Exception) -> str:
    """What to say, and what to do, when the latest checkpoint cannot be read."""
    message = (error.message if isinstance(error, tf.errors.OpError) else str(error)).splitlines()[0]
    earlier = [(step, path) for step, path in checkpoints_on_disk(self.path) if path != latest]
    name = os.path.basename(latest)
    said = (
      f"{latest} cannot be read ({type(error).__name__}: {message}); it was cut or damaged, e.g. by a full "
      "disk or a kill while it was written. "
    )
    if earlier:
      step, path = earlier[-1]
      return said + (
        f"The previous checkpoint {os.path.basename(path)} (step {step}) is on disk: move {name}.index "
        f"and {name}.data-* out of {self.path / 'checkpoints'} and run again to resume from it."
      )
    return said + (
      f"No earlier checkpoint is on disk: restore the files from a copy, or delete {self.path} to start fresh."
    )

  def _repair_checkpoint_state(self) -> None:
    """Rebuilds checkpoints/checkpoint (TensorFlow's list of checkpoints) when it is missing or unreadable.

    Without it TensorFlow sees no checkpoint at all, and the run would silently start again at step
    0 over the trained one: the checkpoints on disk (ckpt-N.index and their data) are listed
    instead, and the repair is said on stderr.
    """
    folder = self.path / "checkpoints"
    # Temporary files of a writer that was killed mid-write (TensorFlow's checkpoint.tmp<hex>, ours
    # .NAME.<random>.tmp): never read, so they go.
    for leftover in [*folder.glob("checkpoint.tmp*"), *self.path.glob(".*.tmp")]:
      leftover.unlink(missing_ok=True)
    for leftover in folder.glob("ckpt-*_temp"):  # TensorFlow's folder for a checkpoint it failed to write
      shutil.rmtree(leftover, ignore_errors=True)
    on_disk = checkpoints_on_disk(self.path)
    if not on_disk:
      return
    state_file = folder / "checkpoint"
    try:
      state = tf.train.get_checkpoint_state(str(folder))
    except Exception:  # noqa: BLE001 -- garbage in the state file: it is rebuilt below
      state = None
    named = state.model_checkpoint_path if state is not None else ""
    if named and os.path.exists(os.path.join(folder, os.path.basename(named)) + ".index"):
      return
    reason = (
      "is missing"
      if not state_file.exists()
      else "is unreadable"
      if not named
      else f"names {os.path.basename(named)}, whose index file is gone"
    )
    paths = [path for _, path in on_disk]
    tf.compat.v1.train.update_checkpoint_state(str(folder), paths[-1], all_model_checkpoint_paths=paths)
    names = ", ".join(map(os.path.basename, paths))
    _note(
      f"{state_file} {reason}; rebuilt it from the checkpoints on disk ({names}), so the run resumes from "
      f"{os.path.basename(paths[-1])}."
    )

  def _check_resume(self, latest: str, model, recorded: dict, settings: dict, resume, steps) -> list[str]:
    """Raises unless the folder may be resumed; returns the settings differences `force` accepts."""
    at = f" (step {_step_of(latest)})"
    fresh = f"use a new output_dir or delete {self.path} to start fresh"
    if resume is False:
      raise ValueError(
        f"{self.path} already holds checkpoints{at} and resume=False; {fresh}, or pass "
        "tfpvi.train.Checkpoints(resume=True)."
      )
    shapes = shape_differences(latest, model)
    if shapes:
      raise ValueError(
        f"{self.path} holds checkpoints of another model ({'; '.join(shapes)}); {fresh}, or build the model it "
        "was trained with to continue it."
      )
    differences = settings_differences(recorded, settings)
    if differences and resume != "force":
      raise ValueError(
        f"{self.path} was trained{at} with other settings ({'; '.join(differences)}); {fresh}, or continue it "
        "with these settings: "
        "tfpvi.train.fit(..., checkpoints=tfpvi.train.Checkpoints(resume='force')), --resume force on an "
        "experiment's command line."
      )
    reached = _step_of(latest)
    if steps is not None and reached > steps:
      raise ValueError(
        f"{self.path} is already at step {reached}, past the {steps} steps asked for; ask for steps >= "
        f"{reached} to continue it, or {fresh} and train {steps} steps from scratch."
      )
    return differences

  def _restore(self, latest: str, model, tracked: dict[str, Any]) -> int:
    """Restores the checkpoint; returns its step. Interval sums of another shape restart at 0."""
    saved_shapes = tf.train.load_checkpoint(latest).get_variable_to_shape_map()
    kept = {
      name: obj
      for name, obj in tracked.items()
      if not isinstance(obj, tf.Variable)
      or saved_shapes.get(f"{name}/.ATTRIBUTES/VARIABLE_VALUE", obj.shape.as_list()) == obj.shape.as_list()
    }
    if len(kept) < len(tracked):  # a forced resume changed the objective's terms
      kept = {name: obj for name, obj in kept.items() if not name.startswith("interval_")}
    tf.train.Checkpoint(model=model, **kept).restore(latest).expect_partial().assert_existing_objects_matched()
    step = int(tracked["step"].numpy())
    self.history.restore(step)
    return step

  def _check_model(self, recorded: Optional[dict], model_config: Optional[dict]) -> None:
    """Raises if the folder records another model than this one (initial values aside)."""
    if recorded is None or model_config is None:
      return
    found = config.differences(recorded, model_config)
    if found:
      shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
      raise ValueError(
        f"{self.path / RECORD_FILE} records another model than the one being trained ({shown}); use a new "
        f"output_dir or delete {self.path} to start fresh."
      )

  def close(self) -> None:
    """Flushes TensorBoard and releases the folder for the next writer."""
    if self.writer is not None:
      self.writer.flush()
    self._lock.release()

  def save(self, step: int) -> None:
    """Writes history.csv, then a checkpoint at `step` (so a kill in between loses nothing), then TensorBoard.

    TensorBoard receives the rows logged since the previous checkpoint only once they are in one:
    rows past the checkpoint would be logged again after a resume, and TensorBoard cannot take
    points back. Rows a kill keeps out of TensorBoard after the checkpoint are written from
    history.csv when the run resumes.
    """
    try:
      self.history.write()
      self.manager.save(checkpoint_number=step)
      self._write_tensorboard()
    except (OSError, tf.errors.OpError) as error:
      raise FolderWriteError(self._write_failure(step, error)) from None

  def log(self, row: dict[str, Any]) -> None:
    self.history.append(row)
    if self._unsaved and self._unsaved[-1]["step"] == row["step"]:
      self._unsaved[-1] = {**self._unsaved[-1], **row}
    else:
      self._unsaved.append(dict(row))
