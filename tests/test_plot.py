"""tfpvi.plot: figures say what they show, handle any latent structure, and render inline in Jupyter."""

import os
import pathlib
import subprocess
import sys
import textwrap

import matplotlib.figure
import matplotlib.text
import numpy as np
import pandas as pd
import plotnine as gg
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import plot

tfd = tfp.distributions
ROOT = pathlib.Path(__file__).parent.parent


class RecordingModel:
  """A model with any prior; its decoder records the z it gets and returns images [N, 4, 4, 1]."""

  def __init__(self, prior, posterior=None):
    self.prior = prior
    self._posterior = posterior
    self.seen = []

  def likelihood(self, z):
    self.seen.append(tf.nest.map_structure(lambda t: t.numpy(), z))
    flat = tf.concat([tf.reshape(t, [tf.shape(t)[0], -1]) for t in tf.nest.flatten(z)], axis=-1)
    probs = tf.sigmoid(tf.reduce_sum(flat, -1))[:, None, None, None] * tf.ones([1, 4, 4, 1])
    return tfd.Independent(tfd.Bernoulli(probs=probs), 3)

  def posterior(self, x):
    return self._posterior(x)


def _normal(shape):
  return tfd.Independent(tfd.Normal(tf.zeros(shape), 1.0), len(shape))


def _axis_texts(figure):
  axis = figure.axes[-1]
  return axis.get_xlabel(), axis.get_ylabel(), [t.get_text() for t in axis.get_xticklabels()]


def test_import_leaves_the_matplotlib_backend_alone():
  code = "import matplotlib; import tfpvi.plot; print(matplotlib.get_backend())"
  env = dict(os.environ, MPLBACKEND="svg", TF_CPP_MIN_LOG_LEVEL="3")
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
  assert out.stdout.strip().splitlines()[-1] == "svg"


def test_saving_into_a_missing_folder_names_it(tmp_path):
  with pytest.raises(FileNotFoundError, match="folder .*missing.* does not exist"):
    plot.image_grid(np.zeros([4, 8, 8]), path=str(tmp_path / "missing" / "grid.png"))


def _history(loss, reconstruction, kl):
  return pd.DataFrame({"step": [1, 2, 4], "loss": loss, "log_likelihood": [-r for r in reconstruction], "kl": kl})


def test_loss_curves_one_panel_per_term_with_free_scales_and_no_single_run_legend(tmp_path):
  history = _history([101.0, 90.0, 80.0], [100.0, 89.0, 79.0], [100.0, 100.0, 100.0])  # beta = 0.01
  figure = plot.loss_curves(history, path=str(tmp_path / "loss.png"))
  assert isinstance(figure.facet, gg.facet_wrap) and figure.facet.free["y"]
  assert figure.theme.themeables["legend_position"].properties["value"] == "none"
  assert set(figure.data["term"]) == {"total: training loss (-objective)", "reconstruction: -log p(x|z)", "KL(q || p)"}
  assert not figure.labels.get("caption", None)  # an ELBO's total is reconstruction + beta KL: nothing to explain
  assert (tmp_path / "loss.png").stat().st_size > 5000


def test_loss_curves_explain_a_k_sample_bound_below_its_reconstruction_term():
  history = _history([90.0, 85.0, 80.0], [95.0, 90.0, 86.0], [8.0, 7.0, 6.0])  # IWAE: total < reconstruction
  figure = plot.loss_curves(history)
  assert "can lie below the reconstruction" in figure.labels.get("caption", None)


def test_loss_curves_several_runs_one_term_legend_names_runs():
  histories = {
    "VAE k=1": _history([3.0, 2.0, 1.0], [2.0] * 3, [1.0] * 3),
    "IWAE k=5": _history([3.0] * 3, [2.0] * 3, [1.0] * 3),
  }
  figure = plot.loss_curves(histories, terms=["loss"])
  assert figure.facet is None or not isinstance(figure.facet, gg.facet_wrap)
  assert set(figure.data["run"]) == {"VAE k=1", "IWAE k=5"}
  assert figure.labels.get("title", None) == "total: training loss (-objective)"  # the one term, named above
  assert figure.labels.get("y", None) == "nats per example" and figure.labels.get("color", None) == ""


