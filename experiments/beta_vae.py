"""A Sonnet 2 + TFP beta-VAE on MNIST (after the beta-VAE tutorial).

Model: MLP encoder [100, 100] -> diagonal Gaussian q(z|x) over 10 latents; MLP decoder [100, 100]
-> Bernoulli p(x|z); N(0, I) prior. Objective: E_q[log p(x|z)] - beta KL(q || p) with beta = 0.01
and the analytic KL (`tfpvi.objectives.elbo`). Adam 1e-3, batch 64, 1,024 steps, history logged at
powers of two. Data: MNIST training images, dynamically binarized (the beta-VAE tutorial feeds grey
levels to a Bernoulli cross-entropy; a Bernoulli likelihood is only a density for binary pixels).
Units: nats per image, summed over pixels and latents (the tutorial's plot averages over them).
Figures: log-log loss curves by term, reconstructions, a 10x10 traversal of z[0], z[1] in [-1, 1].

    python -m experiments.beta_vae --output_dir runs/beta_vae

References:
  Kingma & Welling. Auto-Encoding Variational Bayes. ICLR 2014.
  Higgins et al. beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework. ICLR 2017.
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
  output_dir: str = common.flag("runs/beta_vae", "folder for checkpoints, history, results and figures")
  hidden_sizes: tuple = common.flag((100, 100), "hidden layer sizes of the encoder and decoder MLPs", minimum=1)
  latent_size: int = common.flag(10, "number of latent dimensions (the traversal needs 2 or more)", minimum=2)
  beta: float = common.flag(0.01, "weight of the KL term (1 is the plain ELBO)", minimum=0)
  learning_rate: float = common.flag(1e-3, "Adam learning rate", above=0)
  batch_size: int = common.flag(64, "training batch size", minimum=1)
  steps: int = common.flag(1024, "training steps", minimum=1)
  train_examples: int = common.flag(60000, "number of MNIST training images used", minimum=1, maximum=60000)
  eval_examples: int = common.flag(10000, "number of test images for the final loss terms", minimum=1, maximum=10000)
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  SMOKE = dict(hidden_sizes=(16,), steps=16, train_examples=256, eval_examples=64)


def model_spec(config: Config) -> dict:
  """The model as a `tfpvi.specs` dict (saved beside the checkpoints for `python -m tfpvi.cli.evaluate`)."""
  hidden = list(config.hidden_sizes)
  return {
    "encoder": {
      "class": "GaussianMLP",
      "hidden_sizes": hidden,
      "latent_size": config.latent_size,
      "activation": "relu",
    },
    "decoder": {"class": "BernoulliMLP", "hidden_sizes": hidden, "output_shape": [28, 28, 1], "activation": "relu"},
    "prior": {"class": "standard_normal", "latent_size": config.latent_size},
    "data": {"name": "mnist", "format": "binary"},
  }


def check_folder(config: Config, out) -> None:
  common.check_spec(out, model_spec(config))


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folder)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, _ = common.binarized_test_set("mnist", config.eval_examples)
  tf.random.set_seed(config.seed)
  spec = model_spec(config)
  common.save_spec(out, spec)
  model = tfpvi.specs.build(spec)
  objective = functools.partial(tfpvi.objectives.elbo, beta=config.beta, return_terms=True)
  history = tfpvi.train.fit(
    model,
    objective,
    x_train,
    optimizer=snt.optimizers.Adam(config.learning_rate),
    steps=config.steps,
    batch_size=config.batch_size,
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(out),
    seed=config.seed,
    logging=tfpvi.train.Logging(every="powers_of_two"),
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=64),
  )
  terms = tfpvi.objectives.elbo(model, x_test, beta=config.beta, seed=[config.seed, 1], return_terms=True)
  metrics = {
    "final_train_loss": float(history["loss"].iloc[-1]),
    "test_reconstruction_nats": float(-np.mean(terms["log_likelihood"])),
    "test_kl_nats": float(np.mean(terms["kl"])),
    "test_beta_elbo": float(np.mean(terms["objective"])),
    "test_elbo": float(np.mean(terms["log_likelihood"] - terms["kl"])),
  }
  tfpvi.plot.loss_curves(
    history,
    title=f"training loss = reconstruction + {config.beta:g} x KL (nats per image)",
    path=str(out / "loss_curves.png"),
  )
  tfpvi.plot.reconstructions(model, x_test[:5], num_examples=5, path=str(out / "reconstructions.png"))
  tfpvi.plot.latent_traversal(model, num=10, span=1.0, path=str(out / "traversal.png"))
  common.write_results(out, config, metrics, started, trained={"model": common.trained_record(history, config.steps)})
  common.say(
    f"beta-VAE, test and training metrics (nats per image):\n{common.metrics_table(metrics)}\n"
    f"results and figures in {out}/"
  )
  return metrics


if __name__ == "__main__":
  common.run(main)
