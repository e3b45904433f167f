"""A VAE with a 2-D latent space on MNIST: class scatter and 15x15 manifold (after the Keras VAE tutorial).

Model: MLP encoder [256] (ReLU) -> diagonal Gaussian q(z|x) over 2 latents; MLP decoder [256]
-> Bernoulli p(x|z); N(0, I) prior. Objective: the ELBO with the analytic KL. RMSprop (1e-3),
batch 100, 50 epochs of dynamically binarized MNIST (the tutorial uses grey levels with a Bernoulli
cross-entropy). Figures: posterior means of the test set coloured by digit; the decoded 15x15 grid
of latent points at Gaussian quantiles 0.05..0.95 (the inverse CDF of the prior).

    python -m experiments.latent_2d --output_dir runs/latent_2d

References:
  Kingma & Welling. Auto-Encoding Variational Bayes. ICLR 2014.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import common


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/latent_2d", "folder for checkpoints, history, results and figures")
  hidden_size: int = common.flag(256, "hidden layer size of the encoder and decoder MLPs", minimum=1)
  latent_size: int = common.flag(2, "number of latent dimensions: 2 (the scatter and the manifold are 2-D)")
  learning_rate: float = common.flag(1e-3, "RMSprop learning rate", above=0)
  batch_size: int = common.flag(100, "training batch size", minimum=1)
  epochs: float = common.flag(50.0, "passes over the training set (used when --steps is 0)", minimum=0)
  steps: int = common.flag(0, "if > 0, training steps, replacing --epochs", minimum=0)
  train_examples: int = common.flag(60000, "number of MNIST training images used", minimum=1, maximum=60000)
  eval_examples: int = common.flag(
    10000, "number of test images for the ELBO and the scatter", minimum=1, maximum=10000
  )
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  EXCLUSIVE = (("steps", "epochs"),)

  SMOKE = dict(hidden_size=16, epochs=0.0, steps=20, train_examples=500, eval_examples=200)

  def check(self) -> None:
    if self.latent_size != 2:
      raise ValueError(
        f"--latent_size must be 2 (the latent scatter and the manifold are 2-D plots), got {self.latent_size}."
      )
    if self.steps == 0 and self.epochs == 0:
      raise ValueError("give --steps > 0 or --epochs > 0 (both are 0).")


def model_spec(config) -> dict:
  """The model as a `tfpvi.specs` dict (saved beside the checkpoints for `python -m tfpvi.cli.evaluate`)."""
  return {
    "encoder": {
      "class": "GaussianMLP",
      "hidden_sizes": [config.hidden_size],
      "latent_size": config.latent_size,
      "activation": "relu",
    },
    "decoder": {
      "class": "BernoulliMLP",
      "hidden_sizes": [config.hidden_size],
      "output_shape": [28, 28, 1],
      "activation": "relu",
    },
    "prior": {"class": "standard_normal", "latent_size": config.latent_size},
    "data": {"name": "mnist", "format": "binary"},
  }


def build_model(config) -> tfpvi.VAE:
  return tfpvi.specs.build(model_spec(config))


def train_steps(config, num_examples: int) -> int:
  return config.steps or max(1, int(config.epochs * np.ceil(num_examples / config.batch_size)))


def train(config, x_train, run_dir, num_samples: int):
  """Trains one model with `num_samples` Monte Carlo samples of the ELBO; returns (model, history)."""
  tf.random.set_seed(config.seed)
  common.save_spec(run_dir, model_spec(config))
  model = build_model(config)
  steps = train_steps(config, len(x_train))
  history = tfpvi.train.fit(
    model,
    functools.partial(tfpvi.objectives.elbo, num_samples=num_samples, return_terms=True),
    x_train,
    optimizer=snt.optimizers.RMSProp(config.learning_rate),
    steps=steps,
    batch_size=config.batch_size,
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(run_dir),
    seed=config.seed,
    logging=tfpvi.train.Logging(every=max(1, steps // 200)),
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=100),
  )
  return model, history


def check_folder(config, out) -> None:
  common.check_spec(out, model_spec(config))


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folder)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, labels = common.binarized_test_set("mnist", config.eval_examples)
  model, history = train(config, x_train, out, num_samples=1)
  test_elbo = tfpvi.objectives.elbo(model, x_test, seed=[config.seed, 1])
  metrics = {"final_train_loss": float(history["loss"].iloc[-1]), "test_elbo": float(np.mean(test_elbo))}
  tfpvi.plot.loss_curves(
    history, title="training loss = reconstruction + KL (nats per image)", path=str(out / "loss_curves.png")
  )
  tfpvi.plot.latent_scatter(model, x_test, labels, path=str(out / "latent_scatter.png"))
  tfpvi.plot.latent_manifold(model, num=15, path=str(out / "manifold.png"))
  trained = {"model": common.trained_record(history, train_steps(config, len(x_train)))}
  common.write_results(out, config, metrics, started, trained=trained)
  common.say(
    f"latent_2d, test and training metrics (nats per image):\n{common.metrics_table(metrics)}\n"
    f"results and figures in {out}/"
  )
  return metrics


if __name__ == "__main__":
  common.run(main)
