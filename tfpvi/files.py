"""Files written so that a kill, a full disk or a second writer never leaves a half-written one."""

from __future__ import annotations

import os
import pathlib
import tempfile

__all__ = ["atomic_write"]


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
