"""Bias of IWAE-K and jackknife (JVI) estimates of log p(x) as K grows (seed 004; Nowozin 2018).

On a trained model (--run_dir: a model folder from another experiment, e.g. runs/iwae/vae_k1;
otherwise a Burda-architecture VAE trained here for --steps), for test images we draw R
independent sets of K log weights and compute the IWAE bound (JVI order 0) and the JVI estimates
of orders 1..3 (`tfpvi.evaluation.jackknife`). The bias of each is its mean minus a reference
log p(x) from --reference_samples importance samples, averaged over images and replicates; its
standard error comes from the spread over images x replicates. Expect |bias| ~ 1/K for IWAE and
faster decay for higher orders, until variance dominates.

    python -m experiments.jackknife --output_dir runs/jackknife [--run_dir runs/iwae/vae_k1]
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import pandas as pd
import plotnine as gg
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import common, iwae
from tfpvi import evaluate


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = "runs/jackknife"
  run_dir: str = ""
  steps: int = 3000
  num_samples: tuple = (2, 4, 8, 16, 32, 64, 128)
  orders: tuple = (0, 1, 2, 3)
  replicates: int = 20
  examples: int = 100
  reference_samples: int = 20000
  seed: int = 0

  SMOKE = dict(steps=20, num_samples=(4, 8), replicates=3, examples=8, reference_samples=200)


def trained_model(config: Config, out):
  """The model of --run_dir, or a small Burda VAE trained (resumably) into output_dir/model."""
  if config.run_dir:
    model, spec = evaluate.restore(config.run_dir)
    return model, evaluate.test_images(spec, config.examples)
  burda = iwae.Config(hidden_sizes=(200, 200), latent_size=50)
  spec = iwae.burda_spec(burda)
  tfpvi.specs.save(out / "model", spec)
  tf.random.set_seed(config.seed)
  model = tfpvi.specs.build(spec)
  x_train, _ = common.mnist_like("mnist", "train")
  tfpvi.train.fit(
      model, functools.partial(tfpvi.objectives.elbo, return_terms=True), x_train,
      optimizer=snt.optimizers.Adam(1e-3), steps=config.steps, batch_size=100,
      preprocess=tfpvi.data.binarize_dynamic, output_dir=str(out / "model"), steps_per_call=50,
      seed=config.seed,
  )
  return model, evaluate.test_images(spec, config.examples)


def bias_table(model, x, config: Config, reference: np.ndarray) -> pd.DataFrame:
  rows = []
  for k in config.num_samples:
    orders = [m for m in config.orders if m < k]

    @tf.function(jit_compile=tfpvi.xla.resolve())
    def estimates(x, seed, k=k, orders=tuple(orders)):
      log_weights = model.log_weights(x, k, seed=seed)  # [K, B]
      return tf.stack([tfpvi.evaluation.jackknife(log_weights, m) for m in orders])  # [orders, B]

    values = np.stack([
        estimates(tf.constant(x), tf.constant([config.seed, 1000 * k + r])).numpy()
        for r in range(config.replicates)
    ])  # [R, orders, B]
    errors = values - reference[None, None, :]
    for i, m in enumerate(orders):
      e = errors[:, i, :].ravel()
      rows.append({"K": k, "order": m, "bias": float(e.mean()), "standard_error": float(e.std() / np.sqrt(e.size)),
                   "rmse": float(np.sqrt(np.mean(e**2)))})
  return pd.DataFrame(rows)


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__)
  model, x = trained_model(config, out)
  summary, per_example = tfpvi.evaluation.evaluate_dataset(
      model, x, config.reference_samples, batch_size=min(50, len(x)), seed=config.seed + 1
  )
  reference = per_example["log_px"]
  table = bias_table(model, x, config, reference)
  table["label"] = table["order"].map(lambda m: "IWAE (order 0)" if m == 0 else f"JVI order {m}")
  plot = (
      gg.ggplot(table.assign(abs_bias=table["bias"].abs()), gg.aes("K", "abs_bias", color="label"))
      + gg.geom_line()
      + gg.geom_point()
      + gg.scale_x_log10()
      + gg.scale_y_log10()
      + gg.labs(x="K (samples per estimate)", y="|bias| vs reference (nats)", color="",
                title=f"bias of log p(x) estimates; reference K = {config.reference_samples}")
      + gg.theme_bw()
      + gg.theme(figure_size=(7, 4.5))
  )
  tfpvi.plot.save(plot, str(out / "bias.png"))
  table.to_csv(out / "bias.csv", index=False)
  metrics = {"reference": summary, "bias": table.drop(columns="label").to_dict("records")}
  common.write_results(out, config, metrics, started)
  pivot = table.pivot(index="K", columns="label", values="bias")
  print(pivot.to_string(float_format=lambda v: f"{v:+.4f}"))
  common.say(f"results and figure in {out}/")
  return metrics


if __name__ == "__main__":
  main(sys.argv[1:])
