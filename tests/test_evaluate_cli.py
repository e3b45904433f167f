"""`python -m tfpvi.cli.evaluate` on the model folders every experiment writes, and its messages.

Each folder is built here in tmp_path with the experiment's own spec and a few `fit` steps.
"""

import json
import pathlib
import time

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import bits_per_dim, discrete, flows, renyi
from tfpvi.cli import evaluate
from tfpvi.models import specs

EVAL = ["--num_samples", "4", "--examples", "6", "--batch_size", "6"]


def _train(folder, spec, x, objective=tfpvi.objectives.elbo, **kwargs):
  """Saves spec in folder and trains its model for two steps there (checkpoints included)."""
  tfpvi.run_record.update(folder, data=spec.get("data"))
  model = specs.build(spec)
  tfpvi.train.fit(
    model,
    objective,
    x,
    optimizer=snt.optimizers.Adam(1e-3),
    steps=2,
    batch_size=4,
    output_dir=str(folder),
    **kwargs,
    logging=tfpvi.train.Logging(progress=False),
  )
  return model


def _binary(n=8):
  return (np.random.default_rng(0).uniform(size=[n, 28, 28, 1]) > 0.5).astype(np.float32)


def test_flow_and_renyi_folders_evaluate(tmp_path):
  config = flows.Config(**flows.Config.SMOKE)
  for posterior in ("iaf", "planar"):
    spec = flows.model_spec(posterior, config)
    assert spec["data"] == {"name": "mnist", "format": "binary"}
    _train(tmp_path / posterior, spec, _binary())
    assert evaluate.main([str(tmp_path / posterior), *EVAL]) == 0
    saved = json.loads((tmp_path / posterior / "evaluation.json").read_text())
    assert saved["num_examples"] == 6 and np.isfinite(saved["log_px"])
  assert renyi.model_spec(renyi.Config(**renyi.Config.SMOKE))["data"]["name"] == "mnist"


def test_a_discrete_folder_is_evaluated_with_exact_one_hot_latents(tmp_path):
  config = discrete.Config(**discrete.Config.SMOKE)
  built = discrete.build("concrete", config)
  spec = discrete.model_spec("concrete", config)
  tfpvi.run_record.update(tmp_path, data=spec.get("data"))
  tfpvi.train.fit(
    built.model,
    built.objective,
    _binary(),
    optimizer=snt.optimizers.Adam(1e-2),
    steps=2,
    batch_size=4,
    output_dir=str(tmp_path),
    objective_kwargs=built.objective_kwargs,
    logging=tfpvi.train.Logging(progress=False),
  )
  restored, _ = evaluate.restore(tmp_path)
  x = _binary(3)
  # The restored model is the experiment's exact evaluation model, with the trained weights.
  np.testing.assert_allclose(
    restored.encoder(x).distribution.logits_parameter(), built.model.encoder.logits(x), atol=1e-6
  )
  w_restored = restored.log_weights(x, 5, seed=[1, 2])
  w_built = built.evaluation_model.log_weights(x, 5, seed=[1, 2])
  np.testing.assert_allclose(w_restored, w_built, rtol=1e-5)
  assert evaluate.main([str(tmp_path), *EVAL]) == 0


def test_a_generated_rgb_folder_makes_its_test_images_again(tmp_path):
  config = bits_per_dim.Config(**bits_per_dim.Config.SMOKE)
  data = bits_per_dim.test_data("generated_rgb", config)
  x_test = bits_per_dim.load_images("generated_rgb", "test", config.eval_examples, config.seed)
  spec = {
    "encoder": {"class": "GaussianMLP", "hidden_sizes": [8], "latent_size": 2, "input_scale": 1 / 255},
    "decoder": {"class": "DiscretizedLogisticMLP", "hidden_sizes": [8], "output_shape": [32, 32, 3]},
    "prior": {"class": "standard_normal", "latent_size": 2},
    "data": data,
  }
  np.testing.assert_array_equal(evaluate.test_images(spec), x_test)
  _train(tmp_path, spec, x_test)
  assert evaluate.main([str(tmp_path), *EVAL]) == 0
  assert json.loads((tmp_path / "evaluation.json").read_text())["data"]["name"] == "generated_rgb"


