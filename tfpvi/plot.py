"""Figures: loss curves and latent scatters (plotnine), image grids (matplotlib).

Every function returns the figure (a `plotnine.ggplot` or a `matplotlib.figure.Figure`) and, given
`path`, also saves it as a PNG. The module leaves matplotlib's backend alone: image grids are
drawn on a `matplotlib.figure.Figure` that is not registered with pyplot (no window opens, nothing
leaks, and saving needs no display). In a Jupyter or Colab notebook an image grid is shown once
when it is made, so it appears even when it is not the cell's last expression.

Latents: the latent plots take z as any `tfd.Distribution` sample: a vector (event shape [D]), a
tensor of higher event rank (e.g. [8, 10], flattened in row-major order, so dimension 13 is
z[1, 3]), or a nest (dict or list, from a `tfd.JointDistribution*`), whose components are
flattened and concatenated in `tf.nest` order unless `latent=` picks one by name or index.
"""

from __future__ import annotations

import io
import pathlib
import sys
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_probability as tfp

try:
  import matplotlib.figure
  import plotnine as gg
except ImportError as error:  # the plotting stack is an optional extra
  raise ImportError(
    f"tfpvi.plot needs plotnine and matplotlib ({error}); install them with "
    "pip install 'tfpvi[plot]' (make setup does)."
  ) from None

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
Latent = Optional[Union[str, int]]
# How training-history columns are shown as losses: reconstruction = -log p(x|z).
_LOSS_TERMS = {
  "loss": "total: training loss (-objective)",
  "log_likelihood": "reconstruction: -log p(x|z)",
  "kl": "KL(q || p)",
}
_IWAE_CAPTION = (
  "With K > 1 samples the terms are sample means, -mean log p(x|z) and mean (log q - log p); the\n"
  "K-sample bound is not their sum and is tighter, so the total can lie below the reconstruction term."
)


def save(figure, path: Optional[str], dpi: int = 120):
  """Saves a plotnine or matplotlib figure as PNG (if path is given) and returns it.

  Raises:
    FileNotFoundError: if the folder of `path` does not exist.
  """
  if path is None:
    return figure
  folder = pathlib.Path(path).parent
  if not folder.is_dir():
    raise FileNotFoundError(f"cannot save the figure to {path}: folder {folder} does not exist; create it first.")
  if isinstance(figure, gg.ggplot):
    figure.save(str(path), dpi=dpi, verbose=False)
  else:
    figure.savefig(str(path), dpi=dpi, bbox_inches="tight")
  return figure


def _notebook_shell():
  """The IPython shell when running in a Jupyter/Colab kernel, else None."""
  ipython = sys.modules.get("IPython")
  shell = ipython.get_ipython() if ipython is not None else None
  return shell if getattr(shell, "kernel", None) is not None else None


def _png(figure, dpi: int = 100) -> bytes:
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
  return buffer.getvalue()


def _finish(figure: matplotlib.figure.Figure, path: Optional[str]) -> matplotlib.figure.Figure:
  """Saves the figure; in a notebook shows it now, and again only when displayed in a later cell."""
  save(figure, path)
  shell = _notebook_shell()
  if shell is not None:
    from IPython import display  # noqa: PLC0415 (only in notebooks)

    image = display.Image(_png(figure))
    display.display(image)
    shown_in = shell.execution_count

    def _ipython_display_():
      if shell.execution_count != shown_in:  # the same cell has shown it already
        display.display(image)

    figure._ipython_display_ = _ipython_display_
  return figure


def _long_losses(
  histories: Histories, terms: Optional[Sequence[str]], term_labels: Optional[Mapping[str, str]] = None
) -> pd.DataFrame:
  if isinstance(histories, pd.DataFrame):
    histories = {"": histories}
  if not histories:
    raise ValueError("expected at least one history to plot, got an empty mapping.")
  frames = []
  for run, history in histories.items():
    if len(history) == 0:
      raise ValueError(f"history of run {run!r} is empty: expected at least one logged step, got none.")
    columns = [c for c in (terms or _LOSS_TERMS) if c in history.columns]
    if not columns:
      raise ValueError(
        f"history of run {run!r} has none of the columns {list(terms or _LOSS_TERMS)}; it has {list(history.columns)}."
      )
    frame = history[["step"] + columns].copy()
    if "log_likelihood" in frame:
      frame["log_likelihood"] = -frame["log_likelihood"]
    frame = frame.rename(columns={**_LOSS_TERMS, **(term_labels or {})}).melt(
      id_vars="step", var_name="term", value_name="value"
    )
    frame["run"] = run
    frames.append(frame.dropna())
  data = pd.concat(frames, ignore_index=True)
  if data.empty:
    raise ValueError(f"no finite values to plot: every value of {list(terms or _LOSS_TERMS)} is missing.")
  return data


