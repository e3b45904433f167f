"""Quiet TensorFlow start-up: drop the native log lines TensorFlow prints when it is imported.

Importing TensorFlow writes 7-9 lines to the process's stderr from C++ before its logging is
configured (oneDNN notes, CPU features, "Could not find cuda drivers", `failed call to cuInit` on
CPU-only machines), and `TF_CPP_MIN_LOG_LEVEL` does not remove them. `import_tensorflow` imports
TensorFlow (and lists the devices, where the CUDA lines come from) with the stderr file descriptor
redirected to a temporary file, then writes back every captured line that is not one of those
known start-up notes, so real errors and warnings still reach the user.

Set TFPVI_SHOW_STARTUP_LOG=1 to see TensorFlow's start-up lines unfiltered.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

__all__ = ["RUNTIME_NOISE", "STARTUP_NOISE", "filter_runtime_noise", "filtered_native_stderr", "import_tensorflow"]

# One pattern per kind of start-up note; lines matching none of them are passed through.
STARTUP_NOISE = re.compile(
  "|".join(
    [
      r"All log messages before absl::InitializeLog\(\) is called",
      r"oneDNN custom operations are on",
      r"cpu_feature_guard\.cc",
      r"^To enable the following instructions",
      r"rebuild TensorFlow with the appropriate compiler flags",
      r"Could not find cuda drivers",
      r"cudart_stub\.cc",
      r"failed call to cuInit",
      r"cuda_diagnostics\.cc",
      r"cuda_executor\.cc.*(NUMA|kernel driver)",
      r"Unable to register (cuDNN|cuFFT|cuBLAS) factory",
      r"computation placer already registered",
      r"TF-TRT Warning: Could not find TensorRT",
      r"Skipping registering GPU devices",
      # dm-tree, once per process, when Sonnet's custom variable getter meets a set (`snt.once`'s)
      r"Sets are not currently considered sequences",
    ]
  ),
  re.MULTILINE,
)


# Native notes TensorFlow prints while running, about its own kernels, with nothing for a user to do:
# integer ops inside TFP's samplers (e.g. a transpose of int32/int64 draws) take an Eigen kernel.
# XLA's note that it compiles TFP's argument checks away (tfpvi says where that matters, in its docs).
RUNTIME_NOISE = re.compile(
  r"oneDNN supports DT_\w+ only on platforms with AVX-512|assert_op\.cc:\d+\] Ignoring Assert operator"
)
_NATIVE_PREFIXES = (b"E0000", b"W0000", b"I0000")
_filter = None


def _may_be_native(partial: bytes) -> bool:
  """Whether an unfinished line may be the start of a native log line ("E0000 ...", held until its end)."""
  head = partial[:5]
  return any(prefix.startswith(head) for prefix in _NATIVE_PREFIXES)


def filter_runtime_noise() -> None:
  """Drops TensorFlow's runtime notes (`RUNTIME_NOISE`) from this process's stderr, passing all else.

  For the command-line tools (experiments and `python -m tfpvi.cli.evaluate`): file descriptor 2 goes
  through a pipe read by a thread that writes every byte on, except whole native log lines that
  match a known note. Text without a newline (progress bars) is passed on at once. Stops at exit.
  TFPVI_SHOW_STARTUP_LOG=1 turns it off.
  """
  global _filter
  if _filter is not None or os.environ.get("TFPVI_SHOW_STARTUP_LOG"):
    return
  try:
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
  except (OSError, ValueError, AttributeError):
    return

  def pump():
    pending = b""
    while True:
      try:
        chunk = os.read(read_end, 65536)
      except OSError:
        chunk = b""
      if not chunk:
        break
      *lines, pending = (pending + chunk).split(b"\n")
      out = b"".join(line + b"\n" for line in lines if not RUNTIME_NOISE.search(line.decode("utf-8", errors="replace")))
      if pending and not _may_be_native(pending):
        out, pending = out + pending, b""  # e.g. a progress bar's "\r..." update: on at once
      if out:
        os.write(original, out)
    if pending:
      os.write(original, pending)
    os.close(read_end)

  import atexit  # noqa: PLC0415
  import threading  # noqa: PLC0415

  thread = threading.Thread(target=pump, name="tfpvi-stderr-filter", daemon=True)
  thread.start()

  def stop():
    with contextlib.suppress(Exception):
      sys.stderr.flush()
    os.dup2(original, 2)  # the pipe's last writer goes: the thread reads to the end and stops
    thread.join(timeout=5)

  atexit.register(stop)
  _filter = thread


@contextlib.contextmanager
def filtered_native_stderr():
  """Captures file descriptor 2 inside the block and re-emits the lines that are not start-up noise."""
  if os.environ.get("TFPVI_SHOW_STARTUP_LOG"):
    yield
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError, AttributeError):  # no usable stderr descriptor (embedded interpreters)
    yield
    return
  capture = tempfile.TemporaryFile()
  try:
    os.dup2(capture.fileno(), 2)
    yield
  finally:
    with contextlib.suppress(Exception):
      sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    capture.seek(0)
    text = capture.read().decode("utf-8", errors="replace")
    capture.close()
    kept = "".join(line for line in text.splitlines(keepends=True) if not STARTUP_NOISE.search(line))
    if kept.strip():
      sys.stderr.write(kept)
      sys.stderr.flush()


def import_tensorflow():
  """Imports TensorFlow and initializes device discovery with its start-up notes filtered out."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines (e.g. "XLA service ... initialized")
  with filtered_native_stderr():
    import tensorflow as tf  # noqa: PLC0415

    tf.config.list_physical_devices()  # the CUDA probing lines come from here, not from the import
    import tensorflow_probability  # noqa: F401, PLC0415
  return tf
