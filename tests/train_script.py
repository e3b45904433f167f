"""A small training run for the kill-and-resume test: python train_script.py OUTPUT_DIR STEPS."""

import functools
import sys

import numpy as np
import sonnet as snt
import tensorflow as tf

import tfpvi


def main(output_dir, steps):
  x = (np.random.default_rng(0).random([512, 4, 4, 1]) > 0.5).astype("float32")
  model = tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([32], 2),
    tfpvi.decoders.BernoulliMLP([32], [4, 4, 1]),
    tfpvi.standard_normal_prior(2),
  )
  tf.random.set_seed(0)
  return tfpvi.train.fit(
    model,
    functools.partial(tfpvi.objectives.iwae, return_terms=True),
    x,
    optimizer=snt.optimizers.Adam(1e-2),
    steps=steps,
    batch_size=32,
    objective_kwargs=dict(num_samples=3),
    output_dir=output_dir,
    logging=tfpvi.train.Logging(every=1, progress=False),
    checkpoints=tfpvi.train.Checkpoints(every=20),
    loop=tfpvi.train.Loop(steps_per_call=5),
  )


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]))
  print("done")