def _bound_below_reconstruction(histories: Histories) -> bool:
  """True if some logged total lies below the reconstruction loss (a K > 1 bound's terms)."""
  histories = {"": histories} if isinstance(histories, pd.DataFrame) else histories
  for history in histories.values():
    if {"loss", "log_likelihood"} <= set(history.columns):
      if bool(np.any(history["loss"] < -history["log_likelihood"] - 1e-3)):
        return True
  return False


def loss_curves(
  histories: Histories,
  *,
  terms: Optional[Sequence[str]] = None,
  term_labels: Optional[Mapping[str, str]] = None,
  log_x: bool = True,
  log_y: bool = True,
  title: Optional[str] = None,
  caption: Optional[str] = None,
  path: Optional[str] = None,
) -> gg.ggplot:
  """Training curves: one panel per term (each with its own y scale), runs as colours.

  Each term has its own panel and y range, so a small term (the reconstruction loss beside a
  total that differs by beta * KL) stays visible. A legend appears only for several runs.

  Args:
    histories: one history DataFrame from `tfpvi.train.fit`, or {run name: history}.
    terms: history columns to show (default: loss, log_likelihood shown as the reconstruction
      loss -log p(x|z), and kl).
    term_labels: {column: panel title} replacing the default names (e.g. for a classifier, whose
      "log_likelihood" is -cross-entropy, not a reconstruction).
    log_x, log_y: logarithmic axes (log_y only if every value is positive).
    title: plot title.
    caption: a note under the plot; by default one explaining the terms of a K-sample (IWAE) bound
      when its total lies below the reconstruction term. "" for none.
    path: save as PNG here.

  Returns:
    The `plotnine.ggplot`.

  Raises:
    ValueError: if there is no history, a history is empty, or has none of the requested columns.
  """
  data = _long_losses(histories, terms, term_labels)
  several_runs = data["run"].nunique() > 1
  several_terms = data["term"].nunique() > 1
  data["run"] = pd.Categorical(data["run"], categories=list(dict.fromkeys(data["run"])))
  data["term"] = pd.Categorical(data["term"], categories=list(dict.fromkeys(data["term"])))
  aes = gg.aes(x="step", y="value", color="run", linetype="run") if several_runs else gg.aes(x="step", y="value")
  if caption is None:
    caption = _IWAE_CAPTION if several_terms and _bound_below_reconstruction(histories) else ""
  single_term = "" if several_terms else str(data["term"].iloc[0])
  plot = (
    gg.ggplot(data, aes)
    + gg.geom_line(alpha=0.85)
    + gg.labs(
      x="step",
      y="nats per example",
      color="",
      linetype="",
      # one term is named above its panel, as several are in their facet strips (not in a long y label)
      title=title or single_term,
      subtitle=single_term if title else None,
      caption=caption,
    )
    + gg.theme_bw()
    + gg.theme(figure_size=(4 * min(3, data["term"].nunique()) + 1.5, 4 + 0.3 * caption.count("\n")))
  )
  if several_terms:
    plot += gg.facet_wrap("~term", scales="free_y")
  if several_runs:  # plotnine's default linetype palette stops at 6 runs: cycle 4 styles over any number
    styles = ("solid", "dashed", "dotted", "dashdot")
    plot += gg.scale_linetype_manual(values=[styles[i % len(styles)] for i in range(data["run"].nunique())])
  else:
    plot += gg.theme(legend_position="none")
  if log_x:
    plot += gg.scale_x_log10()
  if log_y and (data["value"] > 0).all():
    plot += gg.scale_y_log10()
  return save(plot, path)


