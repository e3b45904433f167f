"""The Colab quick start runs top to bottom in a real Jupyter kernel, as printed.

The kernel starts with tests/doc_sizes on PYTHONPATH (`fit` runs at most 20 steps, importance sampling at most 50
samples; see tests/doc_sizes/sitecustomize.py) and runs in a temporary folder. Every figure must arrive as an inline
PNG, and no TensorFlow start-up line may land in a cell's output.
"""

import nbformat
import pytest

from tests.notebooks import COLAB, check_outputs, code_cells, execute_notebook, printed

NOTEBOOK = COLAB / "tfpvi_quickstart.ipynb"
FIGURE_CALLS = ("tfpvi.plot.image_grid", "tfpvi.plot.loss_curves", "tfpvi.plot.reconstructions")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  folder = tmp_path_factory.mktemp("notebook")
  notebook, _ = execute_notebook(NOTEBOOK, folder)
  return notebook, folder


def test_every_figure_is_rendered_inline_and_no_startup_lines(executed):
  notebook, _ = executed
  check_outputs(notebook, FIGURE_CALLS, num_figure_cells=4)


def test_the_evaluation_is_explained(executed):
  notebook, folder = executed
  evaluation = next(c for c in code_cells(notebook) if "evaluate_dataset" in c.source)
  text = printed(evaluation)
  assert "Pareto k-hat" in text and ("Reliable" in text or "Not reliable" in text), text
  markdown = " ".join(c.source for c in notebook.cells if c.cell_type == "markdown")
  assert "effective sample size" in markdown and "0.7" in markdown
  assert (folder / "runs" / "quickstart").is_dir()


def test_the_install_cell_installs_when_tfpvi_is_missing():
  install = code_cells(nbformat.read(NOTEBOOK, as_version=4))[0]
  assert 'find_spec("tfpvi") is None' in install.source
  assert '"pip", "install"' in install.source and "TFPVI_SOURCE" in install.source
  assert "tfpvi-*.whl" in install.source  # a wheel from `python -m build` (tests/test_wheel.py) works too


def test_every_notebook_installs_tfpvi_with_the_same_cell():
  cells = {path.name: code_cells(nbformat.read(path, as_version=4))[0].source for path in sorted(COLAB.glob("*.ipynb"))}
  assert len(cells) >= 4
  assert len(set(cells.values())) == 1, {name: source[:120] for name, source in cells.items()}
  for name, source in cells.items():
    assert "YOUR-ACCOUNT" not in source and "<your-fork>" not in source and not source.lstrip().startswith("# !pip")


def test_the_trust_story_matches_the_measurements(executed):
  notebook, _ = executed
  markdown = " ".join(c.source for c in notebook.cells if c.cell_type == "markdown")
  assert "helps most" not in markdown and "not trained to be a good" in markdown
  annealed = next(c for c in code_cells(notebook) if "ais_log_marginal_likelihood" in c.source)
  assert "AIS (500 steps, 8 chains)" in printed(annealed)
