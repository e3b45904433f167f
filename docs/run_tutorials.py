"""Executes the Colab notebooks at their full sizes and stores their outputs, for the tutorial pages.

`make tutorials` (or `python docs/run_tutorials.py [NOTEBOOK ...]`) runs each notebook of colab/ top to
bottom in a fresh Jupyter kernel, as a user would (working directory: a temporary folder, no GPU), and
writes the executed notebook back in place with its printed output and figures. The site renders those
stored outputs (mkdocs-jupyter with `execute: false`), so `make docs` stays fast, and Colab opens each
notebook with its results already shown. The notebook's metadata records when and where it ran.
"""

import datetime
import os
import pathlib
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient

from tfpvi import run_record  # the host's description, as results.json records it

COLAB = pathlib.Path(__file__).resolve().parent.parent / "colab"


def run(path: pathlib.Path, timeout: int = 3600) -> float:
  """Executes the notebook at `path` and writes it back with its outputs; returns the seconds it took."""
  notebook = nbformat.read(path, as_version=4)
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the notebooks are quiet without it, as users run them
  started = time.time()
  with tempfile.TemporaryDirectory(prefix="tfpvi-tutorial-") as folder:
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": folder}})
    client.execute(env=env)
  seconds = time.time() - started
  notebook.metadata["tfpvi"] = {
    "executed": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    "machine": run_record.machine(),
    "seconds": round(seconds),
  }
  nbformat.write(notebook, path)
  return seconds


def main(argv: list[str]) -> None:
  paths = [pathlib.Path(a) for a in argv] or sorted(COLAB.glob("*.ipynb"))
  for path in paths:
    print(f"{path.name}: running ...", flush=True)
    print(f"{path.name}: {run(path):.0f} s", flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])
