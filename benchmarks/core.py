"""Benchmarks of the core paths against their references, in one run: `python -m benchmarks.core`.

Training: Burda et al.'s one-layer model (784-200-200-50, tanh, Adam, learning rate 1e-3), IWAE
k = 50, batch 20, in-memory MNIST with the batch drawn and dynamically binarized inside the step:

- `tfpvi.train.fit` as `experiments.iwae` runs it (`steps_per_call=50`, `jit_compile="auto"`,
  which times the graph and XLA loops and keeps the faster), and with each of them forced, in
  float32 and with `precision="mixed_bfloat16"`;
- a raw hand-written TensorFlow loop of the same model and step (plain variables and matmuls, no
  tfpvi, no TFP; the decoder's k * batch rows flattened into 2-D matmuls as tfpvi's MLPs do; 50
  steps per `tf.function` call, graph and XLA): what the library costs;
- a hand-written PyTorch peer of the same model and step (Python loop, eager), when torch is
  installed (`pip install ".[bench]"`; skipped otherwise);
- the step's matmul floor, measured in the same process: the same layer shapes' matmuls alone,
  forward and backward (weights' and layer inputs' gradients), with no biases, activations,
  sampling or optimizer, in float32 and bfloat16. A step can be no faster than its floor.

log p(x): importance sampling with K = 5000 (chunks of 500) of 20 test images, compiled as
`evaluate_dataset` compiles it, graph and XLA, float32 and bfloat16; against the matmul floor
measured in the same process: the decoder's three matmuls alone for the same 100,000 latent
samples (2 * 100,000 * (50*200 + 200*200 + 200*784) = 41 GFLOP), in float32 and in bfloat16.
"% of floor" is floor time / time: 100% would be a log p(x) that costs no more than its matmuls.
"Where the time goes" rows time the decoder's work in pieces, each including the ones before it:
drawing z, then the logits (matmuls, biases, tanh), then the Bernoulli log-likelihood over the pixels (a softplus
of each of the 78 million logits).

Timings: a warm-up call first (compilation excluded), then the median of repeated runs. Prints a
table and writes it, with the machine and the date, to benchmarks/results_<device>.md and .json.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfpvi  # noqa: E402  (first: imports TensorFlow without its start-up log lines)

# isort: split
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = pathlib.Path(__file__).parent
SIZES = (784, 200, 200, 50)  # Burda et al.'s one-layer model: data, hidden, hidden, latent
_D, _H1, _H2, _LATENT = SIZES
# The [in, out] shapes of its six weight matrices: the encoder's three (the last gives loc and scale), the decoder's.
ENCODER_SHAPES = ((_D, _H1), (_H1, _H2), (_H2, 2 * _LATENT))
DECODER_SHAPES = ((_LATENT, _H2), (_H2, _H1), (_H1, _D))
LAYER_SHAPES = ENCODER_SHAPES + DECODER_SHAPES


def burda_model():
  """Burda et al.'s one-layer model, 784-200-200-50 tanh MLPs (the model of `experiments.iwae`)."""
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([200, 200], 50, activation=tf.nn.tanh),
    tfpvi.decoders.BernoulliMLP(
      [200, 200], [28, 28, 1], activation=tf.nn.tanh, output_bias=np.zeros([28, 28, 1], np.float32)
    ),
    tfpvi.standard_normal_prior(50),
  )


def median_seconds(fn, repeats: int) -> float:
  fn()  # warm-up / compile
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def time_training_step(model, objective, x, jit: bool, repeats: int, steps: int) -> float:
  """Median seconds per Adam step on `-mean(objective(model, x, seed=...))`, one step per call."""
  optimizer = snt.optimizers.Adam(1e-3)
  model.log_weights(x, 1)  # build the variables outside the compiled step

  @tf.function(jit_compile=jit)
  def step(x, seed):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(objective(model, x, seed=seed))
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return loss

  seeds = [tf.constant([0, i]) for i in range(steps)]

  def run():
    for seed in seeds:
      loss = step(x, seed)
    loss.numpy()

  return median_seconds(run, repeats) / steps


