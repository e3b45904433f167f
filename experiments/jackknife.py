"""Bias of IWAE-K and jackknife (JVI) estimates of log p(x) as K grows (Nowozin 2018).

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
import pathlib

import numpy as np
import pandas as pd
import plotnine as gg
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import common
from tfpvi.cli import evaluate


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/jackknife", "folder for results, the figure and (without --run_dir) the model")
  run_dir: str = common.flag(
    "", "a trained model's folder (holding run.json), e.g. runs/iwae/vae_k1; none: train one here", allow_empty=True
  )
  steps: int = common.flag(3000, "training steps of the model trained here (without --run_dir)", minimum=1)
  num_samples: tuple = common.flag((2, 4, 8, 16, 32, 64, 128), "sample sizes K of the estimates", minimum=2)
  orders: tuple = common.flag((0, 1, 2, 3), "jackknife orders (0 is the IWAE bound itself)", choices=(0, 1, 2, 3))
  replicates: int = common.flag(20, "independent estimates per test image and K", minimum=1)
  examples: int = common.flag(100, "number of test images", minimum=1, maximum=10000)
  reference_samples: int = common.flag(20000, "importance samples of the reference log p(x) per image", minimum=2)
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed")

  SMOKE = dict(steps=20, num_samples=(4, 8), replicates=3, examples=8, reference_samples=200)

  def check(self) -> None:
    if self.run_dir and not pathlib.Path(self.run_dir).is_dir():
      raise ValueError(
        f"--run_dir {self.run_dir} does not exist: expected a trained model's folder, e.g. runs/iwae/vae_k1."
      )
    if self.run_dir and not tfpvi.run_record.holds_model(self.run_dir):
      raise ValueError(
        f"--run_dir {self.run_dir} holds no {tfpvi.run_record.RECORD_FILE}: expected a trained "
        "model's folder, e.g. runs/iwae/vae_k1."
      )


def check_folder(config: Config, out) -> None:
  if not config.run_dir:
    common.check_spec(out / "model", common.burda_mlp_spec((200, 200), 50))


def trained_model(config: Config, out):
  """(model, test images, what was trained): the model of --run_dir, or a Burda VAE trained into output_dir/model."""
  if config.run_dir:
    model, spec = evaluate.restore(config.run_dir)
    return model, evaluate.test_images(spec, config.examples), {}
  spec = common.burda_mlp_spec((200, 200), 50)
  common.save_spec(out / "model", spec)
  tf.random.set_seed(config.seed)
  model = tfpvi.specs.build(spec)
  x_train, _ = common.mnist_like("mnist", "train")
  history = tfpvi.train.fit(
    model,
    functools.partial(tfpvi.objectives.elbo, return_terms=True),
    x_train,
    optimizer=snt.optimizers.Adam(1e-3),
    steps=config.steps,
    batch_size=100,
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(out / "model"),
    seed=config.seed,
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=50),
  )
  return model, evaluate.test_images(spec, config.examples), {"model": common.trained_record(history, config.steps)}


def bias_table(model, x, config: Config, reference: np.ndarray) -> pd.DataFrame:
  rows = []
  for k in config.num_samples:
    orders = [m for m in config.orders if m < k]

    def log_weights(x, seed, k=k):
      return model.log_weights(x, k, seed=seed)  # [K, B]

    log_weights = tfpvi.xla.function(log_weights, jit_compile=tfpvi.xla.resolve())  # one per K

    def estimates(r):
      # The exact jackknife (every subset, in chunks), eagerly on the compiled log weights.
      w = log_weights(tf.constant(x), tf.constant([config.seed, 1000 * k + r]))
      return np.stack([tfpvi.evaluation.jackknife(w, m).numpy() for m in orders])  # [orders, B]

    values = np.stack([estimates(r) for r in range(config.replicates)])  # [R, orders, B]
    errors = values - reference[None, None, :]
    for i, m in enumerate(orders):
      e = errors[:, i, :].ravel()
      rows.append(
        {
          "K": k,
          "order": m,
          "bias": float(e.mean()),
          "standard_error": float(e.std() / np.sqrt(e.size)),
          "rmse": float(np.sqrt(np.mean(e**2))),
        }
      )
  return pd.DataFrame(rows)


def bias_text(table: pd.DataFrame, reference_samples: int) -> str:
  """The bias table as printed: a title, then one row per K and one column per estimator, "bias (se)"."""
  cells = table.assign(cell=[f"{b:+.4f} ({s:.4f})" for b, s in zip(table["bias"], table["standard_error"])])
  pivot = cells.pivot(index="K", columns="label", values="cell").fillna("")
  pivot.columns.name = None  # no axis names ("label" over "K") in the header
  pivot.index.name = None
  pivot.insert(0, "K", pivot.index)
  body = pivot.to_string(index=False)
  return (
    f"bias of log p(x) estimates in nats per image, with its standard error in brackets (estimate - "
    f"reference; reference: importance sampling with K = {reference_samples}; below 0: underestimate; JVI "
    f"uses every subset of the K weights):\n{body}"
  )


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folder)
  model, x, trained = trained_model(config, out)
  summary, per_example = tfpvi.evaluation.evaluate_dataset(
    model, x, config.reference_samples, batch_size=min(50, len(x)), seed=config.seed + 1
  )
  reference = per_example["log_px"]
  table = bias_table(model, x, config, reference)
  table["label"] = table["order"].map(lambda m: "IWAE (order 0)" if m == 0 else f"JVI order {m}")
  dodge = gg.position_dodge(width=0.25)  # side by side, so the error bars of the orders stay apart
  plot = (
    gg.ggplot(table, gg.aes("K", "bias", color="label"))
    + gg.geom_hline(yintercept=0.0, color="grey")
    + gg.geom_line(position=dodge)
    + gg.geom_point(position=dodge)
    + gg.geom_errorbar(
      gg.aes(ymin="bias - 2 * standard_error", ymax="bias + 2 * standard_error"), width=0.2, position=dodge
    )
    + gg.scale_x_continuous(trans="log2", breaks=list(config.num_samples), labels=[str(k) for k in config.num_samples])
    + gg.labs(
      x="K (samples per estimate, log2 scale)",
      y="bias: estimate - reference (nats)",
      color="",
      title=f"bias of log p(x) estimates; reference from K = {config.reference_samples}",
      caption="error bars: +-2 standard errors over test images x replicates; below 0: underestimate",
    )
    + gg.theme_bw()
    + gg.theme(figure_size=(7, 4.5))
  )
  tfpvi.plot.save(plot, str(out / "bias.png"))
  table.to_csv(out / "bias.csv", index=False)
  metrics = {"reference": summary, "bias": table.drop(columns="label").to_dict("records")}
  common.write_results(out, config, metrics, started, trained=trained)
  common.say(bias_text(table, config.reference_samples))
  common.say(f"results and figure in {out}/")
  return metrics


if __name__ == "__main__":
  common.run(main)
