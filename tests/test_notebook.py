"""The Colab quick start runs top to bottom (with smaller sizes)."""

import json
import pathlib

NOTEBOOK = pathlib.Path(__file__).parent.parent / "colab" / "tfpvi_quickstart.ipynb"
SMALLER = {"steps=3000": "steps=20", "test_images[:500], num_samples=5000": "test_images[:20], num_samples=100",
           '"/tmp/tfpvi_quickstart"': "output_dir"}


def test_quickstart_notebook_runs(tmp_path):
  cells = json.loads(NOTEBOOK.read_text())["cells"]
  source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
  for large, small in SMALLER.items():
    assert large in source, f"the notebook no longer contains {large!r}; update SMALLER"
    source = source.replace(large, small)
  namespace = {"output_dir": str(tmp_path / "run")}
  exec(compile(source, str(NOTEBOOK), "exec"), namespace)
  assert namespace["summary"]["num_examples"] == 20
  assert len(namespace["history"]) >= 1