def test_folders_that_are_not_a_vae_model_folder_say_so(tmp_path, capsys):
  root = tmp_path / "flows"
  for name in ("iaf", "gaussian"):
    (root / name).mkdir(parents=True)
    (root / name / "run.json").write_text('{"model": null, "settings": {}}')
  assert evaluate.main([str(root), *EVAL]) == 2
  err = capsys.readouterr().err
  assert "is not a VAE model folder" in err and str(root / "iaf") in err and str(root / "gaussian") in err
  assert "iwae" not in err

  empty = tmp_path / "bayes_by_backprop"
  empty.mkdir()
  (empty / "run.json").write_text('{"experiment": {"module": "experiments.bayes_by_backprop", "smoke": false}}')
  assert evaluate.main([str(empty), *EVAL]) == 2
  err = capsys.readouterr().err
  assert "is not a VAE model folder" in err and "no run.json" in err and "iwae" not in err

  bare = tmp_path / "old"
  tf.train.Checkpoint(v=tf.Variable(1.0)).save(str(bare / "checkpoints" / "ckpt"))
  assert evaluate.main([str(bare), *EVAL]) == 2
  assert "holds checkpoints but no run.json" in capsys.readouterr().err

  assert evaluate.main([str(tmp_path / "missing"), *EVAL]) == 2
  assert "is not a folder" in capsys.readouterr().err


def test_examples_defaults_to_a_thousand_and_zero_means_all(tmp_path, monkeypatch):
  spec = flows.model_spec("gaussian", flows.Config(**flows.Config.SMOKE))
  _train(tmp_path, spec, _binary())
  seen = []

  def fake(model, images, num_samples, **kwargs):
    seen.append(len(images))
    return {
      "num_examples": len(images),
      "log_px": -1.0,
      "log_px_standard_error": 0.0,
      "monte_carlo_standard_error": 0.0,
      "bits_per_dim": 1.0,
      "ess_mean": 1.0,
      "ess_min": 1.0,
    }, {"log_px": np.zeros(len(images))}

  monkeypatch.setattr(tfpvi.evaluation.marginal, "evaluate_dataset", fake)
  monkeypatch.setattr(tfpvi.evaluation.marginal, "reading", lambda summary: "")
  assert evaluate.main([str(tmp_path), "--num_samples", "2"]) == 0
  assert evaluate.main([str(tmp_path), "--num_samples", "2", "--examples", "0"]) == 0
  assert seen == [evaluate.DEFAULT_EXAMPLES, 10000] and evaluate.DEFAULT_EXAMPLES == 1000


def test_an_unreachable_rgb_download_fails_fast(tmp_path, monkeypatch):
  monkeypatch.setitem(tfpvi.data.rgb.DOWNLOAD_URLS, "cifar10", "http://10.255.255.1:81/cifar-10-binary.tar.gz")
  monkeypatch.setattr(tfpvi.data.rgb, "PROBE_TIMEOUT_S", 1.0)
  started = time.perf_counter()
  with pytest.raises(tfpvi.data.DataNotFoundError, match="TensorFlow Datasets: ConnectionError: http://10.255.255.1"):
    tfpvi.data.rgb.load_rgb("cifar10", "test", data_dir=str(tmp_path), use_tfds=True)
  assert time.perf_counter() - started < 10


def _gaussian_folder(folder):
  spec = flows.model_spec("gaussian", flows.Config(**flows.Config.SMOKE))
  _train(folder, spec, _binary())
  return spec


AIS = ["--estimator", "ais", "--ais_steps", "5", "--ais_chains", "3", "--examples", "6", "--batch_size", "3"]


def test_ais_and_bdmc_from_the_command_line(tmp_path, capsys):
  _gaussian_folder(tmp_path)
  assert evaluate.main([str(tmp_path), "--num_samples", "4", "--examples", "6", "--batch_size", "3"]) == 0
  assert evaluate.main([str(tmp_path), *AIS]) == 0
  out = capsys.readouterr().out
  saved = json.loads((tmp_path / "evaluation_ais.json").read_text())
  assert saved["estimator"] == "ais" and saved["num_steps"] == 5 and saved["num_chains"] == 3
  assert saved["checkpoint"] == "ckpt-2" and "ckpt-2" in out  # the checkpoint measured is named
  assert "importance sampling (K = 4)" in saved["comparison"] and "compared" in out
  assert json.loads((tmp_path / "evaluation.json").read_text())["checkpoint"] == "ckpt-2"
  assert not list(tmp_path.glob(".*partial*"))  # progress files go once the result is written
  assert evaluate.main([str(tmp_path), "--bdmc", "3", "--ais_steps", "5", "--ais_chains", "2"]) == 0
  bdmc = json.loads((tmp_path / "evaluation_bdmc.json").read_text())
  assert bdmc["gap"] == pytest.approx(bdmc["upper"] - bdmc["lower"], abs=1e-3)
  assert len(bdmc["per_example"]["lower"]) == 3
  assert "gap" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["grey", "eight_bit"])
