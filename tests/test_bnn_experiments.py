"""Bayes-by-Backprop experiments (--smoke), the tiny regression's predictive spread, and the notebook."""

import json
import math

import pandas as pd
import pytest

from experiments import bayes_by_backprop, bbb_regression
from tests.notebooks import COLAB, check_outputs, execute_notebook

NOTEBOOK = COLAB / "bayes_by_backprop.ipynb"


def _finite(tree):
  if isinstance(tree, dict):
    return all(_finite(v) for v in tree.values())
  return not isinstance(tree, float) or math.isfinite(tree)


def test_mnist_smoke_writes_errors_pruning_and_figures(tmp_path):
  out = tmp_path / "bbb"
  metrics = bayes_by_backprop.main(["--smoke", "--output_dir", str(out)])
  results = json.loads((out / "results.json").read_text())
  errors = results["metrics"]["test_error_percent"]
  assert set(errors) == {f"{m}_16" for m in bayes_by_backprop.MODELS}
  assert all(0.0 <= e["mean_weights"] <= 100.0 for e in errors.values())
  assert "predictive" in errors["bbb_scale_mixture_16"] and "predictive" not in errors["sgd_16"]
  pruning = metrics["pruning_test_error_percent"]["bbb_scale_mixture_16"]
  assert list(pruning) == ["0%", "50%", "75%", "95%", "98%"]
  assert _finite(results["metrics"])
  for figure in ("loss_curves.png", "test_error.png", "snr_density.png", "pruning.png"):
    assert (out / figure).stat().st_size > 5000, figure
  assert (out / "sgd_16" / "history.csv").exists()


def test_mnist_run_resumes_exactly(tmp_path):
  """A run stopped after 20 steps and resumed to 30 ends where a run of 30 steps does."""
  flags = ["--smoke", "--models", "bbb_scale_mixture", "--steps_per_call", "5"]
  straight = bayes_by_backprop.main(flags + ["--output_dir", str(tmp_path / "a"), "--steps", "30"])
  bayes_by_backprop.main(flags + ["--output_dir", str(tmp_path / "b"), "--steps", "20"])
  resumed = bayes_by_backprop.main(flags + ["--output_dir", str(tmp_path / "b"), "--steps", "30"])
  assert resumed["test_error_percent"] == straight["test_error_percent"]
  history = [pd.read_csv(tmp_path / run / "bbb_scale_mixture_16" / "history.csv") for run in "ab"]
  columns = [c for c in history[0].columns if c != "wall_time"]
  pd.testing.assert_frame_equal(history[0][columns], history[1][columns])


def test_regression_smoke_writes_spread_and_figure(tmp_path):
  out = tmp_path / "reg"
  metrics = bbb_regression.main(["--smoke", "--output_dir", str(out)])
  assert (out / "regression.png").stat().st_size > 5000
  assert (out / "loss_curves.png").stat().st_size > 5000
  for name in ("bayes_by_backprop", "standard_network"):
    assert metrics[name]["predictive_std_inside"] > 0
  assert _finite(metrics)


def test_tiny_regression_is_more_uncertain_outside_the_data(tmp_path):
  """BBB's predictive standard deviation is larger outside [0, 0.5] than inside; the standard
  network's spread is the observation noise alone, the same everywhere."""
  metrics = bbb_regression.main(
    [
      "--output_dir",
      str(tmp_path / "reg"),
      "--hidden_sizes",
      "32,32",
      "--steps",
      "3000",
      "--train_examples",
      "100",
      "--predictive_samples",
      "200",
      "--grid_points",
      "57",
    ]
  )
  bbb, standard = metrics["bayes_by_backprop"], metrics["standard_network"]
  assert bbb["predictive_std_outside"] > 2 * bbb["predictive_std_inside"], bbb
  assert standard["predictive_std_outside"] == pytest.approx(standard["predictive_std_inside"], rel=1e-4)
  assert standard["predictive_std_inside"] == pytest.approx(0.02, rel=1e-4)


def test_notebook_runs_in_a_kernel_with_inline_figures(tmp_path):
  """Executed as printed in a Jupyter kernel with toy sizes (fit capped at 20 steps); see tests/notebooks.py."""
  notebook, values = execute_notebook(
    NOTEBOOK,
    tmp_path,
    probe='{"spread": spread, "error": float(mnist_summary["test_error_percent"]), "history": len(mnist_history)}',
  )
  check_outputs(notebook, ("plt.show()", "tfpvi.plot.loss_curves"), num_figure_cells=4)
  assert values["spread"]["std_inside"] > 0
  assert 0.0 <= values["error"] <= 100.0
  assert values["history"] >= 1
  assert (tmp_path / "runs" / "bayes_by_backprop" / "mnist" / "history.csv").exists()