def fit_seconds_per_step(x_train, *, k: int, batch: int, steps: int, jit, precision: str = "float32"):
  """Seconds per step of `fit` (steps_per_call=50) after its first logged chunk (which compiles).

  Returns (seconds, what jit_compile="auto" chose or None).
  """
  model = burda_model()
  with tempfile_folder() as folder:
    history = tfpvi.train.fit(
      model,
      functools.partial(tfpvi.objectives.iwae, num_samples=k),
      x_train,
      optimizer=snt.optimizers.Adam(1e-3),
      steps=steps,
      batch_size=batch,
      preprocess=tfpvi.data.binarize_dynamic,
      output_dir=folder,
      logging=tfpvi.train.Logging(every=steps // 4, progress=False),
      checkpoints=tfpvi.train.Checkpoints(every=10**9),
      loop=tfpvi.train.Loop(steps_per_call=50, jit_compile=jit, precision=precision),
    )
    chosen = tfpvi.run_record.read(folder)["run"]["jit_compile"] if jit == "auto" else None
  times, logged = history["wall_time"].to_numpy(), history["step"].to_numpy()
  return float((times[-1] - times[0]) / (logged[-1] - logged[0])), chosen


class tempfile_folder:
  """A temporary run folder (fit writes its record there), removed afterwards."""

  def __enter__(self):
    import tempfile  # noqa: PLC0415

    self._dir = tempfile.TemporaryDirectory(prefix="tfpvi-bench-")
    return self._dir.name

  def __exit__(self, *exc):
    self._dir.cleanup()


# -- the raw TensorFlow loop -------------------------------------------------------------------


def _glorot(fan_in: int, fan_out: int, rng) -> tf.Variable:
  return tf.Variable(rng.normal(0, math.sqrt(2 / (fan_in + fan_out)), [fan_in, fan_out]).astype(np.float32))


class RawIWAE(tf.Module):
  """The same model and IWAE step written by hand: plain variables, matmuls and Adam, no tfpvi or TFP."""

  def __init__(self, seed: int = 0):
    rng = np.random.default_rng(seed)
    self.weights = [_glorot(a, b, rng) for a, b in LAYER_SHAPES]
    self.biases = [tf.Variable(tf.zeros([b])) for _, b in LAYER_SHAPES]
    self.params = self.weights + self.biases
    self.m = [tf.Variable(tf.zeros_like(p)) for p in self.params]
    self.v = [tf.Variable(tf.zeros_like(p)) for p in self.params]
    self.t = tf.Variable(0.0)

  def loss(self, x, k: int, seed):
    w, b = self.weights, self.biases
    h = tf.tanh(tf.tanh(x @ w[0] + b[0]) @ w[1] + b[1])
    loc, raw = tf.split(h @ w[2] + b[2], 2, axis=-1)
    scale = 1e-4 + tf.nn.softplus(raw)
    eps = tf.random.stateless_normal([k, *loc.shape], seed)
    z = loc + scale * eps  # [k, B, latent]
    log_q = tf.reduce_sum(-0.5 * eps**2 - tf.math.log(scale), -1)  # (the 2 pi terms cancel with log p(z)'s)
    log_pz = tf.reduce_sum(-0.5 * z**2, -1)
    rows = tf.reshape(z, [-1, z.shape[-1]])  # [k * B, latent]: 2-D matmuls (a rank-3 one is a batched matmul)
    logits = tf.tanh(tf.tanh(rows @ w[3] + b[3]) @ w[4] + b[4]) @ w[5] + b[5]
    logits = tf.reshape(logits, [k, -1, logits.shape[-1]])  # [k, B, 784]
    log_px_z = tf.reduce_sum(x * logits - tf.nn.softplus(logits), -1)
    log_w = log_px_z + log_pz - log_q
    return -tf.reduce_mean(tf.reduce_logsumexp(log_w, 0) - math.log(k))

  def step(self, images, batch: int, k: int, seed):
    index = tf.random.stateless_uniform([batch], seed, 0, images.shape[0], tf.int32)
    probs = tf.gather(images, index)
    x = tf.cast(tf.random.stateless_uniform(probs.shape, seed + 1) < probs, tf.float32)
    with tf.GradientTape() as tape:
      loss = self.loss(x, k, seed + 2)
    grads = tape.gradient(loss, self.params)
    self.t.assign_add(1.0)
    rate = 1e-3 * tf.sqrt(1 - 0.999**self.t) / (1 - 0.9**self.t)
    for p, g, m, v in zip(self.params, grads, self.m, self.v):
      m.assign(0.9 * m + 0.1 * g)
      v.assign(0.999 * v + 0.001 * g * g)
      p.assign_sub(rate * m / (tf.sqrt(v) + 1e-8))
    return loss


def raw_tf_seconds_per_step(x_train, *, k: int, batch: int, jit: bool, repeats: int, steps: int = 50) -> float:
  model = RawIWAE()
  images = tf.constant(x_train)

  @tf.function(jit_compile=jit)
  def run_steps(first):
    def body(i, loss):
      return i + 1, model.step(images, batch, k, tf.stack([first + i, 7]))

    return tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), tf.constant(0.0)))[1]

  calls = iter(range(10**6))
  return median_seconds(lambda: float(run_steps(tf.constant(next(calls) * steps))), repeats) / steps


