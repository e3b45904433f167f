"""colab/structured_latents.ipynb runs top to bottom (with smaller sizes)."""

import json
import pathlib

NOTEBOOK = pathlib.Path(__file__).parent.parent / "colab" / "structured_latents.ipynb"
SMALLER = {"STEPS = 2000": "STEPS = 4", "NUM_TEST = 500": "NUM_TEST = 12", "NUM_SAMPLES = 1000": "NUM_SAMPLES = 20",
           "num_components=50": "num_components=5"}


def test_structured_latents_notebook_runs():
  cells = json.loads(NOTEBOOK.read_text())["cells"]
  source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
  for large, small in SMALLER.items():
    assert large in source, f"the notebook no longer contains {large!r}; update SMALLER"
    source = source.replace(large, small)
  namespace = {}
  exec(compile(source, str(NOTEBOOK), "exec"), namespace)
  assert set(namespace["summaries"]) == {"two layers", "flow + VampPrior"}
  assert all(s["num_examples"] == 12 for s in namespace["summaries"].values())
