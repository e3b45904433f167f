"""Monte Carlo sample sizes 1, 5 and 25 through broadcasting (after the Monte Carlo sample-size blog post).

The latent_2d model (after the Keras VAE tutorial: 2 latents, [256] ReLU MLPs, RMSprop, batch 100) trained with the
ELBO estimated from S = 1, 5, 25 posterior samples per example. The samples are a leading
dimension [S, B, 2] that broadcasts through the decoder in one call. Figures: the training losses
of the three runs on one plot (stability), and the blog post's 5x5 grid of reconstructions of one test
digit from 25 posterior samples.

    python -m experiments.mc_samples --output_dir runs/mc_samples

References:
  Kingma & Welling. Auto-Encoding Variational Bayes. ICLR 2014 (S = 1 suffices for batch ~100).
"""

from __future__ import annotations

import dataclasses

import numpy as np

import tfpvi
from experiments import common


@dataclasses.dataclass(frozen=True)
class Config(common.Latent2DConfig):
  """latent_2d's model, data and optimizer, trained once per Monte Carlo sample size."""

  output_dir: str = common.flag("runs/mc_samples", "folder for results and figures, one sub-folder per sample size")
  mc_samples: tuple = common.flag((1, 5, 25), "Monte Carlo sample sizes S of the ELBO, one model each", minimum=1)

  def check(self) -> None:
    super().check()
    if len(set(self.mc_samples)) != len(self.mc_samples):
      raise ValueError(f"--mc_samples lists a sample size twice: {self.mc_samples}")


def check_folders(config: Config, out) -> None:
  for num_samples in config.mc_samples:
    common.check_latent_2d_folder(config, out / f"S{num_samples}")


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folders)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, _ = common.binarized_test_set("mnist", config.eval_examples)
  histories, metrics, model, trained = {}, {}, None, {}
  for num_samples in config.mc_samples:
    model, history = common.train_latent_2d(config, x_train, out / f"S{num_samples}", num_samples)
    histories[f"S = {num_samples}"] = history
    trained[f"S{num_samples}"] = common.trained_record(history, common.latent_2d_steps(config, len(x_train)))
    elbo = tfpvi.objectives.elbo(model, x_test, num_samples=num_samples, seed=[config.seed, 1])
    metrics[f"S{num_samples}"] = {
      "test_elbo": float(np.mean(elbo)),
      "final_train_loss": float(history["loss"].iloc[-1]),
      "train_loss_std_last_quarter": float(history["loss"].iloc[-len(history) // 4 :].std()),
      "train_seconds": float(history["wall_time"].iloc[-1]),
    }
  tfpvi.plot.loss_curves(
    histories,
    terms=["loss"],
    log_x=False,
    log_y=False,
    title="negative ELBO during training, by MC samples S",
    path=str(out / "loss_curves.png"),
  )
  tfpvi.plot.reconstruction_distribution(
    model, x_test[0], grid=5, seed=(config.seed, 2), path=str(out / "reconstruction_distribution.png")
  )
  common.write_results(out, config, metrics, started, trained=trained)
  common.say(
    f"mc_samples, test and training metrics (nats per image):\n{common.metrics_table(metrics)}\n"
    f"results and figures in {out}/"
  )
  return metrics


if __name__ == "__main__":
  common.run(main)
