"""Benchmarks of the convolutional VAE: `python -m benchmarks.conv`.

- ELBO training step (1 sample, Adam, batch 64) of experiments.bits_per_dim's conv model on 8-bit
  28x28x1 images (5 logistics per pixel) and on 32x32x3 images (PixelCNN++ mixture), one step per
  `tf.function` call, without and with XLA.
- Importance-sampled log p(x) (`tfpvi.evaluation.log_marginal_likelihood`, K = 200 in chunks of
  100) of 25 images with the same models, without and with XLA.

Timings: a warm-up call first (compilation excluded), then the median of repeated runs. Prints a
table and writes it to benchmarks/results_conv_<device>.md (with --quick: prints only).
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import tfpvi  # noqa: E402
from benchmarks.core import time_log_marginal_likelihood, time_training_step  # noqa: E402

HERE = pathlib.Path(__file__).parent


def conv_model(shape):
  """The conv model of `experiments.bits_per_dim` at its defaults: ResNet 32-64, 1 block, 5 components, 32 latents."""
  return tfpvi.VAE(
    tfpvi.conv.ResNetEncoder(32, channels=(32, 64), blocks_per_stage=1),
    tfpvi.conv.ResNetDecoder(list(shape), channels=(64, 32), blocks_per_stage=1, num_components=5),
    tfpvi.standard_normal_prior(32),
  )


def images(batch, shape):
  return tf.round(tf.random.stateless_uniform([batch, *shape], seed=[0, 1], maxval=255.0))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--quick", action="store_true", help="fewer steps and samples, prints only (a smoke run)")
  args = parser.parse_args(argv)
  steps, num_samples, batch = (2, 20, 4) if args.quick else (10, 200, 64)
  eval_images = 4 if args.quick else 25
  device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
  rows = []
  for label, shape in (("28x28x1, 5 logistics", (28, 28, 1)), ("32x32x3, PixelCNN++ mixture", (32, 32, 3))):
    for jit in (False, True):
      seconds = time_training_step(
        conv_model(shape),
        functools.partial(tfpvi.objectives.elbo, num_samples=1),
        images(batch, shape),
        jit,
        args.repeats,
        steps,
      )
      rows.append(
        (f"conv ELBO step, batch {batch}, {label}, {'XLA' if jit else 'graph'}", seconds * 1e3, batch / seconds)
      )
    for jit in (False, True):
      seconds = time_log_marginal_likelihood(
        conv_model(shape), images(eval_images, shape), jit, args.repeats, num_samples, chunk_size=100
      )
      rows.append(
        (
          f"conv log p(x) k={num_samples}, {eval_images} images, {label}, {'XLA' if jit else 'graph'}",
          seconds * 1e3,
          eval_images / seconds,
        )
      )
  header = "| variant | ms per call/step | images/s |\n|---|---:|---:|"
  lines = [header] + [f"| {name} | {ms:.1f} | {ips:.1f} |" for name, ms, ips in rows]
  context = (
    f"device: {device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), "
    f"TF {tf.__version__}, repeats {args.repeats}, median; model: experiments.bits_per_dim conv_mixture "
    f"defaults"
  )
  table = "\n".join(lines)
  print(context)
  print(table)
  if not args.quick:
    (HERE / f"results_conv_{device.lower()}.md").write_text(f"# Conv VAE benchmarks\n\n{context}\n\n{table}\n")


if __name__ == "__main__":
  main()
