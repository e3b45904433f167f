"""Runs a notebook of colab/ top to bottom in a real Jupyter kernel, as a user would (for the notebook tests).

The kernel starts in a temporary folder with tests/doc_sizes on PYTHONPATH (`fit` runs at most 20
steps, importance sampling at most 50 samples; see tests/doc_sizes/sitecustomize.py), no GPU, and
without TF_CPP_MIN_LOG_LEVEL: the notebooks
must be quiet as printed. `check_outputs` then asserts that every figure arrived as one inline PNG and that
no TensorFlow start-up line reached a cell's output.
"""

import json
import os
import pathlib
import re
from typing import Optional, Sequence

import nbformat
from nbclient import NotebookClient

from tfpvi._startup import RUNTIME_NOISE, STARTUP_NOISE  # the native lines tfpvi filters

# What must never reach a cell: TensorFlow's native notes, AutoGraph's conversion failures, retracing.
OTHER_NOISE = re.compile(
  r"Please report this to the TensorFlow team|triggered tf\.function retracing|^[EWI]\d{4} ", re.MULTILINE
)

__all__ = ["COLAB", "check_outputs", "code_cells", "execute_notebook", "printed"]

COLAB = pathlib.Path(__file__).parent.parent / "colab"
DOC_SIZES = str(pathlib.Path(__file__).parent / "doc_sizes")  # its sitecustomize caps fit and importance sampling
# What a figure looks like in an output that has no image of it.
UNRENDERED = ("<Figure size", "<ggplot", "<plotnine")
PROBE_TAG = "tfpvi-test-probe"


def execute_notebook(path: pathlib.Path, folder: pathlib.Path, probe: Optional[str] = None, timeout: int = 900):
  """Executes the notebook at `path` in a fresh python3 kernel whose working directory is `folder`.

  Args:
    path: the .ipynb file.
    folder: the kernel's working directory (the notebook's relative paths land there).
    probe: optional expression evaluated in the kernel after the last cell; its value (JSON-serializable)
      is returned, so a test can check the notebook's variables.
    timeout: seconds allowed per cell.

  Returns:
    (notebook, value): the executed notebook without the probe cell, and the probe's value (None without one).
  """
  notebook = nbformat.read(path, as_version=4)
  # The toy sizes must have been in force (a notebook run at full size would take hours).
  notebook.cells.append(
    nbformat.v4.new_code_cell(
      "import tfpvi as _tfpvi\n"
      'assert getattr(_tfpvi.train.fitting, "_doc_sizes_installed", False), "toy sizes not in force"',
      metadata={"tags": [PROBE_TAG]},
    )
  )
  if probe is not None:
    notebook.cells.append(
      nbformat.v4.new_code_cell(f"import json as _json\nprint(_json.dumps({probe}))", metadata={"tags": [PROBE_TAG]})
    )
  env = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join(filter(None, [DOC_SIZES, os.environ.get("PYTHONPATH")])),
    CUDA_VISIBLE_DEVICES="",
  )
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the notebooks must be quiet without it
  client = NotebookClient(
    notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
  )
  client.execute(env=env)
  value = None
  if probe is not None:
    value = json.loads(printed(notebook.cells.pop()))
  notebook.cells.pop()  # the check of the toy sizes
  return notebook, value


def code_cells(notebook) -> list:
  return [cell for cell in notebook.cells if cell.cell_type == "code"]


def printed(cell) -> str:
  """What the cell printed (its stdout and stderr streams)."""
  return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


def check_outputs(notebook, figure_calls: Sequence[str], num_figure_cells: int) -> list:
  """Asserts one inline PNG in each of the `num_figure_cells` cells calling any of `figure_calls`, none
  elsewhere, no unrendered figure and no TensorFlow start-up line in any output; returns the figure cells."""
  figure_cells = []
  for cell in code_cells(notebook):
    for output in cell.outputs:
      text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
      noise = STARTUP_NOISE.search(text) or RUNTIME_NOISE.search(text) or OTHER_NOISE.search(text)
      assert noise is None, f"TensorFlow noise {noise.group(0)!r} in the output of:\n{cell.source}\n{text}"
      unrendered = "image/png" not in output.get("data", {}) and any(u in text for u in UNRENDERED)
      assert not unrendered, f"a figure was not rendered by:\n{cell.source}\noutput: {text}"
    images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
    if any(call in cell.source for call in figure_calls):
      figure_cells.append(cell)
      assert len(images) == 1, f"{len(images)} PNGs for:\n{cell.source}\noutputs: {cell.outputs}"
    else:
      assert not images, f"unexpected PNG from:\n{cell.source}"
  assert len(figure_cells) == num_figure_cells, [c.source for c in figure_cells]
  return figure_cells