def _tile(images: np.ndarray, rows: int, cols: int, fill: float) -> np.ndarray:
  """Tiles [N, H, W] images into one canvas, one pixel of `fill` between tiles."""
  height, width = images.shape[1:3]
  gap = 1
  canvas = np.full([rows * (height + gap) - gap, cols * (width + gap) - gap], fill, np.float32)
  for i, image in enumerate(images):
    r, c = divmod(i, cols)
    canvas[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = image
  return canvas


def _as_grey(images) -> np.ndarray:
  images = np.asarray(images, dtype=np.float32)
  if images.shape[-1] == 1:
    images = images[..., 0]
  return images


def image_grid(
  images,
  *,
  rows: Optional[int] = None,
  title: Optional[str] = None,
  path: Optional[str] = None,
  cmap: str = "gray",
  figsize: Optional[tuple[float, float]] = None,
  column_labels: Optional[Sequence[str]] = None,
  row_labels: Optional[Sequence[str]] = None,
  xlabel: Optional[str] = None,
  ylabel: Optional[str] = None,
) -> matplotlib.figure.Figure:
  """Tiles images [N, H, W(, 1)] (or [rows, cols, H, W(, 1)]) into one matplotlib figure.

  Args:
    images: grey images with values in [0, 1] (or 0..255).
    rows: number of rows for [N, ...] input (default: about sqrt(N)).
    title: figure title.
    path: save as PNG here.
    cmap: matplotlib colour map.
    figsize: (width, height) in inches.
    column_labels, row_labels: tick labels at the centre of each column / row (e.g. latent values).
    xlabel, ylabel: axis labels, shown with the tick labels.

  Returns:
    The `matplotlib.figure.Figure` (shown inline at once in a notebook).
  """
  images = _as_grey(images)
  if images.ndim == 4:
    rows, cols = images.shape[:2]
    images = images.reshape(rows * cols, *images.shape[2:])
  elif images.ndim == 3:
    rows = rows or int(np.ceil(np.sqrt(len(images))))
    cols = int(np.ceil(len(images) / rows))
  else:
    raise ValueError(f"expected images [N, H, W(, 1)] or [rows, cols, H, W(, 1)], got shape {list(images.shape)}.")
  top = float(max(1.0, images.max()))
  canvas = _tile(images, rows, cols, 0.6 * top)
  labelled = column_labels is not None or row_labels is not None
  figure = matplotlib.figure.Figure(figsize=figsize or (cols * 0.6 + 0.4 + labelled, rows * 0.6 + 0.4 + labelled))
  axis = figure.subplots()
  axis.imshow(canvas, cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
  height, width = images.shape[1:3]
  if labelled:
    axis.set_xticks([c * (width + 1) + (width - 1) / 2 for c in range(cols)] if column_labels is not None else [])
    axis.set_yticks([r * (height + 1) + (height - 1) / 2 for r in range(rows)] if row_labels is not None else [])
    if column_labels is not None:
      axis.set_xticklabels(column_labels, fontsize=8, rotation=90 if cols > 8 else 0)
    if row_labels is not None:
      axis.set_yticklabels(row_labels, fontsize=8)
    axis.set_xlabel(xlabel or "")
    axis.set_ylabel(ylabel or "")
    for spine in axis.spines.values():
      spine.set_visible(False)
  else:
    axis.axis("off")
  if title:
    axis.set_title(title)
  return _finish(figure, path)


def reconstructions(model, x, *, num_examples: int = 8, path: Optional[str] = None, title: Optional[str] = None):
  """Inputs (top row) above the means of p(x|z) at the posterior means (bottom row)."""
  x = tf.convert_to_tensor(x[:num_examples], tf.float32)
  recon = model.reconstruct(x)
  return image_grid(
    tf.stack([x, recon]).numpy(),
    path=path,
    title=title or "inputs (top), reconstructions (bottom)",
    figsize=(num_examples * 0.9, 2.2),
  )


def reconstruction_distribution(model, x, *, grid: int = 5, seed=(0, 0), path: Optional[str] = None):
  """The input beside the means of p(x|z) for grid*grid posterior samples z ~ q(z|x) of it.

  Args:
    model: a `tfpvi.VAE`.
    x: one input [H, W(, C)].
    grid: the samples form a grid x grid block.
    seed: stateless seed of the posterior samples.
    path: save as PNG here.

  Returns:
    The `matplotlib.figure.Figure`: the input on the left, the decoded samples on the right.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  samples = model.reconstruct(x[tf.newaxis], grid * grid, seed=tf.constant(seed, tf.int32))[:, 0]
  decoded = _as_grey(samples.numpy())
  original = _as_grey(x.numpy())
  top = float(max(1.0, decoded.max(), original.max()))
  figure = matplotlib.figure.Figure(figsize=(grid * 0.6 + 2.6, grid * 0.6 + 0.8))
  left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, grid]})
  left.imshow(original, cmap="gray", vmin=0.0, vmax=top, interpolation="nearest")
  left.set_title("input x", fontsize=10)
  right.imshow(_tile(decoded, grid, grid, 0.6 * top), cmap="gray", vmin=0.0, vmax=top, interpolation="nearest")
  right.set_title(f"means of p(x|z) for {grid * grid} samples z ~ q(z|x)", fontsize=10)
  for axis in (left, right):
    axis.axis("off")
  return _finish(figure, path)


# -- latents of any structure ---------------------------------------------------------------------


def _leaf_paths(structure, prefix=()) -> list[tuple]:
  """Paths of a nest's leaves in `tf.nest.flatten` order (dict keys sorted)."""
  if isinstance(structure, Mapping):
    return [p for key in sorted(structure) for p in _leaf_paths(structure[key], prefix + (key,))]
  if isinstance(structure, (list, tuple)):
    return [p for i, value in enumerate(structure) for p in _leaf_paths(value, prefix + (i,))]
  return [prefix]


class _Layout:
  """How a flat latent vector [N, D] maps to z (a Tensor of any event rank, or a nest of them)."""

  def __init__(self, distribution: tfd.Distribution, latent: Latent, role: str):
    self.structure = distribution.event_shape
    self.dtypes = tf.nest.flatten(distribution.dtype)
    shapes = tf.nest.flatten(self.structure)
    for shape in shapes:
      if not shape.is_fully_defined():
        raise ValueError(f"the {role}'s event shape must be known to plot latents, got {self.structure}.")
    self.shapes = [shape.as_list() for shape in shapes]
    self.sizes = [int(np.prod(shape)) for shape in self.shapes]
    self.nested = tf.nest.is_nested(self.structure)
    self.names = ["/".join(map(str, path)) for path in _leaf_paths(self.structure)] if self.nested else ["z"]
    if latent is None:
      self.selected = list(range(len(shapes)))
    elif isinstance(latent, str) and latent in self.names:
      self.selected = [self.names.index(latent)]
    elif isinstance(latent, int) and not isinstance(latent, bool) and 0 <= latent < len(shapes):
      self.selected = [latent]
    else:
      raise ValueError(
        f"latent={latent!r} is not a component of the latent z; expected None (all components), "
        f"one of the names {self.names} or an index below {len(shapes)}."
      )
    self.size = sum(self.sizes[c] for c in self.selected)
    self.total = sum(self.sizes)

  def offset(self, component: int) -> int:
    return sum(self.sizes[:component])

  def check_dims(self, dims: Sequence[int], needed: int) -> list[int]:
    dims = [int(d) for d in dims]
    if len(dims) != needed or len(set(dims)) != needed or not all(0 <= d < self.size for d in dims):
      raise ValueError(
        f"dims must be {needed} different latent dimensions in [0, {self.size}), got {list(dims)} "
        f"(the latent has {self.size} dimensions{' in the chosen component' if self.nested else ''})."
      )
    return dims

  def global_dim(self, dim: int) -> int:
    """Index into the full flat vector of a dimension of the selected components."""
    for component in self.selected:
      if dim < self.sizes[component]:
        return self.offset(component) + dim
      dim -= self.sizes[component]
    raise IndexError(dim)

  def dim_name(self, dim: int) -> str:
    """E.g. 'z[3]', 'z[1, 3]' (event rank 2) or 'z2[3]' (component z2 of a nest)."""
    for component in self.selected:
      if dim < self.sizes[component]:
        index = np.unravel_index(dim, self.shapes[component]) if self.shapes[component] else ()
        inside = ", ".join(map(str, index))
        name = self.names[component]
        return f"{name}[{inside}]" if inside else name
      dim -= self.sizes[component]
    raise IndexError(dim)

  def flatten(self, z) -> np.ndarray:
    """z [N, *event] (or a nest of them) -> the selected components flattened, [N, size]."""
    parts = tf.nest.flatten(z)
    return np.concatenate(
      [np.reshape(np.asarray(parts[c], np.float32), [-1, self.sizes[c]]) for c in self.selected], axis=-1
    )

  def unflatten(self, flat: np.ndarray):
    """A full flat vector [N, total] -> z with the latent's structure, [N, *event] per component."""
    parts, start = [], 0
    for shape, size, dtype in zip(self.shapes, self.sizes, self.dtypes):
      parts.append(tf.constant(flat[:, start : start + size].reshape([-1, *shape]), dtype=dtype))
      start += size
    return tf.nest.pack_sequence_as(self.structure, parts) if self.nested else parts[0]


def _center(model, layout: _Layout) -> tuple[np.ndarray, str]:
  """The point [total] where latents not traversed are held: the prior mean if it has one, else 0."""
  try:
    mean = model.prior.mean()
    flat = np.concatenate([np.reshape(np.asarray(m, np.float32), [-1]) for m in tf.nest.flatten(mean)])
  except (NotImplementedError, TypeError, ValueError, AttributeError):
    return np.zeros([layout.total], np.float32), "0"
  if flat.shape != (layout.total,) or not np.all(np.isfinite(flat)):
    return np.zeros([layout.total], np.float32), "0"
  return flat, "0 (the prior mean)" if np.all(flat == 0) else "the prior mean"


def _decode_grid(model, layout: _Layout, dims: Sequence[int], x_values, y_values) -> tuple[np.ndarray, str]:
  """Decodes z on a grid: dims[0] along columns (x_values), dims[1] along rows (y_values, top first)."""
  center, held = _center(model, layout)
  flat = np.tile(center, [len(y_values) * len(x_values), 1])
  xx, yy = np.meshgrid(x_values, y_values)
  flat[:, layout.global_dim(dims[0])] = xx.ravel()
  flat[:, layout.global_dim(dims[1])] = yy.ravel()
  images = np.asarray(model.likelihood(layout.unflatten(flat)).mean())
  return images.reshape(len(y_values), len(x_values), *images.shape[1:]), held


def latent_traversal(
  model,
  *,
  dims: tuple[int, int] = (0, 1),
  num: int = 10,
  span: float = 1.0,
  latent: Latent = None,
  latent_size: Optional[int] = None,
  path: Optional[str] = None,
):
  """Decodes a num x num grid over two latent dimensions, the others held at the prior mean.

  The column moves z[dims[0]] from -span to span (left to right), the row moves z[dims[1]] from
  span to -span (top to bottom); both are labelled on the axes.

  Args:
    model: a `tfpvi.VAE` (any model with `prior` and `likelihood(z)`).
    dims: the two dimensions moved, indices into the flattened latent (or into the `latent`
      component of a nest).
    num: grid points per axis.
    span: the grid covers [-span, span] in z units.
    latent: for a nested z, the component (name or index) to traverse; None: all, concatenated.
    latent_size: unused; kept for compatibility (the size comes from the prior).
    path: save as PNG here.

  Returns:
    The `matplotlib.figure.Figure`.

  Raises:
    ValueError: for an unknown `latent`, or `dims` outside the latent.
  """
  del latent_size
  layout = _Layout(model.prior, latent, "prior")
  dims = layout.check_dims(dims, 2)
  values = np.linspace(-span, span, num, dtype=np.float32)
  images, held = _decode_grid(model, layout, dims, values, values[::-1])
  names = [layout.dim_name(d) for d in dims]
  others = f"; other latents held at {held}" if layout.total > 2 else ""
  return image_grid(
    images,
    path=path,
    title=f"decoded means of p(x|z) as {names[0]} and {names[1]} move{others}",
    column_labels=[f"{v:.2g}" for v in values],
    row_labels=[f"{v:.2g}" for v in values[::-1]],
    xlabel=names[0],
    ylabel=names[1],
  )


def latent_manifold(
  model,
  *,
  num: int = 15,
  quantiles=(0.05, 0.95),
  dims: tuple[int, int] = (0, 1),
  latent: Latent = None,
  path: Optional[str] = None,
):
  """The manifold of a 2-D latent space: a grid of standard-normal quantiles decoded.

  Axis ticks are in z units, so the figure lines up with `latent_scatter` of the same model.

  Args:
    model: a `tfpvi.VAE`.
    num: grid points per axis.
    quantiles: the lowest and highest N(0, 1) quantile on the grid.
    dims: the two latent dimensions shown (others held at the prior mean).
    latent: for a nested z, the component (name or index); None: all, concatenated.
    path: save as PNG here.

  Returns:
    The `matplotlib.figure.Figure`.
  """
  layout = _Layout(model.prior, latent, "prior")
  dims = layout.check_dims(dims, 2)
  probs = np.linspace(quantiles[0], quantiles[1], num, dtype=np.float32)
  z_axis = tfd.Normal(0.0, 1.0).quantile(probs).numpy()
  images, held = _decode_grid(model, layout, dims, z_axis, z_axis[::-1])
  names = [layout.dim_name(d) for d in dims]
  others = f"; other latents at {held}" if layout.total > 2 else ""
  return image_grid(
    images,
    path=path,
    title=f"decoded means of p(x|z) at N(0, 1) quantiles {quantiles[0]:g}..{quantiles[1]:g}{others}",
    column_labels=[f"{v:.2f}" for v in z_axis],
    row_labels=[f"{v:.2f}" for v in z_axis[::-1]],
    xlabel=names[0],
    ylabel=names[1],
    figsize=(9, 9),
  )


def _posterior_means(model, x, layout_latent: Latent, batch_size: int, seed) -> tuple[np.ndarray, _Layout, str]:
  """Posterior means of the chosen latents, [N, size]; Monte Carlo means where q has no mean()."""
  layout, chunks, how = None, [], "mean"
  for i in range(0, len(x), batch_size):
    q = model.posterior(tf.convert_to_tensor(x[i : i + batch_size], tf.float32))
    layout = layout or _Layout(q, layout_latent, "posterior q(z|x)")
    try:
      mean = q.mean()
    except (NotImplementedError, ValueError):  # e.g. a flow, or a joint with dependent parts
      how = "Monte Carlo mean (100 samples)"
      draws = q.sample(100, seed=tf.constant([int(seed), i], tf.int32))
      mean = tf.nest.map_structure(lambda d: tf.reduce_mean(d, axis=0), draws)
    chunks.append(layout.flatten(mean))
  return np.concatenate(chunks), layout, how


def latent_scatter(
  model,
  x,
  labels,
  *,
  dims: tuple[int, int] = (0, 1),
  latent: Latent = None,
  batch_size: int = 1000,
  seed: int = 0,
  path: Optional[str] = None,
) -> gg.ggplot:
  """The posterior means E[z | x] of two latent dimensions, one point per input, coloured by label.

  Args:
    model: a `tfpvi.VAE`.
    x: inputs [N, ...].
    labels: [N] class labels.
    dims: the two latent dimensions shown (indices into the flattened latent or `latent` component).
    latent: for a nested z, the component (name or index); None: all, concatenated.
    batch_size: inputs per call to the encoder.
    seed: seed of the Monte Carlo means (used only where q has no closed-form mean).
    path: save as PNG here.

  Returns:
    The `plotnine.ggplot`.

  Raises:
    ValueError: for an unknown `latent`, `dims` outside the latent, or labels of another length.
  """
  labels = np.asarray(labels)
  if len(labels) != len(x):
    raise ValueError(f"expected one label per input, got {len(labels)} labels for {len(x)} inputs.")
  means, layout, how = _posterior_means(model, x, latent, batch_size, seed)
  dims = layout.check_dims(dims, 2)
  names = [layout.dim_name(d) for d in dims]
  data = pd.DataFrame({"z1": means[:, dims[0]], "z2": means[:, dims[1]], "label": pd.Categorical(labels)})
  plot = (
    gg.ggplot(data, gg.aes("z1", "z2", color="label"))
    + gg.geom_point(alpha=0.4, size=0.8)
    + gg.labs(
      x=f"posterior {how} of {names[0]}",
      y=f"posterior {how} of {names[1]}",
      color="label",
      title="posterior means by class",
    )
    + gg.theme_bw()
    + gg.theme(figure_size=(6, 5))
    + gg.guides(color=gg.guide_legend(override_aes={"alpha": 1, "size": 3}))
  )
  return save(plot, path)
