"""Data: MNIST and Fashion-MNIST from local IDX files, TFDS, or package registries."""

from tfpvi.data import rgb  # noqa: E402,F401  (CIFAR-10 and SVHN: tfpvi.data.rgb.load_rgb)
from tfpvi.data.pipeline import BINARIZATIONS, binarize_dynamic, binarize_static, dequantize, load
from tfpvi.data.sources import DATASETS, DataNotFoundError, cache_dir, fetch, load_arrays

__all__ = [
  "BINARIZATIONS",
  "DATASETS",
  "DataNotFoundError",
  "binarize_dynamic",
  "binarize_static",
  "cache_dir",
  "dequantize",
  "fetch",
  "load",
  "load_arrays",
]
