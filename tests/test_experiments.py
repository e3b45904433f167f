"""Every experiment's --smoke run: files written, metrics finite, resumption, flags and folders."""

import ast
import dataclasses
import importlib
import json
import math
import pathlib
import re
import tempfile

import numpy as np
import pandas as pd
import pytest

import tfpvi
from experiments import common

FIGURES = {
  "iwae": ["loss_curves.png", "reconstructions.png", "samples.png"],
  "beta_vae": ["loss_curves.png", "reconstructions.png", "traversal.png"],
  "latent_2d": ["loss_curves.png", "latent_scatter.png", "manifold.png"],
  "mc_samples": ["loss_curves.png", "reconstruction_distribution.png"],
  "marginal_likelihood": ["estimates.png", "samples_bernoulli_mnist.png"],
  "project_deadline": ["convergence.png"],
  "jackknife": ["bias.png"],
  "ais": ["estimates_vs_compute.png", "bdmc.png"],
}


def _finite_numbers(tree):
  if isinstance(tree, dict):
    for value in tree.values():
      yield from _finite_numbers(value)
  elif isinstance(tree, float):
    yield tree


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_smoke_run_writes_results_history_and_figures(name, capsys):
  from tfpvi.cli import evaluate

  out = pathlib.Path(tempfile.mkdtemp()) / name
  module = importlib.import_module(f"experiments.{name}")
  module.main(["--smoke", "--output_dir", str(out)])
  printed = capsys.readouterr().out
  assert "{'" not in printed, f"a raw dict printed instead of a table:\n{printed}"
  results = json.loads((out / "results.json").read_text())
  assert results["config"]["output_dir"] == str(out)
  assert results["metrics"] and all(math.isfinite(v) for v in _finite_numbers(results["metrics"]))
  for figure in FIGURES[name]:
    assert (out / figure).stat().st_size > 5000, figure
  if name == "project_deadline":  # the only experiment that trains nothing
    return
  assert list(out.rglob("history.csv")), "no history.csv written"
  # What actually ran is recorded beside the requested config.
  assert results["trained"] and all(r["trained_steps"] == r["requested_steps"] for r in results["trained"].values())
  # Every folder with checkpoints has a run.json that `python -m tfpvi.cli.evaluate` can use.
  model_dirs = sorted({path.parent.parent for path in out.rglob("checkpoints/checkpoint")})
  assert model_dirs
  for model_dir in model_dirs:
    assert evaluate.main([str(model_dir), "--num_samples", "8", "--examples", "4", "--batch_size", "4"]) == 0, model_dir


def test_iwae_rerun_resumes_without_duplicating_history():
  out = pathlib.Path(tempfile.mkdtemp()) / "iwae"
  module = importlib.import_module("experiments.iwae")
  module.main(["--smoke", "--output_dir", str(out), "--models", "iwae:2"])
  first = pd.read_csv(out / "iwae_k2" / "history.csv")
  module.main(["--smoke", "--output_dir", str(out), "--models", "iwae:2"])
  second = pd.read_csv(out / "iwae_k2" / "history.csv")
  pd.testing.assert_frame_equal(first, second)
  assert list(second["step"]) == sorted(set(second["step"]))


BAD_FLAGS = [
  ("iwae", ["--models", "iwae:0"], "vae:K or iwae:K"),
  ("iwae", ["--steps", "-5"], "--steps must be >= 0, got -5"),
  ("iwae", ["--models", ","], "--models needs at least one value"),
  ("iwae", ["--hidden_sizes", "20,x"], "comma-separated int values"),
  ("iwae", ["--full_protocol", "maybe"], "expected true or false"),
  ("iwae", ["--learning_rate", "nan"], "finite number"),
  ("beta_vae", ["--steps", "-5"], "--steps must be >= 1"),
  ("latent_2d", ["--steps", "0", "--epochs", "0"], "--steps > 0 or --epochs > 0"),
  ("mc_samples", ["--mc_samples", "1,0"], "--mc_samples must be >= 1"),
  ("marginal_likelihood", ["--models", "gaussian_mnist"], "--models must be one of"),
  ("jackknife", ["--orders", "0,7"], "--orders must be one of"),
  ("jackknife", ["--run_dir", "/nonexistent/run"], "--run_dir /nonexistent/run does not exist"),
  ("latent_2d", ["--latent_size", "3"], "--latent_size must be 2"),
  ("bayes_by_backprop", ["--prior", "laplace"], "unrecognized arguments: --prior laplace"),  # not --prior_sigma
  ("iwae", ["--step", "5"], "unrecognized arguments: --step"),  # abbreviations are not flags
  ("project_deadline", ["--num_samples", "-5"], "--num_samples must be >= 100, got -5"),
  ("project_deadline", ["--deadline", "0"], "--deadline must be > 0"),
]