def _drawn_text_boxes(figure) -> tuple:
  """({text: its box in pixels} for each visible text of a plotnine figure drawn at 120 dpi, the figure's box)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg

  drawn = figure.draw()
  drawn.set_dpi(120)
  FigureCanvasAgg(drawn).draw()
  renderer = drawn.canvas.get_renderer()
  texts = drawn.findobj(matplotlib.text.Text)
  return {text.get_text(): text.get_window_extent(renderer) for text in texts if text.get_text().strip()}, drawn.bbox


def test_loss_curves_of_one_term_with_a_title_keep_every_label_apart_and_inside():
  """The title, the term's name and the y label of a one-term plot neither overlap nor leave the figure."""
  histories = {f"S = {s}": _history([210.0, 180.0, 150.0 + s], [2.0] * 3, [1.0] * 3) for s in (1, 5, 25)}
  title = "negative ELBO during training, by MC samples S"
  boxes, page = _drawn_text_boxes(plot.loss_curves(histories, terms=["loss"], log_x=False, log_y=False, title=title))
  labels = [title, "total: training loss (-objective)", "nats per example"]
  assert set(labels) <= set(boxes), sorted(boxes)
  for label in labels:
    box = boxes[label]
    assert box.x0 >= page.x0 and box.y0 >= page.y0 and box.x1 <= page.x1 and box.y1 <= page.y1, (label, box, page)
  for i, first in enumerate(labels):
    for second in labels[i + 1 :]:
      assert not boxes[first].overlaps(boxes[second]), (first, second)


@pytest.mark.parametrize(
  "histories,message",
  [
    (pd.DataFrame(columns=["step", "loss", "log_likelihood", "kl"]), "is empty"),
    (pd.DataFrame(), "is empty"),
    ({}, "at least one history"),
    (pd.DataFrame({"step": [1, 2], "loss": [np.nan, np.nan]}), "no finite values"),
  ],
)
def test_loss_curves_refuse_an_empty_history_in_one_sentence(histories, message):
  with pytest.raises(ValueError, match=message) as error:
    plot.loss_curves(histories)
  assert len(str(error.value).splitlines()) == 1


def test_image_grid_is_a_figure_outside_pyplot():
  import matplotlib.pyplot as plt

  before = plt.get_fignums()
  figure = plot.image_grid(np.random.rand(6, 8, 8), rows=2)
  assert isinstance(figure, matplotlib.figure.Figure) and plt.get_fignums() == before


def test_reconstruction_distribution_shows_the_input():
  class Model:
    def reconstruct(self, x, num_samples, seed):
      return tf.ones([num_samples, x.shape[0], 6, 6, 1]) * 0.5

  figure = plot.reconstruction_distribution(Model(), np.ones([6, 6, 1]), grid=2)
  titles = [axis.get_title() for axis in figure.axes]
  assert titles[0] == "input x" and "4 samples z ~ q(z|x)" in titles[1]
  np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), np.ones([6, 6]))


def test_traversal_labels_its_axes_and_holds_other_latents_at_the_prior_mean():
  model = RecordingModel(_normal([5]))
  figure = plot.latent_traversal(model, dims=(3, 1), num=3, span=2.0)
  z = model.seen[-1]  # [9, 5]: columns move z[3] left to right, rows move z[1] top (+2) to bottom (-2)
  np.testing.assert_allclose(z[:, 3], [-2, 0, 2] * 3)
  np.testing.assert_allclose(z[:, 1], [2, 2, 2, 0, 0, 0, -2, -2, -2])
  np.testing.assert_allclose(z[:, [0, 2, 4]], 0.0)
  xlabel, ylabel, xticks = _axis_texts(figure)
  assert (xlabel, ylabel) == ("z[3]", "z[1]") and xticks == ["-2", "0", "2"]
  assert "other latents held at 0 (the prior mean)" in figure.axes[0].get_title()


def test_traversal_of_an_event_of_rank_two():
  model = RecordingModel(_normal([2, 3]))
  figure = plot.latent_traversal(model, dims=(0, 5), num=2)
  z = model.seen[-1]
  assert z.shape == (4, 2, 3)
  np.testing.assert_allclose(z[:, 0, 0], [-1, 1, -1, 1])
  np.testing.assert_allclose(z[:, 1, 2], [1, 1, -1, -1])
  assert _axis_texts(figure)[:2] == ("z[0, 0]", "z[1, 2]")


def _joint_prior():
  return tfd.JointDistributionNamed({"top": _normal([2]), "bottom": lambda top: _normal([2, 2])})


