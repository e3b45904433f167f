"""Estimates of log p(x) and their units.

`log_marginal_likelihood` is the importance-sampled estimate with q(z|x) as proposal (the importance-sampling blog post,
eq. 10; Burda et al. 2016 use K = 5000):

```none
log p(x) ~= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)
```

Samples are drawn and reduced chunk by chunk inside one `tf.while_loop` with a running logsumexp,
so memory grows with `chunk_size`, never with `num_samples`, and the loop compiles under XLA.
All values are nats per example summed over the data dimensions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import sys
import time
import weakref
from typing import NamedTuple, Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks, xla
from tfpvi import precision as precision_lib
from tfpvi.checks import check_examples
from tfpvi.evaluation import ais
from tfpvi.evaluation.ais import AIS, ais_log_marginal_likelihood, bdmc
from tfpvi.evaluation.jackknife import jackknife
from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = [
  "AIS",
  "ImportanceSamplingStats",
  "ais_log_marginal_likelihood",
  "bdmc",
  "check_examples",
  "comparison",
  "bits_per_dim",
  "evaluate_dataset",
  "importance_sampling_stats",
  "jackknife",
  "log_marginal_likelihood",
  "pareto_khat",
  "pareto_tail_size",
  "reading",
  "summarize",
]

_PROPOSALS = ("posterior", "prior")


class ImportanceSamplingStats(NamedTuple):
  """Running statistics of K log importance weights per example, each over the batch [B].

  Attributes:
    log_sum_weights: log sum_k w_k, [B].
    log_sum_squared_weights: log sum_k w_k^2, [B].
    largest_log_weights: the `tail_size` largest log w_k in decreasing order, [B, tail_size]
      (tail_size may be 0).
    num_samples: K, a Python int.
  """

  log_sum_weights: tf.Tensor
  log_sum_squared_weights: tf.Tensor
  largest_log_weights: tf.Tensor
  num_samples: int

  @property
  def log_mean_weight(self) -> tf.Tensor:
    """The importance-sampling estimate log (1/K) sum_k w_k, [B]."""
    return self.log_sum_weights - math.log(self.num_samples)

  @property
  def effective_sample_size(self) -> tf.Tensor:
    """Kish's ESS (sum w)^2 / sum w^2, in [1, K], [B]."""
    return tf.exp(2.0 * self.log_sum_weights - self.log_sum_squared_weights)

  @property
  def standard_error(self) -> tf.Tensor:
    """Delta-method standard error of the log-mean-weight estimate, sqrt(1/ESS - 1/K), [B]."""
    return tf.sqrt(tf.nn.relu(1.0 / self.effective_sample_size - 1.0 / self.num_samples))


