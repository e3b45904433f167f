"""Every experiment's --smoke run: files written, metrics finite, and resumption."""

import importlib
import json
import math
import pathlib
import tempfile

import pandas as pd
import pytest

FIGURES = {
    "iwae": ["loss_curves.png", "reconstructions.png", "samples.png"],
    "beta_vae": ["loss_curves.png", "reconstructions.png", "traversal.png"],
    "latent_2d": ["loss_curves.png", "latent_scatter.png", "manifold.png"],
    "mc_samples": ["loss_curves.png", "reconstruction_distribution.png"],
    "marginal_likelihood": ["estimates.png", "samples_bernoulli_mnist.png"],
    "project_deadline": ["convergence.png"],
    "jackknife": ["bias.png"],
}


def _finite_numbers(tree):
  if isinstance(tree, dict):
    for value in tree.values():
      yield from _finite_numbers(value)
  elif isinstance(tree, float):
    yield tree


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_smoke_run_writes_results_history_and_figures(name):
  out = pathlib.Path(tempfile.mkdtemp()) / name
  module = importlib.import_module(f"experiments.{name}")
  module.main(["--smoke", "--output_dir", str(out)])
  results = json.loads((out / "results.json").read_text())
  assert results["config"]["output_dir"] == str(out)
  assert results["metrics"] and all(math.isfinite(v) for v in _finite_numbers(results["metrics"]))
  for figure in FIGURES[name]:
    assert (out / figure).stat().st_size > 5000, figure
  if name != "project_deadline":  # the only experiment that trains nothing
    assert list(out.rglob("history.csv")), "no history.csv written"


def test_iwae_rerun_resumes_without_duplicating_history():
  out = pathlib.Path(tempfile.mkdtemp()) / "iwae"
  module = importlib.import_module("experiments.iwae")
  module.main(["--smoke", "--output_dir", str(out), "--models", "iwae:2"])
  first = pd.read_csv(out / "iwae_k2" / "history.csv")
  module.main(["--smoke", "--output_dir", str(out), "--models", "iwae:2"])
  second = pd.read_csv(out / "iwae_k2" / "history.csv")
  pd.testing.assert_frame_equal(first, second)
  assert list(second["step"]) == sorted(set(second["step"]))


def test_bad_flags_are_reported():
  module = importlib.import_module("experiments.iwae")
  with pytest.raises(ValueError, match="vae:K or iwae:K"):
    module.main(["--smoke", "--output_dir", tempfile.mkdtemp(), "--models", "iwae:0"])


def test_project_deadline_reports_the_seed_quantities():
  out = pathlib.Path(tempfile.mkdtemp())
  metrics = importlib.import_module("experiments.project_deadline").main(["--smoke", "--output_dir", str(out)])
  assert abs(metrics["mean_completion_days"] - 18.2) < 0.5  # seed 002: "around 18.2 days"
  assert 0.0 < metrics["p_exceed_70"] < 1e-3
  assert metrics["p_exceed_70_standard_error"] < metrics["p_exceed_70"]
  saved = json.loads((out / "results.json").read_text())["metrics"]
  assert {"p_exceed_70", "p_exceed_70_standard_error", "mean_completion_days"} <= set(saved)


def test_evaluate_command_on_a_trained_run(capsys):
  from tfpvi import evaluate

  out = pathlib.Path(tempfile.mkdtemp()) / "iwae"
  importlib.import_module("experiments.iwae").main(["--smoke", "--output_dir", str(out), "--models", "iwae:2"])
  assert evaluate.main([str(out / "iwae_k2"), "--num_samples", "60", "--examples", "12", "--batch_size", "6"]) == 0
  printed = capsys.readouterr().out
  assert "log p(x)" in printed and "bits/dim" in printed and "Pareto k-hat" in printed
  summary = json.loads((out / "iwae_k2" / "evaluation.json").read_text())
  assert summary["num_examples"] == 12 and math.isfinite(summary["log_px"])
  assert evaluate.main([str(out), "--num_samples", "10"]) == 2
  assert "no model_spec.json" in capsys.readouterr().err