# -- the PyTorch peer ----------------------------------------------------------------------------


def torch_seconds_per_step(x_train, *, k: int, batch: int, repeats: int, steps: int = 50):
  """Seconds per step of the same model in PyTorch (eager, Python loop); None if torch is missing."""
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  d, h1, h2, latent = SIZES
  encoder = torch.nn.Sequential(
    torch.nn.Linear(d, h1), torch.nn.Tanh(), torch.nn.Linear(h1, h2), torch.nn.Tanh(), torch.nn.Linear(h2, 2 * latent)
  )
  decoder = torch.nn.Sequential(
    torch.nn.Linear(latent, h2), torch.nn.Tanh(), torch.nn.Linear(h2, h1), torch.nn.Tanh(), torch.nn.Linear(h1, d)
  )
  params = list(encoder.parameters()) + list(decoder.parameters())
  optimizer = torch.optim.Adam(params, lr=1e-3)
  images = torch.from_numpy(x_train.reshape(len(x_train), -1))

  def step():
    probs = images[torch.randint(0, len(images), (batch,))]
    x = (torch.rand_like(probs) < probs).float()
    loc, raw = encoder(x).chunk(2, -1)
    scale = 1e-4 + torch.nn.functional.softplus(raw)
    eps = torch.randn(k, *loc.shape)
    z = loc + scale * eps
    log_q = (-0.5 * eps**2 - scale.log()).sum(-1)
    log_pz = (-0.5 * z**2).sum(-1)
    logits = decoder(z)
    log_px_z = (x * logits - torch.nn.functional.softplus(logits)).sum(-1)
    loss = -(torch.logsumexp(log_px_z + log_pz - log_q, 0) - math.log(k)).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss

  def run():
    for _ in range(steps):
      loss = step()
    float(loss)

  return median_seconds(run, repeats) / steps, torch.__version__


# -- log p(x) and its matmul floor ---------------------------------------------------------------


def time_log_marginal_likelihood(
  model, x, jit: bool, repeats: int, num_samples: int, chunk_size: int, precision: str = "float32"
) -> float:
  """Median seconds of one compiled `log_marginal_likelihood` call on x."""
  model.log_weights(x, 1)

  @tf.function(jit_compile=jit)
  def log_px(x):
    return tfpvi.evaluation.log_marginal_likelihood(
      model, x, num_samples, chunk_size=chunk_size, seed=[1, 1], precision=precision
    )

  return median_seconds(lambda: log_px(x).numpy(), repeats)


