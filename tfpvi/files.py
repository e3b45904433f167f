"""Files written so that a kill, a full disk or a second writer never leaves a half-written one."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
import time
from typing import Iterator

__all__ = ["STALE_PIN_SECONDS", "atomic_write", "pinned_checkpoint"]


def atomic_write(path: pathlib.Path, text: str) -> None:
  """Writes `text` to `path` through a temporary file of its own, synced before it is renamed over `path`.

  The temporary name is unique (two writers never share it) and is removed if the write fails, so a
  kill or a full disk leaves either the old file or the new one, never a half-written one.
  """
  handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(handle, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except BaseException:
    pathlib.Path(temporary).unlink(missing_ok=True)
    raise


@contextlib.contextmanager
def pinned_checkpoint(prefix: str) -> Iterator[str]:
  """Yields the prefix of a private copy of the checkpoint `prefix` (its .index and .data-* files).

  The copy is made of hard links in a hidden folder beside the checkpoint, so it takes no disk space
  and no time, and a training process that deletes or replaces the checkpoint meanwhile (its
  CheckpointManager keeps only the latest few) leaves the copy whole. Where the file system has no
  hard links the files are copied. The folder is removed when the block ends; one left behind by a
  reader that was killed is removed by the next pin made in the same folder, once it is older than
  `STALE_PIN_SECONDS` (no read takes that long).

  Raises:
    FileNotFoundError: if a file of the checkpoint is gone (deleted before it could be pinned).
  """
  source = pathlib.Path(prefix)
  _remove_stale_pins(source.parent)
  folder = pathlib.Path(tempfile.mkdtemp(dir=source.parent, prefix=f".pinned-{source.name}-"))
  try:
    parts = [source.with_name(source.name + ".index"), *sorted(source.parent.glob(f"{source.name}.data-*"))]
    if len(parts) < 2:
      raise FileNotFoundError(f"{prefix} has no data files (expected {source.name}.data-00000-of-00001 beside it).")
    for path in parts:
      try:
        os.link(path, folder / path.name)
      except FileNotFoundError:
        raise
      except OSError:  # no hard links here (e.g. a different kind of file system): copy instead
        shutil.copyfile(path, folder / path.name)
    yield str(folder / source.name)
  finally:
    shutil.rmtree(folder, ignore_errors=True)


STALE_PIN_SECONDS = 3600.0


def _remove_stale_pins(folder: pathlib.Path) -> None:
  """Removes the pins in folder older than STALE_PIN_SECONDS (left by a reader killed inside its block)."""
  now = time.time()
  for pin in folder.glob(".pinned-*"):
    try:
      if pin.is_dir() and now - pin.stat().st_mtime > STALE_PIN_SECONDS:
        shutil.rmtree(pin, ignore_errors=True)
    except FileNotFoundError:  # removed meanwhile by its own reader
      pass
