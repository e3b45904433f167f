"""8-bit colour images: CIFAR-10 and SVHN through TensorFlow Datasets, or a local .npz copy.

Sources are tried in order and each miss is kept, so that when nothing works the error says what
was tried and how to get the files (as `tfpvi.data.load_arrays` does for MNIST):

1. a local file `<cache>/<name>/<split>.npz` with arrays `images` (uint8 [N, 32, 32, 3]) and
   `labels` (int [N]), where <cache> is the `data_dir` argument, else $TFPVI_DATA_DIR, else
   ~/.cache/tfpvi;
2. TensorFlow Datasets (CIFAR-10 is `cifar10`, SVHN is `svhn_cropped`), where it can download:
   tried only when the data set's download address answers an HTTP HEAD request within
   `PROBE_TIMEOUT_S` seconds, so that an offline machine gets the DataNotFoundError at once
   instead of TFDS's download retries (which can hang without end).

`generated_rgb` makes structured 32x32x3 8-bit images for tests and smoke runs on machines with
neither.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Optional

import numpy as np

from tfpvi.data.sources import Arrays, DataNotFoundError, cache_dir

__all__ = ["DOWNLOAD_URLS", "PROBE_TIMEOUT_S", "RGB_DATASETS", "generated_rgb", "load_rgb"]

RGB_DATASETS = {"cifar10": "cifar10", "svhn": "svhn_cropped"}  # our name -> TFDS name
_SPLITS = ("train", "test")
# Where TFDS downloads each data set from (its cifar10 / svhn_cropped builders), probed before TFDS is tried.
DOWNLOAD_URLS = {
  "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
  "svhn": "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
}
PROBE_TIMEOUT_S = 5.0


def _probe(url: str, timeout: Optional[float] = None) -> None:
  """Returns if an HTTP HEAD request to url answers (any status below 400) within `timeout` seconds.

  `timeout` defaults to PROBE_TIMEOUT_S.

  Raises:
    ConnectionError: naming the url and why it did not answer.
  """
  timeout = PROBE_TIMEOUT_S if timeout is None else timeout
  try:
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as response:
      status = response.status
  except urllib.error.HTTPError as error:
    status = error.code
  except (OSError, ValueError) as error:  # URLError, timeouts, refused connections
    raise ConnectionError(f"{url} did not answer within {timeout:g} s (offline?): {error}") from error
  if status >= 400:
    raise ConnectionError(f"{url} answered HTTP {status}")


def _check(images: np.ndarray, labels: np.ndarray, where: str) -> Arrays:
  if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(labels) != len(images):
    raise ValueError(
      f"{where}: expected images [N, 32, 32, 3] and N labels, got images {list(images.shape)} and {len(labels)} labels."
    )
  return Arrays(images.astype(np.uint8), labels.astype(np.int64), where)


def _from_npz(path) -> Arrays:
  if not path.is_file():
    raise FileNotFoundError(f"no {path}")
  with np.load(path) as data:
    return _check(data["images"], data["labels"], str(path))


def _from_tfds(name: str, split: str, data_dir: Optional[str]) -> Arrays:
  _probe(DOWNLOAD_URLS[name])  # before TFDS, whose download retries can hang an offline process
  import tensorflow_datasets as tfds

  images, labels = tfds.as_numpy(
    tfds.load(RGB_DATASETS[name], split=split, batch_size=-1, as_supervised=True, data_dir=data_dir)
  )
  return _check(images, labels, f"tfds:{RGB_DATASETS[name]}")


def load_rgb(name: str, split: str, *, data_dir: Optional[str] = None, use_tfds: Optional[bool] = None) -> Arrays:
  """Loads one split of CIFAR-10 or SVHN as uint8 images [N, 32, 32, 3] and int64 labels [N].

  Args:
    name: "cifar10" or "svhn".
    split: "train" or "test".
    data_dir: root of the local folders (default $TFPVI_DATA_DIR or ~/.cache/tfpvi).
    use_tfds: try TensorFlow Datasets; default True unless $TFPVI_NO_TFDS is set.

  Returns:
    Arrays(images, labels, source).

  Raises:
    ValueError: on an unknown name or split.
    DataNotFoundError: listing every source tried and why it failed.
  """
  if name not in RGB_DATASETS:
    raise ValueError(f"name must be one of {tuple(RGB_DATASETS)}, got {name!r}.")
  if split not in _SPLITS:
    raise ValueError(f"split must be one of {_SPLITS}, got {split!r}.")
  if use_tfds is None:
    use_tfds = not os.environ.get("TFPVI_NO_TFDS")
  path = cache_dir(data_dir) / name / f"{split}.npz"
  misses = []
  try:
    return _from_npz(path)
  except (OSError, KeyError, ValueError) as error:
    misses.append(f"local file: {type(error).__name__}: {error}")
  if use_tfds:
    try:
      return _from_tfds(name, split, None)
    except Exception as error:  # TFDS raises many kinds of errors when offline.
      misses.append(f"TensorFlow Datasets: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
  else:
    misses.append("TensorFlow Datasets: not tried ($TFPVI_NO_TFDS is set or use_tfds=False)")
  raise DataNotFoundError(
    f"could not load {name} {split}. Tried:\n  - "
    + "\n  - ".join(misses)
    + f"\nTo fix: run where TFDS can download (`tfds build {RGB_DATASETS[name]}`), or save the split as "
    f"{path} with numpy arrays images (uint8 [N, 32, 32, 3]) and labels, or set TFPVI_DATA_DIR."
  )


def generated_rgb(num_images: int, seed: int = 0, size: int = 32) -> np.ndarray:
  """Structured 8-bit colour images for tests: smooth colour gradients with a bright square.

  Channels are correlated (a shared brightness field), so a channel-coupled likelihood has
  something to learn.

  Args:
    num_images: N.
    seed: numpy seed.
    size: height and width.

  Returns:
    float32 array [N, size, size, 3] of integers in 0..255.
  """
  rng = np.random.default_rng(seed)
  grid = np.linspace(0.0, 1.0, size, dtype=np.float32)
  yy, xx = np.meshgrid(grid, grid, indexing="ij")
  direction = rng.uniform(-1, 1, size=[num_images, 2, 1, 1]).astype(np.float32)
  brightness = 0.5 + 0.5 * (direction[:, 0] * yy + direction[:, 1] * xx)  # [N, size, size]
  colour = rng.uniform(0.3, 1.0, size=[num_images, 1, 1, 3]).astype(np.float32)
  images = brightness[..., None] * colour
  corner = rng.integers(0, size // 2, size=[num_images, 2])
  for i, (r, c) in enumerate(corner):  # one square per image: a small loop over examples to generate data
    images[i, r : r + size // 4, c : c + size // 4, :] = 1.0
  noise = rng.normal(0.0, 0.03, size=images.shape).astype(np.float32)
  return np.clip(np.round(255.0 * (images + noise)), 0.0, 255.0).astype(np.float32)