def decoder_flops(rows: int) -> float:
  return 2.0 * rows * sum(a * b for a, b in DECODER_SHAPES)


def time_matmul_floor(rows: int, chunk_rows: int, dtype: tf.DType, repeats: int) -> float:
  """Median seconds of the decoder's three matmuls alone on `rows` latent rows, chunk by chunk (graph)."""
  rng = np.random.default_rng(0)
  weights = [tf.constant(rng.normal(0, 0.1, s), dtype) for s in DECODER_SHAPES]
  z = tf.constant(rng.normal(size=[chunk_rows, _LATENT]), dtype)
  num_chunks = rows // chunk_rows

  @tf.function
  def matmuls():
    def body(i, total):
      h = z + tf.cast(i, dtype)  # a new input per chunk, so nothing is computed once for all
      for w in weights:
        h = h @ w
      return i + 1, total + tf.cast(h[0, 0], tf.float32)

    return tf.while_loop(lambda i, _: i < num_chunks, body, (tf.constant(0), tf.constant(0.0)))[1]

  return median_seconds(lambda: matmuls().numpy(), repeats)


def training_matmul_flops(k: int, batch: int) -> float:
  """FLOPs of one IWAE step's matmuls: the forward pass, and the backward pass's two per matmul.

  The encoder runs on the batch's rows, the decoder on k * batch latent rows. The backward pass
  needs each weight's gradient (one matmul per layer) and each layer input's gradient (one more),
  except the encoder's first layer, whose input is the data.
  """
  macs = sum(batch * a * b * (3 if i else 2) for i, (a, b) in enumerate(ENCODER_SHAPES))
  macs += sum(k * batch * a * b * 3 for a, b in DECODER_SHAPES)
  return 2.0 * macs


def matmul_chain_gradients(weights, x, latents):
  """The matmuls of an IWAE step alone: x through the encoder's weights, the latents through the decoder's.

  Args:
    weights: the six [in, out] matrices of `SIZES`' encoder (3) and decoder (3).
    x: [batch, 784]; latents: [k * batch, 50] (the decoder's rows, flattened as tfpvi's MLPs do).

  Returns:
    the gradients of the two outputs' sum with respect to every weight and to the latents.
  """
  with tf.GradientTape() as tape:
    tape.watch(latents)
    h, g = x, latents
    for w in weights[:3]:
      h = h @ w
    for w in weights[3:]:
      g = g @ w
    total = tf.reduce_sum(tf.cast(h, tf.float32)) + tf.reduce_sum(tf.cast(g, tf.float32))
  return tape.gradient(total, [*weights, latents])


def time_training_matmul_floor(k: int, batch: int, dtype: tf.DType, repeats: int, steps: int = 50) -> float:
  """Median seconds per step of `matmul_chain_gradients` (graph), 50 steps per call: the step's floor.

  The same layer shapes as the model's, with no biases, activations, sampling or optimizer.
  """
  rng = np.random.default_rng(0)
  weights = [tf.Variable(rng.normal(0, 0.05, s), dtype=dtype) for s in LAYER_SHAPES]
  x = tf.constant(rng.normal(size=[batch, _D]), dtype)
  z = tf.constant(rng.normal(size=[k * batch, _LATENT]), dtype)

  @tf.function
  def run_steps():
    def body(i, total):
      grads = matmul_chain_gradients(weights, x, z + tf.cast(i, dtype))  # a new input per step
      return i + 1, total + sum(tf.cast(g[0, 0], tf.float32) for g in grads)

    return tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), tf.constant(0.0)))[1]

  return median_seconds(lambda: run_steps().numpy(), repeats) / steps


