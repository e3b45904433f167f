"""The site's experiment pages (docs/experiment_pages.py): collected from real runs, every number from results.json."""

import importlib
import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("experiment_pages", ROOT / "docs" / "experiment_pages.py")
pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pages)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
  """A real (not --smoke) beta_vae run, tiny but through the experiment's own entry point."""
  out = tmp_path_factory.mktemp("runs") / "beta_vae"
  flags = ["--hidden_sizes", "8", "--latent_size", "2", "--steps", "6", "--train_examples", "64"]
  importlib.import_module("experiments.beta_vae").main(flags + ["--eval_examples", "8", "--output_dir", str(out)])
  return out


def test_a_collected_run_becomes_a_page_with_its_command_machine_numbers_and_figures(real_run, tmp_path):
  target = pages.collect(real_run, tmp_path)
  results = json.loads((real_run / "results.json").read_text())
  figures = sorted(p.name for p in real_run.glob("*.png"))
  assert figures and sorted(p.name for p in target.glob("*.png")) == figures
  assert json.loads((target / "results.json").read_text()) == results
  page = pages.pages(tmp_path)["experiments/beta_vae.md"]
  assert results["command"] in page and results["command"].startswith("python -m experiments.beta_vae --output_dir")
  assert "--steps 6" in results["command"] and results["machine"] in page and results["finished"] in page
  for name, value in results["metrics"].items():
    assert f"| {name} | {pages.number(value)} |" in page, name
  for figure in figures:
    assert f"![{figure}](../results/beta_vae/{figure})" in page
  # The module's own description leads the page.
  assert page.startswith("# experiments.beta_vae\n\n" + pages.module_docstring("beta_vae").partition("\n")[0])
  # Collecting again replaces the folder, leaving no staging folder behind.
  pages.collect(real_run, tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["beta_vae"]


def test_smoke_runs_unfinished_runs_and_old_results_are_refused_with_the_remedy(real_run, tmp_path):
  smoke = tmp_path / "smoke"
  importlib.import_module("experiments.latent_2d").main(["--smoke", "--output_dir", str(smoke)])
  with pytest.raises(pages.CollectError, match="holds a --smoke run"):
    pages.collect(smoke, tmp_path / "results")
  with pytest.raises(pages.CollectError, match=r"results.json does not exist: the run has not finished"):
    pages.collect(tmp_path / "nothing", tmp_path / "results")
  old = tmp_path / "old"
  old.mkdir()
  results = json.loads((real_run / "results.json").read_text())
  (old / "results.json").write_text(json.dumps({k: v for k, v in results.items() if k != "command"}))
  with pytest.raises(pages.CollectError, match="has no command .* rerun experiments.beta_vae"):
    pages.collect(old, tmp_path / "results")
  assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_every_experiment_has_a_page_and_uncollected_ones_say_how_to_collect(tmp_path):
  generated = pages.pages(tmp_path)
  modules = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem not in ("__init__", "common"))
  assert sorted(generated) == [f"experiments/{m}.md" for m in modules]
  assert 'make docs-results RUNS="runs/flows"' in generated["experiments/flows.md"]


def test_the_committed_results_are_real_runs_shown_on_their_pages():
  collected = pages.collected()
  generated = pages.pages()
  for module, runs in collected.items():
    assert f"experiments/{module}.md" in generated, module
    for folder, results, figures in runs:
      assert results["command"].startswith(f"python -m experiments.{module}"), folder
      assert "--smoke" not in results["command"] and results["machine"] and results["finished"]
      for figure in figures:
        assert f"../results/{folder}/{figure}" in generated[f"experiments/{module}.md"]


def test_tables_transpose_wide_rows_and_format_numbers():
  assert pages.number(-95.4213) == "-95.42" and pages.number(0.17561) == "0.1756" and pages.number(None) == "-"
  assert pages.number(50000) == "50,000" and pages.number(float("nan")) == "nan"
  wide = pages.table({"vae_k1": {"a": 1.0, "b": 2.0, "c": {"d": 3.0}}})
  assert wide.splitlines()[0] == "| metric | vae_k1 |" and "| c d | 3 |" in wide
  tall = pages.table({"m1": {"x": 1}, "m2": {"x": 2}, "m3": {"x": 3}})
  assert tall.splitlines()[0] == "|  | x |" and "| m3 | 3 |" in tall


def test_the_benchmarks_page_is_the_tables_make_bench_wrote():
  """docs/hooks.py puts benchmarks/results_cpu.md on the site as it stands: every table row, nothing typed."""
  spec = importlib.util.spec_from_file_location("hooks", ROOT / "docs" / "hooks.py")
  hooks = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(hooks)
  page = hooks.benchmarks_page()
  written = (ROOT / "benchmarks" / "results_cpu.md").read_text()
  rows = [line for line in written.splitlines() if line.startswith("| ")]
  assert len(rows) > 10 and all(row in page for row in rows)
  assert page.startswith("# Benchmarks") and "### Training" in page and "## Core benchmarks, CPU" in page


def test_a_module_docstring_lists_and_references_render_as_lists_on_its_page():
  """Python-Markdown (what MkDocs renders with) sees the docstring's lists and references as <li> items."""
  import markdown

  html = markdown.markdown(pages.page("ais", []))
  items = [item.split("</li>")[0] for item in html.split("<li>")[1:]]
  assert len(items) == 5, html  # the two estimators, the three references
  assert items[0].startswith("by importance sampling") and items[1].startswith("by annealed importance")
  assert "Both are stochastic lower bounds" not in items[1]  # the paragraph after the list is its own
  assert "<p>Both are stochastic lower bounds" in html
  assert items[2].startswith("Wu, Burda, Salakhutdinov, Grosse. On the quantitative analysis")
  assert "<pre><code>python -m experiments.ais --output_dir runs/ais" in html  # the command stays a code block