def test_out_of_support_test_images_get_one_line(tmp_path, capsys, fmt):
  _gaussian_folder(tmp_path)
  for flags in (EVAL, AIS):
    assert evaluate.main([str(tmp_path), *flags, "--format", fmt]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Bernoulli likelihood: expected binary x") and "\n" not in err, err
    assert "Traceback" not in err and "Graph execution" not in err and f"--format {fmt}" in err


@pytest.mark.parametrize("estimator", ["importance", "ais"])
def test_a_killed_evaluation_resumes_with_the_same_numbers(tmp_path, estimator):
  import os
  import shutil
  import signal
  import subprocess
  import sys

  folder, twin = tmp_path / "run", tmp_path / "twin"
  _gaussian_folder(folder)
  shutil.copytree(folder, twin)
  if estimator == "ais":
    flags = ["--estimator", "ais", "--ais_steps", "400", "--ais_chains", "4"]
  else:
    flags = ["--num_samples", "3000", "--chunk_size", "500"]
  flags += ["--examples", "40", "--batch_size", "4"]
  output = "evaluation_ais" if estimator == "ais" else "evaluation"
  process = subprocess.Popen(
    [sys.executable, "-m", "tfpvi.cli.evaluate", str(folder), *flags, "--no-progress"],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
  )
  deadline = time.time() + 120
  partial = []
  while time.time() < deadline and process.poll() is None:
    partial = list(folder.glob(f".{output}-*.partial.jsonl"))
    if partial and len(partial[0].read_text().splitlines()) >= 4:  # the settings and 3 of 10 batches
      break
    time.sleep(0.02)
  assert process.poll() is None, "the evaluation finished before it could be killed; give it more work"
  process.send_signal(signal.SIGKILL)
  process.wait()
  before = partial[0].read_text().splitlines()
  assert 3 <= len(before) - 1 < 10 and not (folder / f"{output}.json").exists()
  kept = shutil.copy(partial[0], tmp_path / "kept.jsonl")
  original_unlink = pathlib.Path.unlink

  def keep_partial(self, missing_ok=False):  # the resumed run's progress file, kept to be read below
    if self.name.endswith(".partial.jsonl") and self.parent == folder:
      shutil.copy(self, kept)
    return original_unlink(self, missing_ok=missing_ok)

  pathlib.Path.unlink = keep_partial
  try:
    assert evaluate.main([str(folder), *flags]) == 0
  finally:
    pathlib.Path.unlink = original_unlink
  assert evaluate.main([str(twin), *flags]) == 0
  after = pathlib.Path(kept).read_text().splitlines()
  assert after[: len(before)] == before  # the batches finished before the kill are kept as they were
  starts = [json.loads(line)["start"] for line in after[1:]]
  assert sorted(starts) == list(range(0, 40, 4))  # and every batch is there once: none lost, none repeated
  resumed, uninterrupted = (json.loads((f / f"{output}.json").read_text()) for f in (folder, twin))
  # TensorFlow's multi-threaded CPU kernels are not bitwise deterministic (1 ulp now and then);
  # an AIS chain can amplify that through one accept/reject decision, within its Monte Carlo error.
  tolerance = 4 * resumed["monte_carlo_standard_error"] if estimator == "ais" else 1e-4
  assert abs(resumed["log_px"] - uninterrupted["log_px"]) <= tolerance
  assert resumed["num_examples"] == uninterrupted["num_examples"] == 40


def test_bad_numbers_on_the_command_line_get_one_line(tmp_path, capsys):
  _gaussian_folder(tmp_path)
  for flags, words in (
    (["--estimator", "ais", "--ais_steps", "0"], "--ais_steps must be >= 1, got 0"),
    (["--bdmc", "-3"], "--bdmc must be >= 1"),
  ):
    with pytest.raises(SystemExit) as exit_info:
      evaluate.main([str(tmp_path), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
  with pytest.raises(TypeError, match="a tfpvi.LinearGaussian: pass model.as_vae"):
    tfpvi.ais.ais_log_marginal_likelihood(tfpvi.LinearGaussian.random(4, 2), np.zeros([2, 4], np.float32))


def test_more_examples_than_the_test_set_are_refused_in_one_line(tmp_path, capsys):
  config = flows.Config(**flows.Config.SMOKE)
  _train(tmp_path, flows.model_spec("gaussian", config), _binary())
  assert evaluate.main([str(tmp_path), "--num_samples", "2", "--examples", "100000"]) == 2
  err = capsys.readouterr().err.strip()
  assert err == (
    "error: --examples 100000 asks for more images than the mnist test set has (10000); give --examples "
    "10000, or 0 for all of them"
  ), err