def time_decoder_parts(model, x, rows: int, chunk_rows: int, repeats: int) -> dict:
  """Median seconds of the pieces of log p(x)'s decoder work on `rows` latent rows, chunk by chunk (graph).

  Each piece includes the ones before it: drawing z, then the decoder's logits (matmuls, biases,
  tanh), then log p(x | z) summed over pixels (the softplus of every logit).
  """
  batch = int(x.shape[0])
  num_chunks, samples = rows // chunk_rows, chunk_rows // batch
  pieces = {
    "draw z ~ N(0, I) only": lambda z: z[0, 0, 0],
    "+ decoder logits (matmuls, biases, tanh)": lambda z: model.decoder(z).distribution.logits[0, 0, 0, 0, 0],
    "+ Bernoulli log-likelihood over the pixels (softplus)": lambda z: tf.reduce_sum(model.decoder(z).log_prob(x)),
  }
  seconds = {}
  for name, piece in pieces.items():

    @tf.function
    def run(piece=piece):
      def body(i, total):
        z = tf.random.normal([samples, batch, SIZES[3]])
        return i + 1, total + piece(z)

      return tf.while_loop(lambda i, _: i < num_chunks, body, (tf.constant(0), tf.constant(0.0)))[1]

    seconds[name] = median_seconds(lambda run=run: run().numpy(), repeats)
  return seconds


# -- the table -----------------------------------------------------------------------------------


def step_floor_sentence(step_flops: float, step_floor: dict, peer_ms=None) -> str:
  """What the training table's floor rows mean: the step's matmul rate, and what 3x the peer leaves."""
  gflop = step_flops / 1e9
  sentence = (
    f"The step's matmuls are {gflop:.2f} GFLOP (forward, and the backward pass's gradients of weights and "
    f"layer inputs): {gflop / step_floor['float32'] * 1e3:.0f} GFLOP/s in float32 and "
    f"{gflop / step_floor['bfloat16'] * 1e3:.0f} GFLOP/s in bfloat16 here."
  )
  if peer_ms is None:
    return sentence
  target = peer_ms / 3
  return sentence + (
    f" Three times the PyTorch peer's speed is {target:.2f} ms per step, which leaves "
    f"{target - step_floor['float32']:.2f} ms (float32) or {target - step_floor['bfloat16']:.2f} ms (bfloat16) "
    "beyond the matmuls for every bias, activation, draw of z, log-likelihood and optimizer update."
  )


