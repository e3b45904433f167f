"""log p(x) of a trained MNIST VAE by importance sampling and by AIS, against compute; BDMC bounds.

A VAE with Burda et al.'s one-stochastic-layer architecture (784-200-200-50, tanh, Bernoulli
p(x|z), N(0, I) prior) is trained with the ELBO (Adam, batch 100, dynamic binarization). On the first
--eval_examples statically binarized test images, log p(x) is then estimated
- by importance sampling with q(z|x) as proposal, K in --is_samples: the IWAE_K bounds, K = 5000 being
  Burda et al.'s evaluation;
- by annealed importance sampling from the prior with HMC transitions (10 leapfrog steps, step size
  adapted towards 0.65 acceptance, sigmoidal schedule, --ais_chains chains), T in --ais_steps: Wu et al.'s
  protocol (they use 16 chains and up to 10,000 steps).
Both are stochastic lower bounds, so the higher is the tighter. Compute is counted as evaluations of
p(x, z) per image (K for IS, chains * T * (leapfrog steps + 2) for AIS). Then bidirectional Monte Carlo
(Grosse et al.) on --bdmc_examples images simulated from the model brackets their log p(x) between
forward and reverse AIS, at each T: the gap measures how far AIS with T steps can be from the truth.

    python -m experiments.ais --output_dir runs/ais

References:
  Wu, Burda, Salakhutdinov, Grosse. On the quantitative analysis of decoder-based generative models.
    ICLR 2017.
  Grosse, Ghahramani, Adams. Sandwiching the marginal likelihood using bidirectional Monte Carlo. 2015.
  Burda, Grosse, Salakhutdinov. Importance weighted autoencoders. ICLR 2016.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import numpy as np
import pandas as pd
import plotnine as gg
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import common

NUM_LEAPFROG_STEPS = 10


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/ais", "folder for results, figures and the trained model (model/)")
  hidden_sizes: tuple = common.flag((200, 200), "hidden layer sizes of the encoder and decoder MLPs", minimum=1)
  latent_size: int = common.flag(50, "number of latent dimensions", minimum=1)
  learning_rate: float = common.flag(1e-3, "Adam learning rate", above=0)
  batch_size: int = common.flag(100, "training batch size", minimum=1)
  steps: int = common.flag(30000, "training steps (ELBO)", minimum=1)
  train_examples: int = common.flag(60000, "number of training images used", minimum=1, maximum=60000)
  eval_examples: int = common.flag(100, "test images evaluated by every estimator", minimum=1, maximum=10000)
  eval_batch: int = common.flag(100, "test images per evaluation batch", minimum=1)
  is_samples: tuple = common.flag((1, 10, 100, 1000, 5000), "importance samples K of the IS estimates", minimum=1)
  ais_steps: tuple = common.flag((10, 100, 1000), "annealing steps T of the AIS estimates and of BDMC", minimum=1)
  ais_chains: int = common.flag(16, "AIS chains per image", minimum=1)
  bdmc_examples: int = common.flag(50, "images simulated from the model for BDMC", minimum=1)
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  SMOKE = dict(
    hidden_sizes=(16,),
    latent_size=4,
    steps=20,
    train_examples=300,
    eval_examples=6,
    eval_batch=3,
    is_samples=(1, 30),
    ais_steps=(2, 5),
    ais_chains=3,
    bdmc_examples=4,
  )


def model_spec(config) -> dict:
  hidden = list(config.hidden_sizes)
  return {
    "encoder": {
      "class": "GaussianMLP",
      "hidden_sizes": hidden,
      "latent_size": config.latent_size,
      "activation": "tanh",
    },
    "decoder": {"class": "BernoulliMLP", "hidden_sizes": hidden, "output_shape": [28, 28, 1], "activation": "tanh"},
    "prior": {"class": "standard_normal", "latent_size": config.latent_size},
    "data": {"name": "mnist", "format": "binary"},
  }


def check_folders(config, out) -> None:
  common.check_spec(out / "model", model_spec(config))


def train(config, out):
  spec = model_spec(config)
  common.save_spec(out / "model", spec)
  tf.random.set_seed(config.seed)
  model = tfpvi.specs.build(spec)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  common.say(f"training the VAE, {config.steps} steps ...")
  history = tfpvi.train.fit(
    model,
    functools.partial(tfpvi.objectives.elbo, return_terms=True),
    x_train,
    optimizer=snt.optimizers.Adam(config.learning_rate),
    steps=config.steps,
    batch_size=config.batch_size,
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(out / "model"),
    seed=config.seed,
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=50),
  )
  return model, history


def evaluate(model, x_test, config) -> list[dict]:
  """One row per estimator setting: mean log p(x), paired quantities and cost."""
  rows, per_image = [], {}
  settings = [("importance sampling", k, "importance", k) for k in config.is_samples]
  settings += [
    ("AIS", t, tfpvi.ais.AIS(num_steps=t, num_chains=config.ais_chains, num_leapfrog_steps=NUM_LEAPFROG_STEPS), None)
    for t in config.ais_steps
  ]
  for method, size, estimator, num_samples in settings:
    started = time.time()
    summary, per_example = tfpvi.evaluation.evaluate_dataset(
      model,
      x_test,
      num_samples or 1,
      estimator=estimator,
      batch_size=config.eval_batch,
      chunk_size=min(500, num_samples or 1),
      seed=config.seed,
      progress=False,
    )
    seconds = time.time() - started
    cost = size if method == "importance sampling" else config.ais_chains * size * (NUM_LEAPFROG_STEPS + 2)
    per_image[(method, size)] = per_example["log_px"]
    # One sample has no Monte Carlo error estimate (the delta method gives 0): NaN, not 0.
    monte_carlo_se = summary["monte_carlo_standard_error"] if size > 1 or method == "AIS" else float("nan")
    rows.append(
      {
        "method": method,
        "setting": f"K = {size}" if num_samples else f"T = {size}",
        "size": size,
        "log_px": summary["log_px"],
        "monte_carlo_se": monte_carlo_se,
        "evaluations_per_image": cost,
        "seconds": seconds,
        "ess_mean": summary["ess_mean"],
      }
    )
    common.say(f"  {method:20s} {rows[-1]['setting']:9s} log p(x) {summary['log_px']:9.3f} nats ({seconds:.1f} s)")
  best = max(per_image, key=lambda key: np.mean(per_image[key]))
  for row in rows:  # paired with the tightest estimate, on the same images
    difference = per_image[(row["method"], row["size"])] - per_image[best]
    row["below_best"] = float(-difference.mean()) + 0.0  # + 0.0: no "-0.000" for the best row itself
    row["below_best_se"] = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 0.0
  return rows


def run_bdmc(model, config) -> list[dict]:
  rows = []
  for num_steps in config.ais_steps:
    started = time.time()
    result = tfpvi.ais.bdmc(
      model,
      config.bdmc_examples,
      num_steps=num_steps,
      num_chains=config.ais_chains,
      num_leapfrog_steps=NUM_LEAPFROG_STEPS,
      seed=config.seed,
      progress=False,
    )
    gap = result.gap.numpy()
    rows.append(
      {
        "num_steps": num_steps,
        "lower": float(np.mean(result.lower)),
        "upper": float(np.mean(result.upper)),
        "gap": float(gap.mean()),
        "gap_se": float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else 0.0,
        "seconds": time.time() - started,
      }
    )
    common.say(
      f"  BDMC T = {num_steps:5d}: lower {rows[-1]['lower']:.3f}, upper {rows[-1]['upper']:.3f}, "
      f"gap {rows[-1]['gap']:.3f} +- {rows[-1]['gap_se']:.3f} nats"
    )
  return rows


def figure(estimates: pd.DataFrame, bdmc: pd.DataFrame, out, config) -> None:
  compute = (
    gg.ggplot(estimates, gg.aes("evaluations_per_image", "log_px", color="method", shape="method"))
    + gg.geom_line()
    + gg.geom_point(size=2.5)
    + gg.geom_errorbar(gg.aes(ymin="log_px - 2 * monte_carlo_se", ymax="log_px + 2 * monte_carlo_se"), width=0.05)
    + gg.geom_text(gg.aes(label="setting"), nudge_y=0.9, size=8, show_legend=False)
    + gg.scale_x_log10()
    + gg.labs(
      x="evaluations of p(x, z) per image (log scale)",
      y="mean test log p(x), nats (higher is tighter)",
      color="",
      shape="",
      title=f"Estimates of log p(x) against compute, {config.eval_examples} MNIST test images",
      caption="IS: K samples from q(z|x). AIS: T annealing steps from the prior, "
      f"{config.ais_chains} chains, HMC with {NUM_LEAPFROG_STEPS} leapfrog steps.\n"
      "Both are stochastic lower bounds. Error bars: +-2 Monte Carlo standard errors (none for K = 1).",
    )
    + gg.theme_bw()
    + gg.theme(figure_size=(8, 4.8), legend_position="top")
  )
  tfpvi.plot.save(compute, str(out / "estimates_vs_compute.png"))
  long = pd.concat(
    [
      bdmc.assign(bound="lower (forward AIS)", value=bdmc["lower"]),
      bdmc.assign(bound="upper (reverse AIS)", value=bdmc["upper"]),
    ]
  )
  gap_labels = bdmc.assign(
    label=[f"gap {g:.2f} +- {se:.2f}" for g, se in zip(bdmc["gap"], bdmc["gap_se"])],
    value=bdmc["lower"] - 0.04 * (bdmc["upper"].max() - bdmc["lower"].min() + 1.0),
  )
  sandwich = (
    gg.ggplot(long, gg.aes("num_steps", "value", color="bound", shape="bound"))
    + gg.geom_line()
    + gg.geom_point(size=2.5)
    + gg.geom_text(gg.aes("num_steps", "value", label="label"), data=gap_labels, inherit_aes=False, size=8, va="top")
    + gg.scale_x_log10(expand=(0.12, 0))
    + gg.labs(
      x="AIS steps T (log scale)",
      y="mean log p(x) of simulated images, nats",
      color="",
      shape="",
      title=f"BDMC: the bounds close in as T grows ({config.bdmc_examples} simulated images)",
      caption="The true mean log p(x) lies between the two curves (in expectation); their gap, with its "
      "standard error over the images,\nbounds AIS's error on data like these.",
    )
    + gg.theme_bw()
    + gg.theme(figure_size=(8, 4.5), legend_position="top")
  )
  tfpvi.plot.save(sandwich, str(out / "bdmc.png"))


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folders)
  model, history = train(config, out)
  x_test, _ = common.binarized_test_set("mnist", config.eval_examples)
  common.say(f"estimating log p(x) of {len(x_test)} test images ...")
  estimates = pd.DataFrame(evaluate(model, x_test, config))
  common.say(f"BDMC on {config.bdmc_examples} simulated images ...")
  bdmc = pd.DataFrame(run_bdmc(model, config))
  figure(estimates, bdmc, out, config)
  records = [
    {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    for row in estimates.to_dict("records")
  ]  # JSON has no NaN: an unknown error is null
  metrics = {"estimates": records, "bdmc": bdmc.to_dict("records"), "final_train_loss": float(history["loss"].iloc[-1])}
  common.write_results(out, config, metrics, started, trained={"model": common.trained_record(history, config.steps)})
  columns = [
    "method",
    "setting",
    "log_px",
    "monte_carlo_se",
    "below_best",
    "below_best_se",
    "evaluations_per_image",
    "seconds",
  ]
  print(estimates[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
  print(bdmc.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
  common.say(f"results and figures in {out}/")
  return metrics


if __name__ == "__main__":
  common.run(main)
