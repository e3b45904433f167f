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

import numpy as np

import tfpvi
from experiments import common


@dataclasses.dataclass(frozen=True)
class Config(common.Latent2DConfig):
  """latent_2d's flags (the model, data and optimizer are shared with mc_samples, in `common`)."""


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=common.check_latent_2d_folder)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, labels = common.binarized_test_set("mnist", config.eval_examples)
  model, history = common.train_latent_2d(config, x_train, out, num_samples=1)
  test_elbo = tfpvi.objectives.elbo(model, x_test, seed=[config.seed, 1])
  metrics = {"final_train_loss": float(history["loss"].iloc[-1]), "test_elbo": float(np.mean(test_elbo))}
  tfpvi.plot.loss_curves(
    history, title="training loss = reconstruction + KL (nats per image)", path=str(out / "loss_curves.png")
  )
  tfpvi.plot.latent_scatter(model, x_test, labels, path=str(out / "latent_scatter.png"))
  tfpvi.plot.latent_manifold(model, num=15, path=str(out / "manifold.png"))
  trained = {"model": common.trained_record(history, common.latent_2d_steps(config, len(x_train)))}
  common.write_results(out, config, metrics, started, trained=trained)
  common.say(
    f"latent_2d, test and training metrics (nats per image):\n{common.metrics_table(metrics)}\n"
    f"results and figures in {out}/"
  )
  return metrics


if __name__ == "__main__":
  common.run(main)
