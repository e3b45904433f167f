"""colab/structured_latents.ipynb runs top to bottom in a Jupyter kernel, as printed (toy sizes: tests/doc_sizes)."""

from tests.notebooks import COLAB, check_outputs, execute_notebook

NOTEBOOK = COLAB / "structured_latents.ipynb"


def test_structured_latents_notebook_runs_in_a_kernel_with_inline_figures(tmp_path):
  notebook, summaries = execute_notebook(
    NOTEBOOK,
    tmp_path,
    probe="{name: {k: float(v) for k, v in s.items() if k in ('num_examples', 'num_samples', "
    "'log_px')} for name, s in summaries.items()}",
  )
  check_outputs(notebook, ("tfpvi.plot.image_grid",), num_figure_cells=1)
  assert set(summaries) == {"two layers", "flow + VampPrior"}
  for summary in summaries.values():
    assert summary["num_examples"] == 500 and summary["num_samples"] == 50  # NUM_TEST, the smoke cap on samples
    assert summary["log_px"] < 0