def machine() -> str:
  return tfpvi.run_record.machine()


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog="python -m benchmarks.core",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    allow_abbrev=False,
  )
  parser.add_argument(
    "--repeats",
    type=int,
    default=5,
    help="timed runs per variant, after a warm-up call; the median is reported (default: 5)",
  )
  parser.add_argument("--quick", action="store_true", help="fewer steps, nothing written (a smoke run)")
  args = parser.parse_args(argv)
  k, batch = 50, 20
  fit_steps = 400 if args.quick else 2000
  images = tfpvi.data.load_arrays("mnist", "train").images
  x_train = (images[:10000].reshape(10000, -1) / 255.0).astype(np.float32)
  x = tf.constant(
    (tfpvi.data.load_arrays("mnist", "test").images[:20] / 255.0 > 0.5).astype(np.float32).reshape(20, 28, 28, 1)
  )
  device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
  train_rows, eval_rows = [], []  # (variant, ms per step / call)

  seconds, chosen = fit_seconds_per_step(x_train.reshape(-1, 28, 28, 1), k=k, batch=batch, steps=fit_steps, jit="auto")
  default_ms = seconds * 1e3
  train_rows.append((f"tfpvi fit, default (jit_compile='auto' chose {'XLA' if chosen else 'graph'})", default_ms))
  for jit in (False, True):
    for precision in ("float32", "mixed_bfloat16"):
      seconds, _ = fit_seconds_per_step(
        x_train.reshape(-1, 28, 28, 1), k=k, batch=batch, steps=fit_steps, jit=jit, precision=precision
      )
      train_rows.append((f"tfpvi fit, {'XLA' if jit else 'graph'}, {precision}", seconds * 1e3))
  raw = {}
  for jit in (False, True):
    raw[jit] = raw_tf_seconds_per_step(x_train, k=k, batch=batch, jit=jit, repeats=args.repeats) * 1e3
    train_rows.append((f"raw TensorFlow loop, {'XLA' if jit else 'graph'}, float32", raw[jit]))
  peer = torch_seconds_per_step(x_train, k=k, batch=batch, repeats=args.repeats)
  if peer is not None:
    train_rows.append((f"PyTorch {peer[1]} peer, eager, float32", peer[0] * 1e3))
  step_floor = {
    dtype.name: time_training_matmul_floor(k, batch, dtype, args.repeats) * 1e3 for dtype in (tf.float32, tf.bfloat16)
  }
  for dtype_name, ms in step_floor.items():
    train_rows.append((f"the step's matmuls alone ({dtype_name}, forward and backward): the floor", ms))

  rows = 20 * 5000
  floor = {
    dtype.name: time_matmul_floor(rows, 500 * 20, dtype, args.repeats) * 1e3 for dtype in (tf.float32, tf.bfloat16)
  }
  for dtype_name, ms in floor.items():
    eval_rows.append((f"decoder matmuls alone ({dtype_name}): the floor", ms))
  parts_model = burda_model()
  parts_model.log_weights(x, 1)
  for name, seconds in time_decoder_parts(parts_model, x, rows, 500 * 20, args.repeats).items():
    eval_rows.append((f"where the time goes, float32 graph: {name}", seconds * 1e3))
  for jit in (False, True):
    for precision in ("float32", "mixed_bfloat16"):
      seconds = time_log_marginal_likelihood(
        burda_model(), x, jit, max(2, args.repeats // 2), 5000, chunk_size=500, precision=precision
      )
      eval_rows.append((f"log p(x), {'XLA' if jit else 'graph'}, {precision}", seconds * 1e3))

  best_raw = min(raw.values())
  lines = [
    f"## Training: IWAE k={k}, batch {batch}, Burda et al.'s model, Adam ({fit_steps} fit steps)",
    "",
    "| variant | ms per step | images/s | vs raw TF (best) | vs PyTorch |",
    "|---|---:|---:|---:|---:|",
  ]
  for name, ms in train_rows:
    versus_peer = f"{peer[0] * 1e3 / ms:.2f}x" if peer is not None else "n/a"
    lines.append(f"| {name} | {ms:.2f} | {batch / ms * 1e3:.0f} | {best_raw / ms:.2f}x | {versus_peer} |")
  lines += ["", step_floor_sentence(training_matmul_flops(k, batch), step_floor, peer[0] * 1e3 if peer else None)]
  lines += [
    "",
    f"## log p(x): K = 5000 importance samples (chunks of 500) of 20 images; decoder "
    f"{decoder_flops(rows) / 1e9:.1f} GFLOP",
    "",
    "| variant | ms per call | GFLOP/s (decoder) | % of float32 floor |",
    "|---|---:|---:|---:|",
  ]
  for name, ms in eval_rows:
    lines.append(f"| {name} | {ms:.1f} | {decoder_flops(rows) / ms / 1e6:.0f} | {100 * floor['float32'] / ms:.0f}% |")
  context = (
    f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {device}: {machine()}; "
    f"TensorFlow {tf.__version__}; median of {args.repeats} timed runs after a warm-up"
  )
  table = "\n".join(lines)
  print(context)
  print(table)
  if not args.quick:
    name = f"results_{device.lower()}"
    (HERE / f"{name}.md").write_text(f"# Core benchmarks\n\n`python -m benchmarks.core`, {context}.\n\n{table}\n")
    (HERE / f"{name}.json").write_text(
      json.dumps(
        {
          "context": context,
          "training": [{"variant": n, "ms_per_step": m} for n, m in train_rows],
          "log_px": [{"variant": n, "ms_per_call": m} for n, m in eval_rows],
        },
        indent=2,
      )
    )


if __name__ == "__main__":
  main()