@pytest.mark.parametrize("name,flags,message", BAD_FLAGS)
def test_bad_flags_end_with_one_line_and_write_nothing(name, flags, message, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  module = importlib.import_module(f"experiments.{name}")
  for extra in ([], ["--smoke"]):
    with pytest.raises(SystemExit) as exit_info:
      module.main(flags + extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"python -m experiments.{name}: error:")
    assert err.rstrip().endswith(f". (see python -m experiments.{name} --help)"), "one sentence, then the pointer"
    assert list(tmp_path.iterdir()) == [], "a refused run wrote files"


EXPERIMENTS = sorted(
  path.stem for path in pathlib.Path(common.__file__).parent.glob("*.py") if path.stem not in {"common", "__init__"}
)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_the_command_line_of_every_experiment_goes_through_common_run(name):
  """Where errors and Ctrl-C end in one line and TensorFlow's kernel notes are dropped (tested in test_errors)."""
  tree = ast.parse(pathlib.Path(importlib.import_module(f"experiments.{name}").__file__).read_text())
  mains = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
  assert len(mains) == 1 and [ast.unparse(line) for line in mains[0].body] == ["common.run(main)"], name


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_help_describes_every_flag_and_names_the_module(name, capsys):
  module = importlib.import_module(f"experiments.{name}")
  with pytest.raises(SystemExit):
    module.main(["--help"])
  text = capsys.readouterr().out
  assert text.startswith(f"usage: python -m experiments.{name} ")
  assert not re.search(r"seed 0\d\d", text), "seed numbers are project jargon"
  flat = re.sub(r"\s+", " ", text.partition("\noptions:")[2])
  for field in dataclasses.fields(module.Config):
    # Each flag is followed by its metavar and a description of a few words, then its default.
    match = re.search(rf" --{field.name} (STR|INT|FLOAT|A,B,\.\.\.|\[true\|false\]) (.*?) \(default: ", flat)
    assert match and len(match.group(2).split()) >= 2, f"--{field.name} has no description"
    described = re.sub(r"\s+", " ", field.metadata["help"]).replace("%%", "%")
    if field.metadata["choices"] is not None:  # the allowed values are listed
      described += f"; one of {', '.join(map(str, field.metadata['choices']))}"
    assert match.group(2) == described


def test_boolean_flags_work_bare_and_with_a_value():
  iwae = importlib.import_module("experiments.iwae")
  assert common.parse_config(iwae.Config, ["--full_protocol"], "")[0].full_protocol is True
  assert common.parse_config(iwae.Config, ["--full_protocol", "false", "--seed", "1"], "")[0].full_protocol is False
  config = common.parse_config(iwae.Config, ["--full_protocol", "--seed", "1"], "")[0]
  assert config.full_protocol and config.seed == 1 and config.schedule_growth == 3.0


def _snapshot(folder):
  return {p: p.read_bytes() for p in sorted(pathlib.Path(folder).rglob("*")) if p.is_file()}


def test_smoke_runs_never_touch_a_real_run(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  beta_vae = importlib.import_module("experiments.beta_vae")
  beta_vae.main(["--smoke"])
  assert (tmp_path / "runs/smoke/beta_vae/checkpoints").is_dir() and not (tmp_path / "runs/beta_vae").exists()
  # A real run (tiny, but not --smoke) into the default folder, after the smoke run.
  real = ["--hidden_sizes", "8", "--steps", "4", "--train_examples", "64", "--eval_examples", "8"]
  beta_vae.main(real)
  real_files = _snapshot(tmp_path / "runs/beta_vae")
  assert tmp_path / "runs/beta_vae/run.json" in real_files
  # Smoke runs again: into its own folder (fresh), and refused in the real run's folder.
  beta_vae.main(["--smoke"])
  with pytest.raises(SystemExit):
    beta_vae.main(["--smoke", "--output_dir", "runs/beta_vae"])
  assert "holds a real run's checkpoints" in capsys.readouterr().err
  assert _snapshot(tmp_path / "runs/beta_vae") == real_files
  # A real run refuses a smoke run's folder, and a different model in its own folder.
  with pytest.raises(SystemExit):
    beta_vae.main(real + ["--output_dir", "runs/smoke/beta_vae"])
  assert "holds a --smoke run" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    beta_vae.main(real[2:] + ["--hidden_sizes", "12"])
  err = capsys.readouterr().err
  assert "holds checkpoints of another model" in err and "hidden_sizes: [8] vs [12]" in err
  assert _snapshot(tmp_path / "runs/beta_vae") == real_files


def test_iwae_refuses_a_folder_planned_with_other_steps_and_reports_what_ran(tmp_path, capsys):
  iwae = importlib.import_module("experiments.iwae")
  flags = ["--smoke", "--output_dir", str(tmp_path), "--models", "iwae:2"]
  metrics = iwae.main(flags)
  printed = capsys.readouterr().out
  assert re.search(r"ESS +k-hat>=0.7", printed) and "importance samples per image" in printed
  assert metrics["iwae_k2"]["train_steps"] == metrics["iwae_k2"]["planned_steps"] == 20
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["config"]["steps"] == 20 and results["trained"]["iwae_k2"]["trained_steps"] == 20
  before = _snapshot(tmp_path)
  with pytest.raises(SystemExit):
    iwae.main(flags + ["--steps", "30"])
  err = capsys.readouterr().err
  assert "was trained with steps=20 (20 steps planned) but this run asks for steps=30" in err
  assert _snapshot(tmp_path) == before


def test_a_time_budget_fixes_the_steps_from_the_calibration_calls_after_warm_up(tmp_path):
  """The step count is the budget over the median call of the calibration run, its first two calls left out."""
  iwae = importlib.import_module("experiments.iwae")
  budget = 4.0
  flags = ["--smoke", "--steps", "0", "--time_budget", str(budget), "--output_dir", str(tmp_path), "--models", "vae:1"]
  metrics = iwae.main(flags)["vae_k1"]
  history = pd.read_csv(tmp_path / "vae_k1" / "history.csv")
  per_call = iwae.Config.SMOKE["steps_per_call"]
  calibration = history[history["step"] <= common.CALIBRATION_CALLS * per_call]
  assert calibration["step"].tolist() == [per_call * (i + 1) for i in range(common.CALIBRATION_CALLS)]
  seconds = float(np.median(np.diff(calibration["wall_time"].to_numpy())[1:])) / per_call
  assert metrics["planned_steps"] == max(100, int(budget / seconds)) == metrics["train_steps"]
  assert history["step"].is_unique and history["step"].is_monotonic_increasing  # the real run resumed it


def test_a_time_budget_too_short_for_the_calibration_trains_the_calibrated_steps(tmp_path):
  """A plan below the steps the calibration already trained would be refused as a folder past its plan."""
  iwae = importlib.import_module("experiments.iwae")
  per_call = 40  # 6 calls of 40 steps: 240 calibrated steps, above iwae's minimum of 100
  flags = ["--smoke", "--steps", "0", "--time_budget", "0.001", "--steps_per_call", str(per_call)]
  metrics = iwae.main([*flags, "--output_dir", str(tmp_path), "--models", "vae:1"])["vae_k1"]
  assert metrics["planned_steps"] == metrics["train_steps"] == common.CALIBRATION_CALLS * per_call


def test_project_deadline_reports_the_seed_quantities():
  out = pathlib.Path(tempfile.mkdtemp())
  metrics = importlib.import_module("experiments.project_deadline").main(["--smoke", "--output_dir", str(out)])
  assert abs(metrics["mean_completion_days"] - 18.2) < 0.5  # the blog post: "around 18.2 days"
  assert 0.0 < metrics["p_exceed_70"] < 1e-3
  assert metrics["p_exceed_70_standard_error"] < metrics["p_exceed_70"]
  saved = json.loads((out / "results.json").read_text())["metrics"]
  assert {"p_exceed_70", "p_exceed_70_standard_error", "mean_completion_days"} <= set(saved)


def test_evaluate_command_on_a_trained_run(capsys):
  from tfpvi.cli import evaluate

  out = pathlib.Path(tempfile.mkdtemp()) / "iwae"
  importlib.import_module("experiments.iwae").main(["--smoke", "--output_dir", str(out), "--models", "iwae:2"])
  assert evaluate.main([str(out / "iwae_k2"), "--num_samples", "60", "--examples", "12", "--batch_size", "6"]) == 0
  printed = capsys.readouterr().out
  assert "log p(x)" in printed and "bits/dim" in printed and "Pareto k-hat" in printed
  summary = json.loads((out / "iwae_k2" / "evaluation.json").read_text())
  assert summary["num_examples"] == 12 and math.isfinite(summary["log_px"])
  assert evaluate.main([str(out), "--num_samples", "10"]) == 2
  assert "no run.json" in capsys.readouterr().err


def test_a_run_refuses_another_experiments_folder(tmp_path, capsys):
  iwae = importlib.import_module("experiments.iwae")
  beta_vae = importlib.import_module("experiments.beta_vae")
  iwae.main(["--smoke", "--output_dir", str(tmp_path), "--models", "iwae:2"])
  assert common.folder_experiment(tmp_path) == "experiments.iwae"
  assert json.loads((tmp_path / "results.json").read_text())["experiment"] == "experiments.iwae"
  before = _snapshot(tmp_path)
  real = ["--hidden_sizes", "8", "--steps", "4", "--train_examples", "64", "--eval_examples", "8"]
  for flags in (real, ["--smoke"]):
    with pytest.raises(SystemExit):
      beta_vae.main(flags + ["--output_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert f"{tmp_path} holds a run of experiments.iwae, not of experiments.beta_vae" in err, err
    assert _snapshot(tmp_path) == before
  assert tfpvi.run_record.read(tmp_path)["experiment"] == {"module": "experiments.iwae", "smoke": True}
  assert not list(tmp_path.glob(".tfpvi_*"))  # no marker files: the record says it
  # A folder written before run.json named its experiment: results.json names it.
  tfpvi.run_record.update(tmp_path, experiment=None)
  assert common.folder_experiment(tmp_path) == "experiments.iwae"


def test_jackknife_table_has_a_title_and_no_axis_names():
  import pandas as pd

  jackknife = importlib.import_module("experiments.jackknife")
  table = pd.DataFrame(
    {
      "K": [4, 4, 8, 8],
      "order": [0, 1, 0, 1],
      "bias": [-1.2, -0.3, -0.6, -0.1],
      "standard_error": [0.05, 0.02, 0.04, 0.01],
      "label": ["IWAE (order 0)", "JVI order 1"] * 2,
    }
  )
  title, header, *rows = jackknife.bias_text(table, 200).splitlines()
  assert "bias" in title and "nats" in title and "reference" in title and "K = 200" in title
  assert "standard error" in title and "every subset" in title
  assert header.split() == ["K", "IWAE", "(order", "0)", "JVI", "order", "1"]
  assert rows[0].split() == ["4", "-1.2000", "(0.0500)", "-0.3000", "(0.0200)"] and len(rows) == 2


def test_benchmark_help_is_quiet_and_keeps_its_list():
  import os
  import subprocess
  import sys

  root = pathlib.Path(__file__).resolve().parent.parent
  env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFPVI_SHOW_STARTUP_LOG")}
  result = subprocess.run(
    [sys.executable, "-m", "benchmarks.core", "--help"], cwd=root, capture_output=True, text=True, timeout=300, env=env
  )
  assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
  assert result.stdout.startswith("usage: python -m benchmarks.core ")
  assert "\n- `tfpvi.train.fit` as `experiments.iwae` runs it" in result.stdout
  assert "\n- a raw hand-written TensorFlow loop" in result.stdout and "PyTorch peer" in result.stdout
  assert re.search(r"--repeats REPEATS +timed runs", result.stdout)


@pytest.mark.parametrize(
  "name, flags",
  [
    ("iwae", ["--epochs", "2", "--steps", "10"]),
    ("iwae", ["--full_protocol", "--eval_examples", "50"]),
    ("latent_2d", ["--epochs", "3", "--steps", "10"]),
    ("bits_per_dim", ["--steps", "10", "--time_budget", "5"]),
  ],
)
def test_flags_that_replace_each_other_are_refused(name, flags, tmp_path, capsys):
  module = importlib.import_module(f"experiments.{name}")
  with pytest.raises(SystemExit):
    module.main(["--output_dir", str(tmp_path / "run"), *flags])
  err = capsys.readouterr().err
  assert "replace each other" in err and len(err.strip().splitlines()) == 1, err
  assert not (tmp_path / "run").exists()  # refused before anything is written


def test_a_resume_with_other_training_flags_says_how_to_force_it_in_one_line(tmp_path):
  import os
  import subprocess
  import sys

  root = pathlib.Path(__file__).resolve().parent.parent
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(root))
  base = [sys.executable, "-m", "experiments.beta_vae", "--smoke", "--output_dir", str(tmp_path / "run")]
  first = subprocess.run(base, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  refused = subprocess.run(
    base + ["--batch_size", "32"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
  )
  assert refused.returncode == 2
  err = refused.stderr.strip()
  assert "Traceback" not in err and len(err.splitlines()) == 1, err
  assert err.startswith("python -m experiments.beta_vae: error:") and "--resume force" in err and "batch_size" in err
  forced = subprocess.run(
    base + ["--batch_size", "32", "--resume", "force"],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert forced.returncode == 0, forced.stderr[-3000:]
  record = json.loads((tmp_path / "run" / "run.json").read_text())
  assert record["changes"] and "batch_size" in json.dumps(record["changes"])


def test_command_lines_print_no_tensorflow_native_log_lines(tmp_path):
  import os
  import subprocess
  import sys

  root = pathlib.Path(__file__).resolve().parent.parent
  env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFPVI_SHOW_STARTUP_LOG")}
  env["PYTHONPATH"] = str(root)
  for name in ("bbb_regression", "discrete"):
    result = subprocess.run(
      [sys.executable, "-m", f"experiments.{name}", "--smoke", "--output_dir", str(tmp_path / name)],
      cwd=tmp_path,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    native = [line for line in result.stderr.splitlines() if re.match(r"^[EWI]\d{4} ", line) or "retracing" in line]
    assert not native, native
  refused = subprocess.run(
    [sys.executable, "-m", "experiments.beta_vae", "--output_dir", str(tmp_path / "x"), "--steps", "0"],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert refused.returncode == 2 and "--steps" in refused.stderr  # errors still come through the filter


def test_the_benchmarks_time_the_experiments_models():
  """benchmarks/ builds its models without importing experiments/; they must stay the same models."""
  from benchmarks import conv as conv_benchmark
  from benchmarks import core as core_benchmark
  from experiments import bits_per_dim, iwae

  same = tfpvi.config.to_config
  assert same(core_benchmark.burda_model()) == same(tfpvi.specs.build(iwae.burda_spec(iwae.Config())))
  shape = [32, 32, 3]
  assert same(conv_benchmark.conv_model(shape)) == same(
    bits_per_dim.build_model("conv_mixture", bits_per_dim.Config(), shape)
  )


def test_the_recorded_command_holds_only_the_flags_a_user_gave():
  """A folder resolved from the models or settings another flag forces are not flags the user gave."""
  from experiments import iwae

  config = iwae.Config()
  config.check()  # resolves the default folder, runs/iwae
  assert config.output_dir and common.command_line(config) == "python -m experiments.iwae"
  forced = iwae.Config(full_protocol=True)
  forced.check()
  assert forced.batch_size == (20,) and common.command_line(forced) == "python -m experiments.iwae --full_protocol"
  assert forced.learning_rate == 1e-3 and forced.schedule_growth == 3.0  # Burda et al.'s, not the CPU default's
  given = iwae.Config(output_dir="elsewhere", batch_size=(50,), models=("iwae:5",))
  given.check()
  assert common.command_line(given) == (
    "python -m experiments.iwae --output_dir elsewhere --models iwae:5 --batch_size 50"
  ), common.command_line(given)
