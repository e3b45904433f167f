"""A VAE with a 2-D latent space on MNIST: class scatter and 15x15 manifold (seed 003).

Model: MLP encoder [256] (ReLU) -> diagonal Gaussian q(z|x) over 2 latents; MLP decoder [256]
-> Bernoulli p(x|z); N(0, I) prior. Objective: the ELBO with the analytic KL. RMSprop (1e-3),
batch 100, 50 epochs of dynamically binarized MNIST (the seed uses grey levels with a Bernoulli
cross-entropy). Figures: posterior means of the test set coloured by digit; the decoded 15x15 grid
of latent points at Gaussian quantiles 0.05..0.95 (the inverse CDF of the prior).

    python -m experiments.latent_2d --output_dir runs/latent_2d

References:
  Kingma & Welling. Auto-Encoding Variational Bayes. ICLR 2014.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import common


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = "runs/latent_2d"
  hidden_size: int = 256
  latent_size: int = 2
  learning_rate: float = 1e-3
  batch_size: int = 100
  epochs: float = 50.0
  steps: int = 0
  train_examples: int = 60000
  eval_examples: int = 10000
  seed: int = 0

  SMOKE = dict(hidden_size=16, epochs=0.0, steps=20, train_examples=500, eval_examples=200)


def build_model(config) -> tfpvi.VAE:
  return tfpvi.VAE(
      tfpvi.encoders.GaussianMLP([config.hidden_size], config.latent_size),
      tfpvi.decoders.BernoulliMLP([config.hidden_size], [28, 28, 1]),
      tfpvi.standard_normal_prior(config.latent_size),
  )


def train(config, x_train, run_dir, num_samples: int):
  """Trains one model with `num_samples` Monte Carlo samples of the ELBO; returns (model, history)."""
  tf.random.set_seed(config.seed)
  model = build_model(config)
  steps = config.steps or int(config.epochs * np.ceil(len(x_train) / config.batch_size))
  history = tfpvi.train.fit(
      model, functools.partial(tfpvi.objectives.elbo, num_samples=num_samples, return_terms=True),
      x_train, optimizer=snt.optimizers.RMSProp(config.learning_rate), steps=steps,
      batch_size=config.batch_size, preprocess=tfpvi.data.binarize_dynamic, output_dir=str(run_dir),
      log_every=max(1, steps // 200), seed=config.seed, steps_per_call=100,
  )
  return model, history


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, labels = common.binarized_test_set("mnist", config.eval_examples)
  model, history = train(config, x_train, out, num_samples=1)
  test_elbo = tfpvi.objectives.elbo(model, x_test, seed=[config.seed, 1])
  metrics = {"final_train_loss": float(history["loss"].iloc[-1]), "test_elbo": float(np.mean(test_elbo))}
  tfpvi.plot.loss_curves(history, title="negative ELBO by term", path=str(out / "loss_curves.png"))
  tfpvi.plot.latent_scatter(model, x_test, labels, path=str(out / "latent_scatter.png"))
  tfpvi.plot.latent_manifold(model, num=15, path=str(out / "manifold.png"))
  common.write_results(out, config, metrics, started)
  common.say(f"latent_2d: {metrics}\nresults and figures in {out}/")
  return metrics


if __name__ == "__main__":
  main(sys.argv[1:])