def test_traversal_and_manifold_of_a_nested_latent():
  model = RecordingModel(_joint_prior())
  figure = plot.latent_traversal(model, latent="bottom", dims=(0, 3), num=2)
  z = model.seen[-1]
  assert set(z) == {"top", "bottom"} and z["bottom"].shape == (4, 2, 2) and z["top"].shape == (4, 2)
  np.testing.assert_allclose(z["bottom"][:, 0, 0], [-1, 1, -1, 1])
  np.testing.assert_allclose(z["bottom"][:, 1, 1], [1, 1, -1, -1])
  np.testing.assert_allclose(z["top"], 0.0)
  assert _axis_texts(figure)[:2] == ("bottom[0, 0]", "bottom[1, 1]")
  # Without `latent`, the components are concatenated in tf.nest order (bottom: 4 dims, then top: 2).
  figure = plot.latent_manifold(model, num=3, dims=(4, 0))
  z = model.seen[-1]
  quantiles = tfd.Normal(0.0, 1.0).quantile([0.05, 0.5, 0.95]).numpy()
  np.testing.assert_allclose(z["top"][:, 0], np.tile(quantiles, 3), atol=1e-6)
  np.testing.assert_allclose(z["bottom"][:, 0, 0], np.repeat(quantiles[::-1], 3), atol=1e-6)
  xlabel, ylabel, xticks = _axis_texts(figure)
  assert (xlabel, ylabel) == ("top[0]", "bottom[0, 0]") and xticks == [f"{q:.2f}" for q in quantiles]


def test_latent_plots_reject_unknown_components_and_dimensions():
  model = RecordingModel(_joint_prior())
  with pytest.raises(ValueError, match=r"latent='middle' is not a component.*\['bottom', 'top'\]"):
    plot.latent_traversal(model, latent="middle")
  with pytest.raises(ValueError, match=r"dims must be 2 different latent dimensions in \[0, 2\), got \[0, 2\]"):
    plot.latent_traversal(model, latent="top", dims=(0, 2))
  with pytest.raises(ValueError, match="2 different"):
    plot.latent_manifold(RecordingModel(_normal([4])), dims=(1, 1))


def test_latent_scatter_of_a_nested_posterior_without_a_closed_form_mean():
  def posterior(x):
    loc = tf.reduce_mean(tf.reshape(x, [x.shape[0], -1]), -1, keepdims=True) * tf.ones([1, 2])
    return tfd.JointDistributionNamed(
      {
        "top": tfd.Independent(tfd.Normal(loc, 1e-3), 1),
        "bottom": lambda top: tfd.Independent(tfd.Normal(top, 1e-3), 1),
      },
      batch_ndims=1,
      use_vectorized_map=True,
    )

  model = RecordingModel(_joint_prior(), posterior)
  x = np.linspace(0, 1, 12, dtype=np.float32)[:, None, None, None] * np.ones([1, 4, 4, 1], np.float32)
  figure = plot.latent_scatter(model, x, np.arange(12) % 3, latent="top", dims=(1, 0), batch_size=5)
  np.testing.assert_allclose(figure.data["z1"], np.linspace(0, 1, 12), atol=2e-3)
  assert figure.labels.get("x", None) == "posterior Monte Carlo mean (100 samples) of top[1]"
  with pytest.raises(ValueError, match="one label per input"):
    plot.latent_scatter(model, x, np.arange(3))


def test_image_grids_render_inline_in_jupyter_even_when_not_the_last_expression(tmp_path):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  cells = [
    "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\nimport numpy as np\nfrom tfpvi import plot",
    "figure = plot.image_grid(np.random.rand(4, 8, 8))\nsize = 1",  # not the last expression
    "plot.image_grid(np.random.rand(4, 8, 8))",  # the last expression: shown once, not twice
    "figure",  # displayed again in a later cell
  ]
  notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells])
  client = nbclient.NotebookClient(
    notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
  )
  client.execute()
  images = [sum("image/png" in output.get("data", {}) for output in cell.outputs) for cell in notebook.cells]
  assert images == [0, 1, 1, 1]


def test_loss_curves_draw_any_number_of_runs(tmp_path):
  # plotnine's default linetype palette has 6 entries; the renyi experiment compares 11 models.
  histories = {f"run {i}": _history([3.0 - i / 10, 2.0, 1.0], [2.0] * 3, [1.0] * 3) for i in range(11)}
  plot.loss_curves(histories, terms=["loss"], path=str(tmp_path / "many.png"))
  assert (tmp_path / "many.png").stat().st_size > 5000
