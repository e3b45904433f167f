"""The experiments' figures say what they show: labels, scales, captions and bands a paper would print."""

import math

import numpy as np
import pandas as pd
import plotnine as gg

from experiments import bayes_by_backprop, bits_per_dim, discrete, flows, marginal_likelihood, project_deadline, renyi


def _history(steps, **columns):
  return pd.DataFrame({"step": steps, **columns})


def test_bbb_loss_curves_put_cross_entropy_and_kl_on_their_own_scales(tmp_path):
  steps = [1, 10, 100]
  histories = {
    "bbb_gaussian_400": _history(
      steps, loss=[120.0, 116.0, 115.0], log_likelihood=[-2.0, -0.5, -0.1], kl=[7e5, 6e5, 5e5]
    ),
    "sgd_400": _history(steps, loss=[2.0, 0.5, 0.1], log_likelihood=[-2.0, -0.5, -0.1], kl=[0.0] * 3),
  }
  figure = bayes_by_backprop.loss_curves(histories, tmp_path / "loss.png")
  assert isinstance(figure.facet, gg.facet_wrap) and figure.facet.free["y"]
  terms = set(figure.data["term"])
  assert any("cross-entropy" in t for t in terms) and any("KL" in t for t in terms) and len(terms) == 2
  assert "free energy" in figure.labels.get("caption", "")
  bars = bayes_by_backprop.plot_bars(
    {"sgd_400": 2.0, "bbb_400": 2.1}, tmp_path / "bars.png", xlabel="model, hidden units per layer", title="t"
  )
  assert "_" not in bars.axes[0].get_xlabel()


def test_renyi_snr_is_on_a_log_axis_and_error_bars_are_explained(tmp_path):
  metrics = {
    "vr:0:5": {"encoder_snr": 0.01, "decoder_snr": 3.0, "test_log_px": -95.0, "test_log_px_standard_error": 1.0},
    "vr:0.5:5": {"encoder_snr": 0.02, "decoder_snr": 2.0, "test_log_px": -96.0, "test_log_px_standard_error": 1.0},
  }
  assert renyi.plot_snr(metrics, tmp_path / "snr.png").axes[0].get_yscale() == "log"
  by_alpha = renyi.plot_by_alpha(metrics, tmp_path / "alpha.png")
  assert any("error bars" in text.get_text() for text in by_alpha.texts)


def test_marginal_likelihood_figure_shows_the_paired_difference_not_bars_from_zero():
  table = pd.DataFrame(
    {"model": ["m", "m"], "estimate": ["importance sampling", "naive (prior)"], "bits_per_dim": [0.2, 0.4]}
  )
  metrics = {"m": {"naive_minus_importance": {"log_px": -100.0, "standard_error": 2.0}}}
  figure = marginal_likelihood.estimates_figure(table, metrics, 1000, 50)
  assert not any(isinstance(layer.geom, gg.geom_col) for layer in figure.layers)
  assert "naive - IS = +0.184 +- 0.004 bits/dim" in figure.data["panel"].iloc[0]  # naive is the worse: more bits
  assert "paired" in figure.labels.get("caption", "")


def test_discrete_curves_do_not_call_the_gaussian_model_discrete(tmp_path):
  history = _history([1, 2], loss=[3.0, 2.0], test_elbo=[-3.0, -2.0])
  figure = discrete.plot_curves({"concrete": history, "gaussian": history}, tmp_path / "c.png")
  assert "Gaussian" in figure.axes[1].get_title()


def test_bits_per_dim_log_axis_has_labels_within_a_decade(tmp_path):
  history = pd.DataFrame({"wall_time": [1.0, 10.0, 100.0], "loss": np.array([1.6, 1.4, 1.25]) * 784 * math.log(2)})
  figure = bits_per_dim.learning_curves({"mlp": history}, 784, "mnist", tmp_path / "l.png")
  low, high = figure.axes[0].get_ylim()
  labelled = [t for t in figure.axes[0].get_yticks() if low <= t <= high]
  assert len(labelled) >= 2, labelled


def test_deadline_band_is_not_zero_width_before_the_first_hit():
  frame = pd.DataFrame(
    {"samples": [10, 100, 1000], "estimate": [0.0, 0.0, 0.002], "se": [0.0, 0.0, 0.0014], "method": ["naive"] * 3}
  )
  band = project_deadline.deadline_band(frame)
  np.testing.assert_allclose(band["high"][:2], [0.3, 0.03])
  assert band["low"].min() == 0.0 and band["high"].iloc[2] == 0.002 + 2 * 0.0014


def test_flows_gap_curve_names_its_k(tmp_path):
  history = pd.DataFrame(
    {"step": [1, 2], "wall_time": [1.0, 2.0], "gap": [5.0, 4.0], "log_px": [-100.0, -99.0], "elbo": [-105.0, -103.0]}
  )
  figure = flows.plot_gap({"iaf": history}, tmp_path / "gap.png", num_samples=500, num_examples=100, final_samples=5000)
  assert "K = 500" in figure.axes[0].get_title()
  assert any("K = 5000" in text.get_text() for text in figure.texts)
