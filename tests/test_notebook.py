"""The Colab quick start runs top to bottom in a real Jupyter kernel, as printed (issue 7, item 5).

The kernel gets TFPVI_SMOKE=1 (`fit` runs at most 20 steps, importance sampling at most 50
samples; see tfpvi/_smoke.py) and runs in a temporary folder. Every figure must arrive as an inline
PNG, and no TensorFlow start-up line may land in a cell's output.
"""

import json
import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).parent.parent / "colab" / "tfpvi_quickstart.ipynb"
FIGURE_CALLS = ("tfpvi.plot.image_grid", "tfpvi.plot.loss_curves", "tfpvi.plot.reconstructions")
NOISE = ("oneDNN", "cuInit", "cpu_feature_guard", "cuda drivers", "absl::InitializeLog")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  folder = tmp_path_factory.mktemp("notebook")
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  old = {k: os.environ.get(k) for k in ("TFPVI_SMOKE", "CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL")}
  os.environ.update(TFPVI_SMOKE="1", CUDA_VISIBLE_DEVICES="")
  os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the notebook must be quiet without it
  try:
    client = NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()
  finally:
    for key, value in old.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
  return notebook, folder


def code_cells(notebook):
  return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_every_figure_is_rendered_inline(executed):
  notebook, _ = executed
  figure_cells = [c for c in code_cells(notebook) if any(call in c.source for call in FIGURE_CALLS)]
  assert len(figure_cells) == 4
  for cell in figure_cells:
    images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
    texts = [o.get("data", {}).get("text/plain", "") for o in cell.outputs]
    assert len(images) == 1, f"{len(images)} PNGs for:\n{cell.source}\noutputs: {texts}"


def test_no_tensorflow_startup_lines_in_the_outputs(executed):
  notebook, _ = executed
  for cell in code_cells(notebook):
    text = json.dumps(cell.outputs)
    for noise in NOISE:
      assert noise not in text, f"{noise!r} in the output of:\n{cell.source}"


def test_the_evaluation_is_explained(executed):
  notebook, folder = executed
  evaluation = next(c for c in code_cells(notebook) if "evaluate_dataset" in c.source)
  printed = "".join(o.get("text", "") for o in evaluation.outputs if o.output_type == "stream")
  assert "Pareto k-hat" in printed and ("Reliable" in printed or "Not reliable" in printed), printed
  markdown = " ".join(c.source for c in notebook.cells if c.cell_type == "markdown")
  assert "effective sample size" in markdown and "0.7" in markdown
  assert (folder / "runs" / "quickstart").is_dir()


def test_the_install_cell_installs_when_tfpvi_is_missing():
  install = code_cells(nbformat.read(NOTEBOOK, as_version=4))[0]
  assert 'find_spec("tfpvi") is None' in install.source
  assert '"pip", "install"' in install.source and "TFPVI_SOURCE" in install.source
  assert "tfpvi-*.whl" in install.source  # a wheel from `python -m build` (tests/test_wheel.py) works too
