"""Figures from the seeds: loss curves and latent scatters (plotnine), image grids (matplotlib).

Every function returns the figure (a `plotnine.ggplot` or a `matplotlib.figure.Figure`) and, given
`path`, also saves it as a PNG.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotnine as gg  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

tfd = tfp.distributions

__all__ = [
    "image_grid",
    "latent_manifold",
    "latent_scatter",
    "latent_traversal",
    "loss_curves",
    "reconstruction_distribution",
    "reconstructions",
    "save",
]

Histories = Union[pd.DataFrame, Mapping[str, pd.DataFrame]]
# How training-history columns are shown as losses: reconstruction = -log p(x|z).
_LOSS_TERMS = {"loss": "total", "log_likelihood": "reconstruction", "kl": "kl"}


def save(figure, path: Optional[str], dpi: int = 120):
  """Saves a plotnine or matplotlib figure as PNG (if path is given) and returns it."""
  if path is None:
    return figure
  if isinstance(figure, gg.ggplot):
    figure.save(str(path), dpi=dpi, verbose=False)
  else:
    figure.savefig(str(path), dpi=dpi, bbox_inches="tight")
  return figure


def _long_losses(histories: Histories, terms: Optional[Sequence[str]]) -> pd.DataFrame:
  if isinstance(histories, pd.DataFrame):
    histories = {"": histories}
  frames = []
  for run, history in histories.items():
    columns = [c for c in (terms or _LOSS_TERMS) if c in history.columns]
    frame = history[["step"] + columns].copy()
    if "log_likelihood" in frame:
      frame["log_likelihood"] = -frame["log_likelihood"]
    frame = frame.rename(columns=_LOSS_TERMS).melt(id_vars="step", var_name="term", value_name="value")
    frame["run"] = run
    frames.append(frame.dropna())
  return pd.concat(frames, ignore_index=True)


def loss_curves(
    histories: Histories,
    *,
    terms: Optional[Sequence[str]] = None,
    log_x: bool = True,
    log_y: bool = True,
    title: Optional[str] = None,
    path: Optional[str] = None,
) -> gg.ggplot:
  """Training curves, terms as colours (seed 001's log-log plot); several runs in facets.

  Args:
    histories: one history DataFrame from `tfpvi.train.fit`, or {run name: history}.
    terms: history columns to show (default: loss, log_likelihood shown as the reconstruction
      loss -log p(x|z), and kl).
    log_x, log_y: logarithmic axes (log_y only if every value is positive).
    title: plot title.
    path: save as PNG here.
  """
  data = _long_losses(histories, terms)
  several_runs = data["run"].nunique() > 1
  # One term over several runs: the runs are the colours, on one panel (seed 000's comparison).
  colour = "run" if several_runs and data["term"].nunique() == 1 else "term"
  data["run"] = pd.Categorical(data["run"], categories=list(dict.fromkeys(data["run"])))
  plot = (
      # Line types as well as colours: terms that nearly coincide (total and reconstruction when
      # beta is small) stay visible.
      gg.ggplot(data, gg.aes(x="step", y="value", color=colour, linetype=colour))
      + gg.geom_line(alpha=0.85)
      + gg.labs(x="step", y="nats per example", color="", linetype="", title=title or "")
      + gg.theme_bw()
      + gg.theme(figure_size=(7, 4))
  )
  if several_runs and colour == "term":
    plot += gg.facet_wrap("~run")
  if log_x:
    plot += gg.scale_x_log10()
  if log_y and (data["value"] > 0).all():
    plot += gg.scale_y_log10()
  return save(plot, path)


def image_grid(
    images, *, rows: Optional[int] = None, title: Optional[str] = None, path: Optional[str] = None,
    cmap: str = "gray", figsize: Optional[tuple[float, float]] = None,
):
  """Tiles images [N, H, W(, 1)] (or [rows, cols, H, W(, 1)]) into one matplotlib figure."""
  images = np.asarray(images, dtype=np.float32)
  if images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim == 4:
    rows, cols = images.shape[:2]
    images = images.reshape(rows * cols, *images.shape[2:])
  else:
    rows = rows or int(np.ceil(np.sqrt(len(images))))
    cols = int(np.ceil(len(images) / rows))
  height, width = images.shape[1:3]
  gap = 1  # a light line between tiles
  top = float(max(1.0, images.max()))
  canvas = np.full([rows * (height + gap) - gap, cols * (width + gap) - gap], 0.6 * top, np.float32)
  for i, image in enumerate(images):
    r, c = divmod(i, cols)
    canvas[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = image
  figure, axis = plt.subplots(figsize=figsize or (cols * 0.6 + 0.4, rows * 0.6 + 0.4))
  axis.imshow(canvas, cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
  axis.axis("off")
  if title:
    axis.set_title(title)
  save(figure, path)
  plt.close(figure)
  return figure


def reconstructions(model, x, *, num_examples: int = 8, path: Optional[str] = None, title: Optional[str] = None):
  """Inputs (top row) above the means of p(x|z) at the posterior means (bottom row)."""
  x = tf.convert_to_tensor(x[:num_examples], tf.float32)
  recon = model.reconstruct(x)
  return image_grid(
      tf.stack([x, recon]).numpy(), path=path, title=title or "inputs (top), reconstructions (bottom)",
      figsize=(num_examples * 0.9, 2.2),
  )


def reconstruction_distribution(model, x, *, grid: int = 5, seed=(0, 0), path: Optional[str] = None):
  """Seed 000's figure: means of p(x|z) for grid*grid posterior samples z ~ q(z|x) of one input."""
  x = tf.convert_to_tensor(x, tf.float32)[tf.newaxis]
  samples = model.reconstruct(x, grid * grid, seed=tf.constant(seed, tf.int32))[:, 0]
  return image_grid(
      tf.reshape(samples, [grid, grid, *samples.shape[1:]]).numpy(), path=path,
      title=f"{grid * grid} samples from q(z|x), decoded",
  )


def latent_traversal(
    model, *, dims: tuple[int, int] = (0, 1), num: int = 10, span: float = 1.0,
    latent_size: Optional[int] = None, path: Optional[str] = None,
):
  """Seed 001's traversal: decode a num x num grid over two latent dimensions, others at 0."""
  latent_size = latent_size or int(model.prior.event_shape[-1])
  values = np.linspace(-span, span, num, dtype=np.float32)
  xx, yy = np.meshgrid(values, values)
  z = np.zeros([num * num, latent_size], np.float32)
  z[:, dims[0]], z[:, dims[1]] = xx.ravel(), yy.ravel()
  images = model.likelihood(z).mean().numpy()
  return image_grid(
      images.reshape(num, num, *images.shape[1:]), path=path,
      title=f"traversal of z[{dims[0]}], z[{dims[1]}] over [-{span}, {span}]",
  )


def latent_manifold(model, *, num: int = 15, quantiles=(0.05, 0.95), path: Optional[str] = None):
  """Seed 003's manifold of a 2-D latent space: a grid of prior quantiles decoded (Gaussian inverse CDF)."""
  probs = np.linspace(quantiles[0], quantiles[1], num, dtype=np.float32)
  z_axis = tfd.Normal(0.0, 1.0).quantile(probs).numpy()
  zx, zy = np.meshgrid(z_axis, z_axis[::-1])
  z = np.stack([zx.ravel(), zy.ravel()], axis=-1)
  images = model.likelihood(z).mean().numpy()
  return image_grid(
      images.reshape(num, num, *images.shape[1:]), path=path,
      title=f"{num}x{num} latent manifold (Gaussian quantiles {quantiles[0]}..{quantiles[1]})",
      figsize=(8, 8),
  )


def latent_scatter(model, x, labels, *, batch_size: int = 1000, path: Optional[str] = None) -> gg.ggplot:
  """Seed 003's scatter of the posterior means (first two dimensions), coloured by label."""
  means = np.concatenate(
      [model.posterior(x[i : i + batch_size]).mean().numpy() for i in range(0, len(x), batch_size)]
  )
  data = pd.DataFrame({"z1": means[:, 0], "z2": means[:, 1], "label": pd.Categorical(np.asarray(labels))})
  plot = (
      gg.ggplot(data, gg.aes("z1", "z2", color="label"))
      + gg.geom_point(alpha=0.4, size=0.8)
      + gg.labs(x="E[z1 | x]", y="E[z2 | x]", color="label", title="posterior means by class")
      + gg.theme_bw()
      + gg.theme(figure_size=(6, 5))
      + gg.guides(color=gg.guide_legend(override_aes={"alpha": 1, "size": 3}))
  )
  return save(plot, path)
