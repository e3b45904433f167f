"""experiments.bits_per_dim: a smoke run with grey and colour models, resumption, and the RGB data sources."""

import json
import math
import pathlib
import tempfile

import numpy as np
import pandas as pd
import pytest

import tfpvi
from experiments import bits_per_dim


@pytest.fixture(scope="module")
def smoke_run():
  out = pathlib.Path(tempfile.mkdtemp()) / "bits_per_dim"
  metrics = bits_per_dim.main(["--smoke", "--output_dir", str(out)])
  return out, metrics


def test_smoke_run_covers_grey_and_colour_models(smoke_run):
  out, metrics = smoke_run
  results = json.loads((out / "results.json").read_text())
  keys = {"mnist_conv_mixture", "mnist_mlp_logistic", "generated_rgb_conv_mixture", "generated_rgb_mlp_logistic"}
  assert keys <= set(results["metrics"])
  for key in keys:
    m = results["metrics"][key]
    for name in ("test_log_px", "bits_per_dim", "bits_per_dim_standard_error", "ess_mean", "khat_mean"):
      assert math.isfinite(m[name]), (key, name)
    assert m["bits_per_dim"] > 0 and 1.0 <= m["ess_mean"] <= m["eval_samples"]
    dims = 784 if key.startswith("mnist") else 3072
    assert m["bits_per_dim"] == pytest.approx(-m["test_log_px"] / (dims * math.log(2.0)), rel=1e-6)
    assert results["trained"][key]["trained_steps"] == 6
  for dataset in ("mnist", "generated_rgb"):
    for figure in ("learning_curves", "reconstructions", "samples"):
      assert (out / f"{figure}_{dataset}.png").stat().st_size > 5000, (figure, dataset)
  assert metrics["generated_rgb_conv_mixture"]["eval_examples"] == 6
  # Every model folder records data that `python -m tfpvi.cli.evaluate` makes again.
  for key in keys:
    spec = json.loads((out / key / "run.json").read_text())
    assert spec["data"]["name"] == key.rsplit("_", 2)[0] and spec["data"]["format"] == "eight_bit", key
  from tfpvi.cli import evaluate

  assert (
    evaluate.main(
      [str(out / "generated_rgb_mlp_logistic"), "--num_samples", "4", "--examples", "6", "--batch_size", "6"]
    )
    == 0
  )
  assert json.loads((out / "generated_rgb_mlp_logistic" / "evaluation.json").read_text())["num_examples"] == 6


def test_rerun_resumes_without_duplicating_history(smoke_run):
  out, metrics = smoke_run
  folder = out / "mnist_mlp_logistic"
  before = pd.read_csv(folder / "history.csv")
  again = bits_per_dim.main(["--smoke", "--output_dir", str(out), "--datasets", "mnist", "--models", "mlp_logistic"])
  after = pd.read_csv(folder / "history.csv")
  pd.testing.assert_frame_equal(before, after)
  assert again["mnist_mlp_logistic"]["bits_per_dim"] == pytest.approx(
    metrics["mnist_mlp_logistic"]["bits_per_dim"], rel=1e-5
  )


def test_other_settings_in_a_trained_folder_are_refused(smoke_run, capsys):
  out, _ = smoke_run
  with pytest.raises(SystemExit):
    bits_per_dim.main(["--smoke", "--output_dir", str(out), "--datasets", "mnist", "--latent_size", "5"])
  assert "was trained with latent_size=4" in capsys.readouterr().err


def test_rgb_sources_report_every_miss_and_read_local_files(tmp_path):
  with pytest.raises(tfpvi.data.DataNotFoundError, match=r"(?s)could not load cifar10 test.*local file.*To fix"):
    tfpvi.data.rgb.load_rgb("cifar10", "test", data_dir=str(tmp_path), use_tfds=False)
  with pytest.raises(ValueError, match="name must be one of"):
    tfpvi.data.rgb.load_rgb("imagenet", "test")
  images = tfpvi.data.rgb.generated_rgb(5, seed=1)
  (tmp_path / "svhn").mkdir()
  np.savez(tmp_path / "svhn" / "train.npz", images=images.astype(np.uint8), labels=np.arange(5))
  arrays = tfpvi.data.rgb.load_rgb("svhn", "train", data_dir=str(tmp_path), use_tfds=False)
  np.testing.assert_array_equal(arrays.images, images.astype(np.uint8))
  assert arrays.images.shape == (5, 32, 32, 3) and list(arrays.labels) == [0, 1, 2, 3, 4]
  np.savez(tmp_path / "svhn" / "test.npz", images=images[:, :28].astype(np.uint8), labels=np.arange(5))
  with pytest.raises(tfpvi.data.DataNotFoundError, match=r"expected images \[N, 32, 32, 3\]"):
    tfpvi.data.rgb.load_rgb("svhn", "test", data_dir=str(tmp_path), use_tfds=False)


def test_generated_rgb_is_8_bit_and_deterministic():
  a, b = tfpvi.data.rgb.generated_rgb(4, seed=2), tfpvi.data.rgb.generated_rgb(4, seed=2)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (4, 32, 32, 3) and a.dtype == np.float32
  assert np.all(a == np.round(a)) and a.min() >= 0 and a.max() <= 255
