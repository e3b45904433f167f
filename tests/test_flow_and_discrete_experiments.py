"""Smoke runs of the flows, discrete and renyi experiments: results, histories, figures, resumption, bad flags."""

import importlib
import json
import math

import pandas as pd
import pytest

from tests.notebooks import COLAB, check_outputs, code_cells, execute_notebook, printed

FIGURES = {
  "flows": ["gap.png", "loss_curves.png"],
  "discrete": ["elbo_curves.png", "temperature.png", "samples.png"],
  "renyi": ["log_px_by_alpha.png", "snr.png", "loss_curves.png"],
}
METRICS = {
  "flows": {"test_log_px", "test_elbo", "gap"},
  "discrete": {"test_log_px", "test_elbo"},
  "renyi": {"test_log_px", "encoder_snr", "decoder_snr"},
}


def _numbers(tree):
  if isinstance(tree, dict):
    for value in tree.values():
      yield from _numbers(value)
  elif isinstance(tree, float):
    yield tree


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_smoke_run(name, tmp_path):
  out = tmp_path / name
  metrics = importlib.import_module(f"experiments.{name}").main(["--smoke", "--output_dir", str(out)])
  results = json.loads((out / "results.json").read_text())
  assert results["config"]["output_dir"] == str(out)
  assert results["metrics"] and all(math.isfinite(v) for v in _numbers(results["metrics"]))
  for model_metrics in metrics.values():
    assert METRICS[name] <= set(model_metrics)
  for figure in FIGURES[name]:
    assert (out / figure).stat().st_size > 5000, figure
  assert len(list(out.rglob("history.csv"))) == len(metrics)
  # Every model folder records its test data, for `python -m tfpvi.cli.evaluate`.
  for history in out.rglob("history.csv"):
    spec = json.loads((history.parent / "run.json").read_text())
    assert spec["data"] == {"name": "mnist", "format": "binary"}, history.parent


def test_flows_gap_is_logged_and_discrete_temperature_anneals(tmp_path):
  importlib.import_module("experiments.flows").main(
    ["--smoke", "--output_dir", str(tmp_path / "flows"), "--posteriors", "iaf"]
  )
  history = pd.read_csv(tmp_path / "flows" / "iaf" / "history.csv")
  assert {"gap", "log_px", "elbo", "eval_seconds"} <= set(history)
  importlib.import_module("experiments.discrete").main(
    ["--smoke", "--output_dir", str(tmp_path / "discrete"), "--models", "gumbel_st"]
  )
  history = pd.read_csv(tmp_path / "discrete" / "gumbel_st" / "history.csv")
  assert history["temperature"].is_monotonic_decreasing and history["temperature"].iloc[-1] == pytest.approx(0.5)


def test_rerun_resumes_and_other_settings_are_refused(tmp_path):
  module = importlib.import_module("experiments.renyi")
  args = ["--smoke", "--output_dir", str(tmp_path), "--models", "vr:0.5:3"]
  module.main(args)
  first = pd.read_csv(tmp_path / "vr_0.5_3" / "history.csv")
  module.main(args)
  pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / "vr_0.5_3" / "history.csv"))
  with pytest.raises(SystemExit):
    module.main(args + ["--latent_size", "5"])


@pytest.mark.parametrize(
  "flags",
  [
    ["--models", "vr:x:3"],
    ["--models", "miwae:0:3"],
    ["--models", "ciwae:2:3"],
    ["--models", "vr:-inf:3", "--gradient_estimator", "dreg"],
  ],
)
def test_renyi_bad_models_are_refused(flags, tmp_path, capsys):
  with pytest.raises(SystemExit):
    importlib.import_module("experiments.renyi").main(["--smoke", "--output_dir", str(tmp_path), *flags])
  assert "error" in capsys.readouterr().err


def test_docstrings_give_the_default_command():
  for name in FIGURES:
    doc = importlib.import_module(f"experiments.{name}").__doc__
    assert f"python -m experiments.{name} --output_dir runs/{name}" in doc


NOTEBOOK = COLAB / "flows_and_discrete_latents.ipynb"
FIGURE_CALLS = ("tfpvi.plot.image_grid", "tfpvi.plot.loss_curves")


def test_notebook_runs_in_a_kernel_with_inline_figures(tmp_path):
  """Executed as printed in a Jupyter kernel with toy sizes (fit capped at 20 steps); see tests/notebooks.py."""
  notebook, _ = execute_notebook(NOTEBOOK, tmp_path)
  check_outputs(notebook, FIGURE_CALLS, num_figure_cells=3)
  evaluation = next(c for c in code_cells(notebook) if "evaluate_dataset" in c.source)
  text = printed(evaluation)
  values = [float(line.split("log p(x)")[1].split()[0]) for line in text.splitlines() if "log p(x)" in line]
  assert len(values) == 2 and all(math.isfinite(v) and v < 0 for v in values), text
