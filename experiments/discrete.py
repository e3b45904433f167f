"""Discrete latents on dynamically binarized MNIST: Gumbel-softmax / Concrete vs VIMCO vs a Gaussian VAE.

Model (Jang et al. 2017, section 4.2): 30 categorical variables of 10 classes, encoder 784-512-256-
(30 x 10) and decoder (30 x 10)-256-512-784 with ReLU, Bernoulli p(x|z), a uniform categorical prior.
Models (--models):
- gumbel: Gumbel-softmax q on the simplex, Jang et al.'s objective (`tfpvi.discrete.elbo_categorical_kl`:
  relaxed samples for log p(x|z), the exact categorical KL);
- gumbel_st: the same with the straight-through estimator (one-hot decoder input, relaxed gradients);
- concrete: Maddison et al.'s form, q and prior as ExpRelaxedOneHotCategorical in log space (prior
  temperature --prior_temperature), the ELBO with a Monte Carlo KL (`tfpvi.objectives.elbo`);
- vimco: exact one-hot categorical q trained by IWAE with the VIMCO estimator (K = --vimco_samples);
- gaussian: a Gaussian VAE with --gaussian_latent dimensions (default 30: one per categorical variable).
The relaxed models' temperature follows tau = max(0.5, exp(-r t)) (--anneal_rate r, updated every
--anneal_every steps; Jang et al. use r in {1e-5, 1e-4} for far longer runs), logged in history.csv.
Evaluation: the discrete ELBO (one-hot z ~ Cat(softmax(logits)), the decoder on one-hot inputs), which
is what every discrete model is judged by, whatever relaxation trained it; and test log p(x) by
importance sampling with k = --eval_samples, on --eval_examples statically binarized test images.
Every --eval_every steps the discrete test ELBO is also logged (the negative ELBO curves).

    python -m experiments.discrete --output_dir runs/discrete    # CPU default, about 15 minutes on 2 cores

References:
  Jang, Gu, Poole. Categorical reparameterization with Gumbel-softmax. ICLR 2017.
  Maddison, Mnih, Teh. The Concrete distribution. ICLR 2017.
  Mnih, Rezende. Variational inference for Monte Carlo objectives. ICML 2016.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time
import weakref

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi
from experiments import common
from tfpvi.models import discrete

tfd = tfp.distributions
MODELS = ("gumbel", "gumbel_st", "concrete", "vimco", "gaussian")
RELAXED = ("gumbel", "gumbel_st", "concrete")


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/discrete", "folder for results, figures and one sub-folder per model")
  models: tuple = common.flag(MODELS, "models to train", choices=MODELS)
  num_variables: int = common.flag(30, "categorical latent variables N", minimum=1)
  num_classes: int = common.flag(10, "classes per variable K", minimum=2)
  gaussian_latent: int = common.flag(30, "latent dimensions of the Gaussian VAE", minimum=1)
  hidden_sizes: tuple = common.flag((512, 256), "encoder hidden sizes (the decoder mirrors them)", minimum=1)
  anneal_rate: float = common.flag(1e-3, "r in tau = max(min_temperature, exp(-r t))", minimum=0)
  anneal_every: int = common.flag(100, "steps between temperature updates", minimum=1)
  min_temperature: float = common.flag(0.5, "lowest temperature", above=0)
  prior_temperature: float = common.flag(0.5, "temperature of the concrete model's relaxed prior", above=0)
  vimco_samples: int = common.flag(5, "samples K of the VIMCO model's IWAE bound", minimum=2)
  batch_size: int = common.flag(100, "training batch size", minimum=1)
  learning_rate: float = common.flag(1e-3, "Adam learning rate", above=0)
  steps: int = common.flag(2000, "training steps per model", minimum=1)
  time_budget: float = common.flag(
    0.0, "if > 0, seconds of training per model (a step is timed on this machine), replacing --steps", minimum=0
  )
  eval_every: int = common.flag(250, "steps between discrete test ELBO estimates during training", minimum=1)
  curve_examples: int = common.flag(200, "test images for the ELBO curves", minimum=1, maximum=10000)
  elbo_samples: int = common.flag(10, "one-hot samples per image for the discrete ELBO", minimum=1)
  eval_samples: int = common.flag(1000, "importance samples per test image for the final log p(x)", minimum=1)
  eval_examples: int = common.flag(200, "test images for the final evaluation", minimum=1, maximum=10000)
  eval_batch: int = common.flag(50, "test images per evaluation batch", minimum=1)
  eval_chunk: int = common.flag(500, "importance samples computed at once (memory)", minimum=1)
  steps_per_call: int = common.flag(50, "training steps per compiled call (speed only)", minimum=1)
  train_examples: int = common.flag(60000, "number of MNIST training images used", minimum=1, maximum=60000)
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  SMOKE = dict(
    num_variables=3,
    num_classes=4,
    gaussian_latent=3,
    hidden_sizes=(16,),
    anneal_rate=0.05,
    anneal_every=2,
    batch_size=20,
    steps=20,
    eval_every=10,
    curve_examples=10,
    elbo_samples=2,
    eval_samples=20,
    eval_examples=10,
    eval_batch=10,
    eval_chunk=10,
    steps_per_call=5,
    train_examples=300,
  )

  def check(self) -> None:
    if len(set(self.models)) != len(self.models):
      raise ValueError(f"--models lists a model twice: {','.join(self.models)}")


@dataclasses.dataclass
class Built:
  model: tfpvi.VAE  # what is trained
  objective: object
  objective_kwargs: dict
  evaluation_model: tfpvi.VAE  # exact one-hot latents (or the Gaussian model itself)


def model_spec(name: str, config: Config) -> dict:
  """The spec (`tfpvi.specs`) of one model as trained, saved beside its checkpoints with its test data.

  `python -m tfpvi.cli.evaluate` rebuilds it and estimates log p(x) with exact one-hot latents (as
  `Built.evaluation_model` does here).
  """
  n, k, hidden = config.num_variables, config.num_classes, list(config.hidden_sizes)
  data = {"name": "mnist", "format": "binary"}
  if name == "gaussian":
    d = config.gaussian_latent
    return {
      "encoder": {"class": "GaussianMLP", "hidden_sizes": hidden, "latent_size": d},
      "decoder": {"class": "BernoulliMLP", "hidden_sizes": hidden[::-1], "output_shape": [28, 28, 1]},
      "prior": {"class": "standard_normal", "latent_size": d},
      "data": data,
    }
  kind = {"gumbel": "relaxed", "gumbel_st": "relaxed", "concrete": "exp_relaxed", "vimco": "categorical"}[name]
  encoder = {"class": "GumbelSoftmaxMLP", "hidden_sizes": hidden, "num_variables": n, "num_classes": k, "kind": kind}
  decoder = {"class": "BernoulliMLP", "hidden_sizes": hidden[::-1], "output_shape": [28, 28, 1], "latent_ndims": 2}
  prior = {"class": "one_hot", "num_variables": n, "num_classes": k}
  if name == "concrete":
    decoder = {"class": "RelaxedInput", "decoder": decoder, "log_space": True}
    prior = {"class": "relaxed", "num_variables": n, "num_classes": k, "temperature": config.prior_temperature}
  elif name != "vimco":
    decoder = {"class": "RelaxedInput", "decoder": decoder, "log_space": False, "straight_through": name == "gumbel_st"}
  return {"encoder": encoder, "decoder": decoder, "prior": prior, "data": data}


def build(name: str, config: Config) -> Built:
  model = tfpvi.specs.build(model_spec(name, config))
  if name == "gaussian":
    return Built(model, tfpvi.objectives.elbo, dict(num_samples=1), model)
  encoder = model.encoder
  decoder = model.decoder.decoder if isinstance(model.decoder, discrete.RelaxedInput) else model.decoder
  evaluation_model = tfpvi.VAE(
    lambda x: tfd.Independent(tfd.OneHotCategorical(logits=encoder.logits(x), dtype=tf.float32), 1),
    decoder,
    discrete.one_hot_prior(config.num_variables, config.num_classes),
  )
  if name == "vimco":
    return Built(
      model, tfpvi.objectives.iwae, dict(num_samples=config.vimco_samples, gradient_estimator="vimco"), evaluation_model
    )
  schedule = discrete.temperature_schedule(config.anneal_rate, config.min_temperature, every=config.anneal_every)
  if name == "concrete":
    objective = discrete.with_temperature(tfpvi.objectives.elbo)
  else:
    objective = discrete.with_temperature(discrete.elbo_categorical_kl)
  return Built(model, objective, dict(num_samples=1, temperature=schedule), evaluation_model)


def discrete_elbo(model, x: np.ndarray, num_samples: int, batch: int, seed: int) -> float:
  """Mean over x of (1/S) sum_s log w_s: the ELBO with one-hot (or Gaussian) z and a Monte Carlo KL."""
  compiled = _compiled_elbo(model, num_samples)
  total = sum(
    float(compiled(tf.constant(x[i : i + batch], tf.float32), tf.constant([seed, i]))) for i in range(0, len(x), batch)
  )
  return total / len(x)


def _compiled_elbo(model, num_samples):
  """One compiled batch ELBO sum per model (tfpvi's compile cache; its own trace count)."""
  reference = weakref.ref(model)

  def batch_sum(x, seed):
    return tf.reduce_sum(tf.reduce_mean(reference().log_weights(x, num_samples, seed=seed), axis=0))

  return tfpvi.xla.cached(model, ("elbo", num_samples), lambda: tfpvi.xla.function(batch_sum, reduce_retracing=True))


SETTINGS = (
  "num_variables",
  "num_classes",
  "gaussian_latent",
  "hidden_sizes",
  "anneal_rate",
  "anneal_every",
  "min_temperature",
  "prior_temperature",
  "vimco_samples",
  "batch_size",
  "learning_rate",
  "steps",
  "time_budget",
  "train_examples",
  "seed",
)


def settings_for(name: str, config: Config) -> dict:
  return {"model": name, **{s: getattr(config, s) for s in SETTINGS}}


def check_folders(config: Config, out: pathlib.Path) -> None:
  for name in config.models:
    common.check_plan(out / name, settings_for(name, config))
    common.check_spec(out / name, model_spec(name, config))


def train_one(name: str, config: Config, x_train, x_curve, run_dir: pathlib.Path):
  tf.random.set_seed(config.seed)
  common.save_spec(run_dir, model_spec(name, config))  # so `python -m tfpvi.cli.evaluate run_dir` works
  built = build(name, config)
  fit = functools.partial(
    tfpvi.train.fit,
    built.model,
    functools.partial(built.objective, return_terms=True),
    x_train,
    optimizer=snt.optimizers.Adam(config.learning_rate),
    batch_size=config.batch_size,
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(run_dir),
    seed=config.seed,
    objective_kwargs=built.objective_kwargs,
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=config.steps_per_call),
  )
  steps = common.plan_steps(run_dir, settings_for(name, config), lambda: common.steps_for_budget(config, fit))

  def eval_fn(_):
    started = time.perf_counter()
    value = discrete_elbo(built.evaluation_model, x_curve, config.elbo_samples, config.eval_batch, config.seed)
    return {"test_elbo": value, "eval_seconds": time.perf_counter() - started}

  history = fit(
    steps=steps,
    logging=tfpvi.train.Logging(every=max(1, steps // 100)),
    evaluation=tfpvi.train.Evaluation(every=config.eval_every, metrics=eval_fn),
  )
  return built, history, steps


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folders)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, _ = common.binarized_test_set("mnist", max(config.eval_examples, config.curve_examples))
  x_eval, x_curve = x_test[: config.eval_examples], x_test[: config.curve_examples]
  common.say(f"tfpvi discrete: {', '.join(config.models)}; results in {out}/")
  metrics, histories, record, samples = {}, {}, {}, {}
  for name in config.models:
    common.say(f"[{name}] training ...")
    built, history, steps = train_one(name, config, x_train, x_curve, out / name)
    record[name] = common.trained_record(history, steps)
    result = common.evaluate_log_px(
      built.evaluation_model, x_eval, config.eval_samples, config.eval_batch, config.eval_chunk, config.seed
    )
    result["test_elbo"] = discrete_elbo(
      built.evaluation_model, x_eval, config.elbo_samples, config.eval_batch, config.seed
    )
    result.update(
      train_steps=record[name]["trained_steps"],
      train_seconds=float(common.training_seconds(history)[-1]),
      final_train_objective=float(-history["loss"].iloc[-1]),
    )
    if "temperature" in history:
      result["final_temperature"] = float(history["temperature"].iloc[-1])
    metrics[name], histories[name] = result, history
    samples[name] = built.evaluation_model.sample(64, seed=tf.constant([config.seed, 3])).numpy()
    common.say(
      f"[{name}] discrete test ELBO = {result['test_elbo']:.2f}, log p(x) = {result['test_log_px']:.2f} "
      f"nats (k={config.eval_samples})"
    )
  plot_curves(histories, out / "elbo_curves.png")
  plot_temperature(histories, out / "temperature.png")
  plot_samples(samples, out / "samples.png")
  common.write_results(out, config, metrics, started, trained=record)
  print(table(metrics))
  common.say(f"results: {out}/results.json; figures: {out}/elbo_curves.png, temperature.png, samples.png")
  return metrics


def plot_curves(histories: dict, path: pathlib.Path) -> None:
  plt = common.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for name, history in histories.items():
    axes[0].plot(history["step"], history["loss"], label=name)
    rows = history["test_elbo"].notna().to_numpy()
    axes[1].plot(history["step"][rows], -history["test_elbo"][rows], marker="o", label=name)
  axes[0].set(xlabel="step", ylabel="nats", title="negative training objective (each model's own)")
  axes[1].set(xlabel="step", ylabel="nats", title="negative test ELBO (one-hot z; the Gaussian VAE: its own ELBO)")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return fig


def plot_temperature(histories: dict, path: pathlib.Path) -> None:
  plt = common.pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.5))
  for name, history in histories.items():
    if "temperature" in history:
      ax.plot(history["step"], history["temperature"], marker=".", label=name)
  ax.set(xlabel="step", ylabel="temperature tau", title="tau = max(0.5, exp(-r t))")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_samples(samples: dict, path: pathlib.Path) -> None:
  plt = common.pyplot()
  fig, axes = plt.subplots(1, len(samples), figsize=(3 * len(samples), 3.3), squeeze=False)
  for ax, (name, images) in zip(axes[0], samples.items()):
    grid = images[:64, :, :, 0].reshape(8, 8, 28, 28).transpose(0, 2, 1, 3).reshape(8 * 28, 8 * 28)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_title(name)
    ax.axis("off")
  fig.suptitle("samples: z ~ prior (one-hot or Gaussian), pixel probabilities")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def table(metrics: dict) -> str:
  lines = [f"{'model':<10} {'steps':>6} {'train s':>8} {'test ELBO':>10} {'log p(x)':>9} {'final tau':>9}"]
  for name, m in metrics.items():
    tau = m.get("final_temperature")
    lines.append(
      f"{name:<10} {m['train_steps']:>6} {m['train_seconds']:>8.0f} {m['test_elbo']:>10.2f} "
      f"{m['test_log_px']:>9.2f} {'-' if tau is None else f'{tau:.3f}':>9}"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  common.run(main)