def pareto_tail_size(num_samples: int) -> int:
  """M = min(K / 5, 3 sqrt(K)), the tail used by Pareto-smoothed importance sampling."""
  return int(min(num_samples // 5, math.ceil(3.0 * math.sqrt(num_samples))))


def _proposal(model, x, proposal: str) -> tfd.Distribution:
  if proposal == "posterior":
    return model.posterior(x)
  if proposal == "prior":
    # The prior as a proposal with batch shape [B], so samples are [S, B, latent] as for q(z|x).
    batch = tf.shape(x)[0]
    prior = model.prior
    if isinstance(prior, tfd.JointDistribution):  # BatchBroadcast takes no joint: sample [S, B] directly

      class _BatchedJointPrior:
        def sample(self, n, seed=None):
          return prior.sample(tf.stack([n, batch]), seed=seed)

        def log_prob(self, z):
          return prior.log_prob(z)

      return _BatchedJointPrior()
    return tfd.BatchBroadcast(prior, to_shape=tf.reshape(batch, [1]))
  raise ValueError(f"proposal must be one of {_PROPOSALS}, got {proposal!r}.")


_LONG_RUN_CHUNKS = 2000  # from this many chunks on, the time it will take is said first
_LONG_RUN_SECONDS = 60.0


def _say_how_long(one_chunk, num_samples: int, num_chunks: int, chunk_size: int) -> None:
  """Times one chunk (eagerly: an upper bound) and says on stderr how long all of them will take, if long."""
  started = time.perf_counter()
  one_chunk()
  seconds = (time.perf_counter() - started) * num_chunks
  if seconds >= _LONG_RUN_SECONDS:
    print(
      f"tfpvi: {num_samples:,} samples per example take {num_chunks:,} chunks of {chunk_size}: about "
      f"{_duration(seconds)} at the speed of one chunk here (compiled runs are faster); Ctrl-C stops it, a "
      "smaller num_samples or a larger chunk_size shortens it.",
      file=sys.stderr,
      flush=True,
    )


def _duration(seconds: float) -> str:
  for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
    if seconds >= size:
      return f"{seconds / size:.1f} {unit}"
  return f"{seconds:.0f} seconds"


def importance_sampling_stats(
  model,
  x: tf.Tensor,
  num_samples: int = 5000,
  *,
  chunk_size: int = 500,
  tail_size: int = 0,
  proposal: str = "posterior",
  seed: Seed = None,
  precision: str = "float32",
) -> ImportanceSamplingStats:
  """Accumulates importance-sampling statistics of log p(x) chunk by chunk.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1, total samples per example.
    chunk_size: Python int >= 1, samples drawn at once; memory is O(chunk_size * B * dims).
    tail_size: Python int >= 0, how many of the largest log weights to keep (for Pareto k-hat).
    proposal: "posterior" (q(z|x), the importance-sampling blog post's eq. 10) or "prior" (p(z), the naive estimate of
      the importance-sampling blog post's eq. 7, whose variance explodes with the latent dimension).
    seed: None, a Python int or a stateless seed; chunk i uses a seed folded from it.
    precision: "float32", or "mixed_bfloat16": the networks compute in bfloat16, the log weights
      and their sums stay float32 (`tfpvi.precision`).

  Returns:
    ImportanceSamplingStats over the batch.
  """
  with precision_lib.policy(precision_lib.check(precision)):
    return _importance_sampling_stats(model, x, num_samples, chunk_size, tail_size, proposal, seed)


def _importance_sampling_stats(model, x, num_samples, chunk_size, tail_size, proposal, seed) -> ImportanceSamplingStats:
  num_samples = checks.check_num_samples(num_samples)
  chunk_size = min(checks.check_num_samples(chunk_size, "chunk_size"), num_samples)
  if tail_size < 0 or tail_size > num_samples:
    raise ValueError(f"tail_size must be in [0, num_samples={num_samples}], got {tail_size}.")
  x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
  check_examples(model, x)
  # The proposal's own density is log q in the weights (q = p(z) for the prior proposal).
  proposal_distribution = _proposal(model, x, proposal)
  seed = tfp.random.sanitize_seed(seed)

  def chunk_log_weights(index, size):
    z = proposal_distribution.sample(size, seed=tf.random.experimental.stateless_fold_in(seed, index))
    return model.log_weight_terms(x, z, proposal_distribution.log_prob(z)).log_weights  # [size, B]

  def update(state, log_w):
    log_sum, log_sum_sq, tail = state
    log_sum = tf.reduce_logsumexp(tf.stack([log_sum, tf.reduce_logsumexp(log_w, 0)]), 0)
    log_sum_sq = tf.reduce_logsumexp(tf.stack([log_sum_sq, tf.reduce_logsumexp(2.0 * log_w, 0)]), 0)
    if tail_size:
      candidates = tf.concat([tail, tf.transpose(log_w)], axis=1)
      tail = tf.math.top_k(candidates, k=tail_size, sorted=True).values
    return log_sum, log_sum_sq, tail

  batch = tf.shape(x)[0]
  neg_inf = tf.fill([batch], tf.constant(-math.inf, tf.float32))
  state = (neg_inf, neg_inf, tf.fill([batch, tail_size], tf.constant(-math.inf, tf.float32)))
  num_full, remainder = divmod(num_samples, chunk_size)
  if num_full >= _LONG_RUN_CHUNKS and tf.executing_eagerly():
    _say_how_long(lambda: chunk_log_weights(tf.constant(0), chunk_size), num_samples, num_full, chunk_size)

  def body(index, *state):
    return (index + 1, *update(state, chunk_log_weights(index, chunk_size)))

  _, *state = tf.while_loop(
    lambda index, *_: index < num_full,
    body,
    (tf.constant(0), *state),
    maximum_iterations=num_full,
  )
  if remainder:
    state = update(state, chunk_log_weights(num_full, remainder))
  log_sum, log_sum_sq, tail = state
  return ImportanceSamplingStats(log_sum, log_sum_sq, tail, num_samples)


def log_marginal_likelihood(
  model,
  x: tf.Tensor,
  num_samples: int = 5000,
  *,
  chunk_size: int = 500,
  proposal: str = "posterior",
  seed: Seed = None,
  precision: str = "float32",
) -> tf.Tensor:
  """Importance-sampled log p(x) per example, with q(z|x) as the proposal.

  Args:
    model: a `tfpvi.VAE`.
    x: float Tensor [B, ...].
    num_samples: Python int K >= 1 (5000 in Burda et al. 2016).
    chunk_size: samples drawn at once; bounds memory.
    proposal: "posterior" (default) or "prior" (naive Monte Carlo, for comparison).
    seed: None, a Python int or a stateless seed.
    precision: "float32", or "mixed_bfloat16" (the networks in bfloat16, `tfpvi.precision`); on a
      trained Burda et al. model the two agree to a few hundredths of a nat per example.

  Returns:
    float Tensor [B], nats per example. Its expectation is a lower bound on log p(x) that
    tightens as K grows (it is the IWAE_K bound computed in chunks); with the exact posterior as
    proposal it is exact for any K.

  Examples:
    On a linear-Gaussian model, whose log p(x) is known exactly, with q the prior (a poor proposal).

    >>> import tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> model = truth.as_vae(lambda x: tfd.MultivariateNormalDiag(tf.zeros([tf.shape(x)[0], 2])))
    >>> estimate = log_marginal_likelihood(model, x, num_samples=20000, chunk_size=5000, seed=[0, 7])
    >>> bool(tf.reduce_max(tf.abs(estimate - truth.log_marginal(x))) < 0.05)
    True
  """
  return importance_sampling_stats(
    model, x, num_samples, chunk_size=chunk_size, proposal=proposal, seed=seed, precision=precision
  ).log_mean_weight


def bits_per_dim(log_px, num_dims: int, *, dequantized_levels: Optional[int] = None):
  """Converts log p(x) in nats per example to bits per dimension: -log2 p(x) / num_dims.

  Meaningful for discrete likelihoods (Bernoulli, discretized logistic): for 8-bit data, a value
  of 8 is no better than a uniform distribution over the 256 levels. For a density (e.g. a
  `tfpvi.decoders.NormalMLP`) of data dequantized as x = (x_int + u) / L, u ~ U[0, 1) (see
  `tfpvi.data.dequantize`), give `dequantized_levels=L`: the density of x on [0, 1]^D is then
  converted to that of x_int + u on [0, L]^D, whose negative log2 per dimension bounds the bits/dim
  of the discrete data from above (Theis et al. 2016).

  Args:
    log_px: log p(x) in nats per example (Tensor, array or float).
    num_dims: number of data dimensions (784 for MNIST, 3072 for CIFAR-10).
    dequantized_levels: None for a discrete likelihood; L for a density of data dequantized and
      scaled to [0, 1] from L levels (256 for 8-bit images).

  Returns:
    -log_px / (num_dims * ln 2) (+ log2 L), same shape as log_px.

  Examples:
    >>> float(bits_per_dim(0.0, 784, dequantized_levels=256))  # the uniform density on [0, 1]
    8.0
  """
  if num_dims < 1:
    raise ValueError(f"num_dims must be >= 1, got {num_dims}.")
  bits = -tf.convert_to_tensor(log_px, dtype_hint=tf.float32) / (num_dims * math.log(2.0))
  if dequantized_levels is None:
    return bits
  if isinstance(dequantized_levels, bool) or not isinstance(dequantized_levels, int) or dequantized_levels < 2:
    raise ValueError(f"dequantized_levels must be an int >= 2 (256 for 8-bit data), got {dequantized_levels!r}.")
  return bits + math.log2(dequantized_levels)


# ----------------------------------------------------------------------------------------------
# Diagnostics: Pareto k-hat of the largest weights, and a summary over a data set.


def pareto_khat(largest_log_weights: tf.Tensor) -> tf.Tensor:
  """Pareto k-hat of the importance-weight tail (Vehtari et al., Pareto smoothed IS).

  Fits a generalized Pareto distribution to the exceedances of the M largest weights over the
  (M+1)-th largest, with the Zhang & Stephens (2009) estimator and the weakly informative prior of
  Vehtari et al. Reading: k < 0.5 the variance of the weights is finite and the estimate is
  reliable; 0.5 <= k < 0.7 usable with care; k >= 0.7 the estimate is not to be trusted.

  Args:
    largest_log_weights: [B, M + 1] log weights in decreasing order (`importance_sampling_stats`
      with `tail_size = pareto_tail_size(K) + 1`), M >= 5.

  Returns:
    float Tensor [B].

  References:
    Zhang & Stephens. A new and efficient estimation method for the generalized Pareto
      distribution. Technometrics 2009.
    Vehtari, Simpson, Gelman, Yao, Gabry. Pareto smoothed importance sampling. JMLR 2024.
  """
  largest_log_weights = tf.convert_to_tensor(largest_log_weights, tf.float32)
  tail_size = int(largest_log_weights.shape[-1]) - 1
  if tail_size < 5:
    raise ValueError(f"pareto_khat needs at least 6 largest log weights, got {tail_size + 1}.")
  top = largest_log_weights[:, :1]
  # Exceedances over the threshold, ascending, scaled by the largest weight (k is scale-free).
  x = tf.reverse(tf.exp(largest_log_weights[:, :-1] - top) - tf.exp(largest_log_weights[:, -1:] - top), [1])
  x = tf.maximum(x, 1e-30)
  n = float(tail_size)
  m = 30 + int(math.sqrt(tail_size))
  quartile = x[:, int(tail_size / 4 + 0.5) - 1 : int(tail_size / 4 + 0.5)]
  grid = 1.0 - tf.sqrt(m / (tf.range(1, m + 1, dtype=tf.float32) - 0.5))  # [m]
  b = 1.0 / x[:, -1:] + grid / (3.0 * quartile)  # [B, m]
  k = tf.reduce_mean(tf.math.log1p(-b[:, :, None] * x[:, None, :]), axis=-1)  # [B, m]
  log_likelihood = n * (tf.math.log(-b / k) - k - 1.0)
  weights = tf.nn.softmax(log_likelihood, axis=-1)
  b_hat = tf.reduce_sum(weights * b, axis=-1, keepdims=True)
  # With theta = b_hat, the GPD shape is xi = mean(log(1 - theta x)) (Zhang & Stephens's k is -xi).
  k_hat = tf.reduce_mean(tf.math.log1p(-b_hat * x), axis=-1)
  prior_strength = 10.0
  return k_hat * n / (n + prior_strength) + prior_strength * 0.5 / (n + prior_strength)


def summarize(log_px, standard_error=None, effective_sample_size=None, khat=None, *, num_dims=None) -> dict:
  """Summary over a data set of per-example estimates: means, standard errors and diagnostics.

  Args:
    log_px: [N] per-example log p(x) estimates, nats.
    standard_error: [N] Monte Carlo standard errors of each estimate (optional).
    effective_sample_size: [N] ESS of each estimate's weights (optional).
    khat: [N] Pareto k-hat of each estimate's weights (optional).
    num_dims: data dimensions, to report bits/dim.

  Returns:
    dict with log_px (mean), log_px_standard_error (over examples: std / sqrt(N)),
    monte_carlo_standard_error (of the mean, from the per-example errors), and ESS / k-hat
    summaries (mean, min, fraction of examples with k-hat >= 0.7).
  """
  log_px = np.asarray(log_px, np.float64)
  n = len(log_px)
  summary = {
    "num_examples": n,
    "log_px": float(log_px.mean()),
    "log_px_standard_error": float(log_px.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
  }
  if num_dims:
    summary["bits_per_dim"] = float(-log_px.mean() / (num_dims * math.log(2.0)))
  if standard_error is not None:
    summary["monte_carlo_standard_error"] = float(np.sqrt(np.sum(np.square(standard_error))) / n)
  if effective_sample_size is not None:
    ess = np.asarray(effective_sample_size)
    summary.update(ess_mean=float(ess.mean()), ess_min=float(ess.min()))
  if khat is not None:
    khat = np.asarray(khat)
    summary.update(
      khat_mean=float(khat.mean()),
      khat_max=float(khat.max()),
      khat_fraction_above_0_7=float(np.mean(khat >= 0.7)),
    )
  return summary


def evaluate_dataset(
  model,
  images,
  num_samples: int = 5000,
  *,
  estimator: Union[str, "ais.AIS"] = "importance",
  batch_size: int = 100,
  chunk_size: int = 500,
  seed: int = 0,
  jit_compile: "xla.JitCompile" = "auto",
  precision: str = "float32",
  num_dims: Optional[int] = None,
  progress: Optional[bool] = None,
  progress_file: Optional[str] = None,
) -> tuple[dict, dict]:
  """log p(x) with diagnostics over a whole data set, batch by batch, resumable.

  Args:
    model: a `tfpvi.VAE`.
    images: array [N, ...] of observations, or a `tf.data.Dataset` of them (batched or not; of
      (images, labels) pairs, or of dicts with an "image" entry, the images are used), read once.
    num_samples: K importance samples per example; memory is bounded by chunk_size * batch_size.
      Not used by AIS, whose cost is set by its own `num_chains` and `num_steps`.
    estimator: "importance" (importance sampling with q(z|x), Burda et al. 2016), or a
      `tfpvi.evaluation.ais.AIS(...)` for annealed importance sampling with HMC (Wu et al. 2017).
    batch_size: examples per compiled call (the last batch may be smaller).
    chunk_size: importance samples drawn at once.
    seed: Python int; batch i uses the stateless seed [seed, i], so a resumed run draws what an
      uninterrupted one draws (its numbers agree up to the rare 1-ulp differences of TensorFlow's
      multi-threaded CPU kernels).
    jit_compile: True, False or "auto" (XLA when a GPU is visible).
    precision: "float32", or "mixed_bfloat16" for importance sampling: the networks compute in
      bfloat16, the log weights and their sums stay float32 (`tfpvi.precision`).
    num_dims: data dimensions for bits/dim (default: the product of the example shape).
    progress: show a progress bar over examples (tqdm); None shows it when stderr is a terminal.
    progress_file: a path; each finished batch is appended to it (one JSON line, flushed and
      synced) and a run with the same settings, data and model weights resumes from it, so a killed
      evaluation loses at most one batch. A file written by another evaluation is refused.

  Returns:
    (summary, per_example): `summarize(...)` of the estimates (with "estimator" and its settings),
    and a dict of [N] numpy arrays log_px, standard_error, effective_sample_size, khat (NaN for
    AIS, whose chains are not an importance sample of one proposal). `reading(summary)` says in
    one line whether the estimates can be trusted.

  Raises:
    ValueError: for an empty data set, a batch_size, chunk_size or num_samples below 1, images of
      the wrong shape, or a progress_file of another evaluation.
    tf.errors.InvalidArgumentError: for images with NaN or outside the likelihood's support (each
      batch is checked eagerly before its compiled call, under XLA too).

  Examples:
    >>> import numpy as np, tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(6, seed=[0, 1]).numpy()
    >>> summary, per_example = evaluate_dataset(truth.as_vae(), x, 100, batch_size=3)
    >>> bool(np.allclose(per_example["log_px"], truth.log_marginal(x), atol=1e-4))
    True
  """
  num_samples = checks.check_num_samples(num_samples)
  batch_size = checks.check_num_samples(batch_size, "batch_size")
  checks.check_num_samples(chunk_size, "chunk_size")
  images = _as_array(images)
  num_examples = len(images)
  if num_examples == 0:
    raise ValueError("evaluate_dataset: expected at least one example in images, got 0.")
  jit_compile = xla.resolve(jit_compile)
  precision_lib.check(precision)
  if isinstance(estimator, ais.AIS) and precision != "float32":
    raise ValueError(
      f"evaluate_dataset: precision={precision!r} applies to importance sampling; AIS runs in float32 "
      "(its HMC steps follow the gradient of log p(x, z)). Leave precision out for AIS."
    )
  if isinstance(estimator, ais.AIS):
    tail = 0
    annealer = ais._Annealer(model, estimator, jit_compile)
    betas = estimator.betas()

    def batch_stats(x, batch_seed):
      result = annealer.run(x, betas=betas, seed=batch_seed, progress=False)
      return result.log_px, result.standard_error, result.effective_sample_size, tf.fill(tf.shape(x)[:1], np.nan)

    settings = {"estimator": "ais", **estimator.describe()}
  elif estimator == "importance":
    tail = pareto_tail_size(num_samples) + 1 if num_samples >= 30 else 0
    batch_stats = _compiled_batch_stats(model, num_samples, chunk_size, tail, jit_compile, precision)
    settings = {"estimator": "importance", "num_samples": num_samples, "chunk_size": chunk_size}
    if precision != "float32":  # (recorded only when mixed: progress files of float32 runs stay valid)
      settings["precision"] = precision
  else:
    raise ValueError(f"estimator must be 'importance' or a tfpvi.evaluation.ais.AIS(...), got {estimator!r}.")
  settings.update(batch_size=batch_size, seed=seed, jit_compile=jit_compile, num_examples=num_examples)
  names = ("log_px", "standard_error", "effective_sample_size", "khat")
  done = {}
  if progress_file is not None:
    settings["fingerprint"] = _fingerprint(model, images)
    done = _PartialResults.open(progress_file, settings).batches
  already = sum(min(batch_size, num_examples - i) for i in done)
  bar = _progress_bar(progress, num_examples, settings, initial=already)
  outputs = []
  for i in range(0, num_examples, batch_size):
    if i in done:
      outputs.append(done[i])
      continue
    x = tf.constant(images[i : i + batch_size], tf.float32)
    check_examples(model, x)  # eagerly, before the compiled call, where XLA would drop the checks
    outputs.append([np.asarray(o) for o in batch_stats(x, tf.constant([seed, i]))])
    if progress_file is not None:
      _PartialResults.append(progress_file, i, dict(zip(names, outputs[-1])))
    if bar is not None:
      bar.update(min(batch_size, num_examples - i))
  if bar is not None:
    bar.close()
  per_example = {name: np.concatenate([np.asarray(o[j], np.float32) for o in outputs]) for j, name in enumerate(names)}
  num_dims = num_dims or int(np.prod(np.shape(images)[1:]))
  summary = summarize(
    per_example["log_px"],
    per_example["standard_error"],
    per_example["effective_sample_size"],
    per_example["khat"] if tail else None,
    num_dims=num_dims,
  )
  if settings["estimator"] == "importance":
    summary["num_samples"] = num_samples
  else:
    summary.update(estimator="ais", num_chains=estimator.num_chains, num_steps=estimator.num_steps)
  return summary, per_example


def _as_array(images) -> np.ndarray:
  """The observations as one array [N, ...]: arrays as they are, a tf.data.Dataset read to its end."""
  if not isinstance(images, tf.data.Dataset):
    if isinstance(images, (list, tuple)) and images and not np.isscalar(images[0]):
      raise TypeError(
        f"images must be an array [N, ...] or a tf.data.Dataset, got a {type(images).__name__} of "
        f"{len(images)} items; stack them first (np.stack(images))."
      )
    return images
  spec = images.element_spec

  def first(element):
    if isinstance(element, (tuple, list)):
      return element[0]
    if isinstance(element, dict):
      if "image" not in element:
        raise TypeError(f"a Dataset of dicts needs an 'image' entry to evaluate, got keys {sorted(element)}.")
      return element["image"]
    return element

  if not isinstance(first(spec), tf.TensorSpec):
    raise TypeError(f"images: expected a Dataset of image Tensors, got elements {spec}.")
  chunks = [np.asarray(first(element)) for element in images.as_numpy_iterator()]
  if not chunks:
    return np.zeros([0], np.float32)
  return np.concatenate(chunks) if _is_batched(first(spec)) else np.stack(chunks)


def _is_batched(spec: tf.TensorSpec) -> bool:
  """Elements of `Dataset.batch(n)` have an unknown leading dimension; single images have none unknown."""
  return spec.shape.rank is not None and spec.shape.rank >= 1 and spec.shape[0] is None


def _fingerprint(model, images) -> str:
  """A digest of the model's variables and the images: what a resumed evaluation must share."""
  digest = hashlib.sha256()
  try:
    variables = list(model.variables)
  except (AttributeError, ValueError):  # no variables (Sonnet raises for an empty module)
    variables = []
  for variable in sorted(variables, key=lambda v: v.name):
    digest.update(variable.name.encode())
    digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
  digest.update(np.ascontiguousarray(np.asarray(images, np.float32)).tobytes())
  return digest.hexdigest()[:16]


class _PartialResults:
  """The per-batch results of an unfinished evaluation: a JSON-lines file, one settings line first.

  Each batch is one line, appended, flushed and synced. A line cut by a kill can only be the last
  one; it is dropped (that batch is computed again). Anything else unreadable is refused.
  """

  @staticmethod
  def open(path, settings: dict) -> "_PartialResults":
    path = pathlib.Path(path)
    results = _PartialResults()
    results.batches = {}
    header = json.loads(json.dumps(settings))
    if not path.exists() or path.stat().st_size == 0:
      path.parent.mkdir(parents=True, exist_ok=True)
      with open(path, "w") as f:
        f.write(json.dumps({"settings": header}) + "\n")
        f.flush()
        os.fsync(f.fileno())
      return results
    text = path.read_text()
    lines = text.split("\n")
    complete, torn = lines[:-1], lines[-1]
    if torn:  # a line cut by a kill: drop it, the batch is computed again
      with open(path, "r+") as f:
        f.truncate(len(text) - len(torn))
    try:
      recorded = json.loads(complete[0])["settings"] if complete else None
    except (ValueError, KeyError, TypeError):
      recorded = None
    if recorded is None:
      raise ValueError(
        f"{path} is not a tfpvi evaluation progress file (its first line is not its settings); "
        "delete it to start the evaluation over, or pass another progress_file."
      )
    if recorded != header:
      changed = sorted(k for k in set(recorded) | set(header) if recorded.get(k) != header.get(k))
      raise ValueError(
        f"{path} holds the progress of another evaluation (it differs in {', '.join(changed)}: "
        f"{', '.join(f'{k}={recorded.get(k)!r}' for k in changed)}); pass the same settings to resume it, "
        "or delete the file (or pass another progress_file) to start over."
      )
    for number, line in enumerate(complete[1:], start=2):
      try:
        row = json.loads(line)
        results.batches[int(row["start"])] = [
          np.asarray(row[name], np.float32) for name in ("log_px", "standard_error", "effective_sample_size", "khat")
        ]
      except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
          f"{path}: line {number} is not a batch of results ({error}); delete the file to start the evaluation over."
        ) from None
    return results

  @staticmethod
  def append(path, start: int, arrays: dict) -> None:
    row = {"start": int(start), **{k: [float(v) for v in np.asarray(a).ravel()] for k, a in arrays.items()}}
    with open(path, "a") as f:
      f.write(json.dumps(row, allow_nan=True) + "\n")
      f.flush()
      os.fsync(f.fileno())


class _BatchStats:
  """One model's importance-sampling statistics of a batch x [B, ...] with a stateless seed [2].

  A callable object rather than a closure, so that its traces are counted on their own (see
  `tfpvi.xla`). The model is held by a weak reference, so the compile cache does not keep it alive.
  """

  def __init__(self, model, num_samples: int, chunk_size: int, tail: int, precision: str = "float32"):
    self._precision = precision
    try:
      self._model = weakref.ref(model)
    except TypeError:  # a model without weak references: held as it is
      self._model = lambda: model
    self._num_samples, self._chunk_size, self._tail = num_samples, chunk_size, tail

  def __call__(self, x, batch_seed):
    stats = importance_sampling_stats(
      self._model(),
      x,
      self._num_samples,
      chunk_size=self._chunk_size,
      tail_size=self._tail,
      seed=batch_seed,
      precision=self._precision,
    )
    khat = pareto_khat(stats.largest_log_weights) if self._tail else tf.fill(tf.shape(x)[:1], float("nan"))
    return stats.log_mean_weight, stats.standard_error, stats.effective_sample_size, khat


def _compiled_batch_stats(model, num_samples: int, chunk_size: int, tail: int, jit_compile: bool, precision: str):
  """The compiled `_BatchStats` of `model` with these options, built once and reused by later calls."""
  # One trace per batch shape (no shape relaxation), so a batch runs the same graph in a resumed
  # evaluation as in an uninterrupted one.
  with precision_lib.policy(precision):  # part of the cache key
    return xla.cached(
      model,
      ("batch_stats", num_samples, chunk_size, tail, jit_compile),
      lambda: tf.function(_BatchStats(model, num_samples, chunk_size, tail, precision), jit_compile=jit_compile),
    )


def _progress_bar(progress: Optional[bool], total: int, settings: dict, initial: int = 0):
  if progress is None:
    progress = sys.stderr.isatty()
  if not progress:
    return None
  from tqdm.auto import tqdm

  if settings["estimator"] == "ais":
    description = f"log p(x), AIS T={settings['num_steps']} C={settings['num_chains']}"
  else:
    description = f"log p(x), K={settings['num_samples']}"
  return tqdm(total=total, initial=initial, unit="example", desc=description, dynamic_ncols=True)


def reading(summary: dict) -> str:
  """One plain-language line on whether the estimates in `summary` (from `summarize`) can be trusted.

  Pareto k-hat >= 0.7 means the largest importance weights have such a heavy tail that the
  estimate of that example is dominated by a few samples: q(z|x) misses part of the posterior, and
  log p(x) is then most likely an underestimate that more samples improve only slowly.
  """
  if summary.get("estimator") == "ais":
    ess = summary.get("ess_mean")
    ess_text = f" (mean effective sample size {ess:.1f} of {summary['num_chains']} chains)" if ess is not None else ""
    return (
      f"AIS with {summary['num_steps']} annealing steps and {summary['num_chains']} chains per example{ess_text}: "
      "a stochastic lower bound on log p(x) that rises to it as the steps grow; run it again with more steps, "
      "or measure its error on simulated data with tfpvi.evaluation.ais.bdmc, before reading small differences."
    )
  fraction = summary.get("khat_fraction_above_0_7")
  ess = summary.get("ess_mean")
  k = summary.get("num_samples")
  ess_text = f"; mean effective sample size {ess:.0f} of K = {k}" if ess is not None and k else ""
  if fraction is None:
    return f"No Pareto k-hat (needs K >= 30){ess_text}; treat these estimates as lower bounds."
  if fraction == 0:
    return f"Reliable: Pareto k-hat < 0.7 for every example{ess_text}."
  share = f"{100 * fraction:.0f}%" if fraction >= 0.01 else f"{100 * fraction:.2g}%"
  return (
    f"Not reliable for {share} of examples (Pareto k-hat >= 0.7: a few samples dominate each such "
    f"estimate{ess_text}). Their log p(x) is most likely an underestimate; read it as a lower "
    "bound. For a tighter estimate, use annealed importance sampling (tfpvi.evaluation.ais; python -m "
    "tfpvi.cli.evaluate RUN --estimator ais), or improve the proposal (more training, a richer q(z|x))."
  )


def comparison(importance_summary: dict, ais_summary: dict, importance_log_px=None, ais_log_px=None) -> str:
  """One sentence comparing importance-sampled and AIS estimates of log p(x) on the same examples.

  Both are stochastic lower bounds on log p(x), so the higher one is the tighter; the difference
  estimates (in expectation, a lower bound on) how far the other one is below the truth.

  Args:
    importance_summary: `evaluate_dataset(..., estimator="importance")[0]`.
    ais_summary: `evaluate_dataset(..., estimator=AIS(...))[0]` on the same examples.
    importance_log_px: the per-example importance-sampling estimates [N] (`per_example["log_px"]`).
    ais_log_px: the per-example AIS estimates [N]; with both, the sentence gives the paired
      standard error of the difference.
  """
  difference = ais_summary["log_px"] - importance_summary["log_px"]
  k = importance_summary.get("num_samples")
  steps = ais_summary.get("num_steps")
  error = ""
  if importance_log_px is not None and ais_log_px is not None and len(importance_log_px) > 1:
    paired = np.asarray(ais_log_px, np.float64) - np.asarray(importance_log_px, np.float64)
    se = float(paired.std(ddof=1) / math.sqrt(len(paired)))
    error = f" +- {se:.2f}"
    if abs(difference) < 2 * se:
      return (
        f"AIS ({steps} steps) and importance sampling (K = {k}) agree within their paired standard error "
        f"(difference {difference:+.2f}{error} nats)."
      )
  if difference > 0:
    return (
      f"AIS ({steps} steps) is {difference:.2f}{error} nats above importance sampling (K = {k}): both are lower "
      f"bounds in expectation, so the importance-sampled log p(x) underestimates by about {difference:.2f} nats "
      "or more."
    )
  return (
    f"AIS ({steps} steps) is {-difference:.2f}{error} nats below importance sampling (K = {k}): the AIS run is too "
    "short to be the tighter bound here; give it more steps (or start it from q(z|x))."
  )
