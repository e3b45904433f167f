"""Benchmarks of the core paths, variants compared in one run: `python -m benchmarks.core`.

- IWAE training step on Burda et al.'s 1-stochastic-layer MLP (784-200-200-50, tanh, k = 50,
  batch 20), Adam: one step per `tf.function` call without and with XLA, and `tfpvi.train.fit`
  with 1 and 50 steps per compiled call, without and with XLA (in-memory data, batch gathering
  and dynamic binarization inside the step, finiteness checks on every step).
- `log_marginal_likelihood` with k = 5000 (chunks of 500) on 20 images, without and with XLA.

Timings: warm-up call first (compilation excluded), then the median of repeated timed runs.
Prints a table and writes it to benchmarks/results_<device>.md and .json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfpvi  # noqa: E402  (first: imports TensorFlow without its start-up log lines)

# isort: split
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = pathlib.Path(__file__).parent


def burda_model():
  """Burda et al.'s one-layer model, 784-200-200-50 tanh MLPs (the model of `experiments.iwae`)."""
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([200, 200], 50, activation=tf.nn.tanh),
    tfpvi.decoders.BernoulliMLP([200, 200], [28, 28, 1], activation=tf.nn.tanh),
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


def fit_variant(steps_per_call: int, jit: bool, x_train, k: int, batch: int, steps: int):
  model = burda_model()
  history = tfpvi.train.fit(
    model,
    functools.partial(tfpvi.objectives.iwae, num_samples=k),
    x_train,
    optimizer=snt.optimizers.Adam(1e-3),
    steps=steps,
    batch_size=batch,
    preprocess=tfpvi.data.binarize_dynamic,
    logging=tfpvi.train.Logging(every=steps // 4, progress=False),
    loop=tfpvi.train.Loop(steps_per_call=steps_per_call, jit_compile=jit),
  )
  times, steps_logged = history["wall_time"].to_numpy(), history["step"].to_numpy()
  # Exclude the first logged chunk (compilation); time per step over the rest.
  return float((times[-1] - times[0]) / (steps_logged[-1] - steps_logged[0]))


def time_log_marginal_likelihood(model, x, jit: bool, repeats: int, num_samples: int, chunk_size: int) -> float:
  """Median seconds of one compiled `log_marginal_likelihood` call on x."""
  model.log_weights(x, 1)

  @tf.function(jit_compile=jit)
  def log_px(x):
    return tfpvi.evaluation.log_marginal_likelihood(model, x, num_samples, chunk_size=chunk_size, seed=[1, 1])

  return median_seconds(lambda: log_px(x).numpy(), repeats)


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
  parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
  args = parser.parse_args(argv)
  steps = 10 if args.quick else 50
  fit_steps = 200 if args.quick else 1000
  images, _ = tfpvi.data.load_arrays("mnist", "train")[:2]
  x_train = images[:10000].astype(np.float32) / 255.0
  x = tf.constant((x_train[:20] > 0.5).astype(np.float32))
  device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
  rows = []
  for jit in (False, True):
    seconds = time_training_step(
      burda_model(), functools.partial(tfpvi.objectives.iwae, num_samples=50), x, jit, args.repeats, steps
    )
    rows.append((f"IWAE k=50 step, one per call, {'XLA' if jit else 'graph'}", seconds * 1e3, 20 / seconds))
  for jit in (False, True):
    for steps_per_call in (1, 50):
      seconds = fit_variant(steps_per_call, jit, x_train, 50, 20, fit_steps)
      rows.append(
        (f"IWAE k=50 fit(), steps_per_call={steps_per_call}, {'XLA' if jit else 'graph'}", seconds * 1e3, 20 / seconds)
      )
  for jit in (False, True):
    seconds = time_log_marginal_likelihood(burda_model(), x, jit, max(2, args.repeats // 2), 5000, chunk_size=500)
    rows.append((f"log p(x) k=5000, 20 images, {'XLA' if jit else 'graph'}", seconds * 1e3, 20 / seconds))
  header = "| variant | ms per call/step | images/s |\n|---|---:|---:|"
  lines = [header] + [f"| {name} | {ms:.2f} | {ips:.0f} |" for name, ms, ips in rows]
  context = (
    f"device: {device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), "
    f"TF {tf.__version__}, repeats {args.repeats}, median"
  )
  table = "\n".join(lines)
  print(context)
  print(table)
  if not args.quick:
    name = f"results_{device.lower()}"
    (HERE / f"{name}.md").write_text(f"# Core benchmarks\n\n{context}\n\n{table}\n")
    (HERE / f"{name}.json").write_text(
      json.dumps(
        {"context": context, "rows": [{"variant": n, "ms": m, "images_per_s": i} for n, m, i in rows]}, indent=2
      )
    )


if __name__ == "__main__":
  main()
