"""VAE vs IWAE on dynamically binarized MNIST (Burda et al. 2016, Table 1 protocol).

Model (--layers 1): 784-200-200-50 with tanh, a diagonal-Gaussian q(z|x), Bernoulli p(x|z), N(0, I)
prior. --layers 2: Burda et al.'s two stochastic layers, x -> 200-200 tanh -> z1 (100) -> 100-100
tanh -> z2 (50) and the mirror generative path, with the Bernoulli output bias started at the
logits of the training-set pixel means as in the authors' code (`tfpvi.models.hierarchical.burda_two_layer`;
q and p are joint distributions over {"z1", "z2"}). --prior mog or vamp replaces the one-layer
model's N(0, I) by a learned mixture of Gaussians or a VampPrior (`tfpvi.models.priors`; Tomczak &
Welling 2018), both with --prior_components components.
Objectives: the VAE bound with k samples (`tfpvi.objectives.elbo`) and the IWAE bound with k
samples (`tfpvi.objectives.iwae`), for the models listed in --models as OBJECTIVE:K.
Training: Adam (beta1 0.9, beta2 0.999, eps 1e-4), learning rate 1e-3 * 10^(-i/7) in stage
i = 0..7; Burda et al. run stage i for 3^i passes (3,280 in all) at batch 20. The CPU default
trains each model for a time budget instead (--time_budget, seconds per model: 300 / 360 / 660 for
VAE k=1 / IWAE k=5 / IWAE k=50, 22 minutes of training; a step is timed on this machine and the step
count fixed from it), at batch 100, and 20 for k = 50 (--batch_size; cheaper per image there), with
the stages equally long (--schedule_growth 1; 3 is Burda's), the first stage's rate 2e-3
(--learning_rate; Burda's 1e-3 is for 3,280 passes) and the output bias started at the
pixel-mean logits (--pixel_mean_bias, as in the authors' code); --gradient_estimator dreg trades
time per step for lower-variance encoder gradients. The networks compute in bfloat16 where the
machine has bfloat16 units (--precision auto; `tfpvi.precision`), the probabilities in float32.
--steps or --epochs give a fixed length instead; --full_protocol is Burda et al.'s schedule exactly
(batch 20, learning rate 1e-3, reparameterized gradients, float32, 3,280 passes).
Evaluation: test log p(x) by importance sampling with k = 5000 (`tfpvi.evaluation`) on the first
--eval_examples of the statically binarized test set (10,000 for the full protocol), and the
number of active units (Burda et al. section 5.2: Cov_x(E_q[u]) > 0.01).

    python -m experiments.iwae --output_dir runs/iwae               # CPU default, about 24 minutes in all
    python -m experiments.iwae --layers 2 --steps 6000 --eval_examples 500     # runs/iwae_2layer, ~10 min
    python -m experiments.iwae --layers 2 --time_budget 120 --eval_examples 500 --output_dir runs/iwae_2layer_time
    python -m experiments.iwae --prior vamp --models vae:1           # into runs/iwae_prior_vamp
    python -m experiments.iwae --full_protocol --output_dir runs/burda   # 3,280 passes per model

Each model's folder (e.g. runs/iwae_2layer/vae_k1) holds run.json and checkpoints, so
`python -m tfpvi.cli.evaluate runs/iwae_2layer/vae_k1` rebuilds and evaluates it.

References:
  Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
  Tomczak, Welling. VAE with a VampPrior. AISTATS 2018.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
import time
from typing import Optional

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi
from experiments import common

tfd = tfp.distributions

PASSES = 3280  # sum_i 3^i for i = 0..7
DEFAULT_BATCHES = (100, 100, 20)
# Seconds of training for the default models vae:1, iwae:5, iwae:50 (about 22 minutes; with the
# evaluation, about 25). Other model lists share the same total equally.
DEFAULT_BUDGETS = (300.0, 360.0, 660.0)
PRIORS = ("normal", "mog", "vamp")
# Burda et al. 2016, Table 1: test negative log-likelihood (nats) on MNIST, by (layers, objective, k).
# IWAE with k = 1 is the VAE with k = 1.
BURDA_NLL = {
  (1, "vae", 1): 86.76,
  (1, "iwae", 1): 86.76,
  (1, "iwae", 5): 85.54,
  (1, "iwae", 50): 84.78,
  (2, "vae", 1): 85.33,
  (2, "iwae", 1): 85.33,
  (2, "iwae", 5): 83.89,
  (2, "iwae", 50): 82.90,
}


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag(
    "",
    "folder for results, figures and one sub-folder per model; if empty, runs/iwae, runs/iwae_2layer "
    "with --layers 2, runs/iwae_prior_PRIOR with --prior mog or vamp",
    allow_empty=True,
  )
  layers: int = common.flag(
    1, "stochastic layers: 1 (784-200-200-50) or 2 (Burda et al.'s 784-200-200-100-100-100-50)", choices=(1, 2)
  )
  prior: str = common.flag(
    "normal",
    "p(z) of the one-layer model: N(0, I), a learned mixture of Gaussians (mog) or a VampPrior (vamp)",
    choices=PRIORS,
  )
  prior_components: int = common.flag(
    500, "components of the mog or vamp prior (pseudo-inputs of the VampPrior)", minimum=1
  )
  models: tuple = common.flag(
    ("vae:1", "iwae:5", "iwae:50"), "models to train, each OBJECTIVE:K with OBJECTIVE vae or iwae and K samples"
  )
  hidden_sizes: tuple = common.flag(
    (200, 200), "hidden layer sizes of the encoder and decoder MLPs (--layers 1)", minimum=1
  )
  latent_size: int = common.flag(50, "number of latent dimensions (--layers 1)", minimum=1)
  two_layer_latents: tuple = common.flag((100, 50), "sizes of z1 and z2 (--layers 2)", minimum=1)
  two_layer_hidden: tuple = common.flag(
    (200, 100), "width W1, W2 of the two hidden layers x -> W1-W1 -> z1 and z1 -> W2-W2 -> z2 (--layers 2)", minimum=1
  )
  batch_size: tuple = common.flag(
    DEFAULT_BATCHES,
    "training batch size, one for all models or one per --models entry (Burda et al.: 20); the default "
    "is 100, and 20 for k >= 50 (cheaper per image at that k on a CPU)",
    minimum=1,
  )
  steps: int = common.flag(
    0, "if > 0, training steps per model (the same for every model), replacing --time_budget", minimum=0
  )
  epochs: float = common.flag(0.0, "if > 0, passes over the training set per model, replacing --time_budget", minimum=0)
  time_budget: tuple = common.flag(
    DEFAULT_BUDGETS,
    "seconds of training per model, one value for all or one per --models entry (a step is timed on this "
    "machine and the step count fixed from it); the default fits the three default models into 22 minutes",
    above=0,
  )
  schedule_growth: float = common.flag(
    1.0, "length ratio of consecutive learning-rate stages (3 as in Burda et al. 2016; 1: equal stages)", above=0
  )
  learning_rate: float = common.flag(
    2e-3,
    "learning rate of the first stage, divided by 10^(1/7) per stage (Burda et al.: 1e-3; the time-budget "
    "default starts at 2e-3, which gains about a nat in a 300-second VAE)",
    above=0,
  )
  gradient_estimator: str = common.flag(
    "reparam",
    "gradient of the IWAE bound: reparam (Burda et al.'s) or dreg (doubly reparameterized, Tucker et al. "
    "2019: lower-variance encoder gradients as k grows, at about 1.5x the time per step); the VAE models "
    "use the ELBO's",
    choices=("reparam", "dreg"),
  )
  pixel_mean_bias: bool = common.flag(
    True, "start the Bernoulli output bias at the logits of the training-set pixel means (the authors' code)"
  )
  precision: str = common.flag(
    "auto",
    "float32, or mixed_bfloat16: the networks' matmuls in bfloat16, probabilities in float32 "
    "(tfpvi.precision); auto: mixed_bfloat16 where the machine has bfloat16 units (AVX512_BF16, AMX, "
    "A100 and later GPUs), else float32",
    choices=("auto", "float32", "mixed_bfloat16"),
  )
  eval_samples: int = common.flag(5000, "importance samples K per test image for log p(x)", minimum=1)
  eval_examples: int = common.flag(1000, "number of test images evaluated", minimum=1, maximum=10000)
  eval_batch: int = common.flag(100, "test images per evaluation batch", minimum=1)
  eval_chunk: int = common.flag(500, "importance samples computed at once (memory)", minimum=1)
  steps_per_call: int = common.flag(50, "training steps per compiled call (speed only)", minimum=1)
  train_examples: int = common.flag(60000, "number of MNIST training images used", minimum=1, maximum=60000)
  full_protocol: bool = common.flag(
    False,
    "Burda et al. 2016's schedule: 3,280 passes per model in 8 stages growing 3x from learning rate 1e-3, "
    "10,000 test images with batch 20, reparameterized gradients and float32 (replaces --steps, --epochs, "
    "--time_budget, --schedule_growth, --learning_rate, --eval_examples, --batch_size, --gradient_estimator, "
    "--precision)",
  )
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  EXCLUSIVE = (
    ("steps", "epochs", "time_budget", "full_protocol"),
    ("full_protocol", "schedule_growth"),
    ("full_protocol", "eval_examples"),
    ("full_protocol", "batch_size"),
    ("full_protocol", "gradient_estimator"),
    ("full_protocol", "precision"),
    ("full_protocol", "learning_rate"),
  )

  SMOKE = dict(
    models=("vae:1", "iwae:3"),
    hidden_sizes=(16,),
    latent_size=4,
    two_layer_latents=(4, 2),
    two_layer_hidden=(16, 8),
    prior_components=5,
    steps=20,
    train_examples=500,
    eval_samples=40,
    eval_examples=20,
    eval_batch=10,
    eval_chunk=16,
    steps_per_call=5,
  )

  def __post_init__(self):
    if self.full_protocol:  # Burda et al.'s own settings
      object.__setattr__(self, "schedule_growth", 3.0)
      object.__setattr__(self, "learning_rate", 1e-3)
      object.__setattr__(self, "batch_size", (20,))
      object.__setattr__(self, "gradient_estimator", "reparam")
      object.__setattr__(self, "precision", "float32")
      object.__setattr__(self, "eval_examples", 10000)

  def check(self) -> None:
    models = parse_models(self.models)
    for name, values, default in (
      ("time_budget", self.time_budget, DEFAULT_BUDGETS),
      ("batch_size", self.batch_size, DEFAULT_BATCHES),
    ):
      if len(values) not in (1, len(models)) and values != default:
        raise ValueError(
          f"--{name} takes one value for all models or one per model ({len(models)}), got "
          f"{len(values)}: {','.join(map(str, values))}"
        )
    if len(set(self.models)) != len(self.models):
      raise ValueError(f"--models lists a model twice: {','.join(self.models)}")
    if len(self.two_layer_latents) != 2 or len(self.two_layer_hidden) != 2:
      raise ValueError(
        f"--two_layer_latents and --two_layer_hidden take two values each, got "
        f"{','.join(map(str, self.two_layer_latents))} and {','.join(map(str, self.two_layer_hidden))}"
      )
    if self.layers == 2 and self.prior != "normal":
      raise ValueError(f"--prior {self.prior} is for the one-layer model; --layers 2 has its own learned p(z1 | z2)")
    if not self.output_dir:  # the default folder depends on the model (resolved here, once the flags are known)
      object.__setattr__(self, "output_dir", default_output_dir(self))


def default_output_dir(config: Config) -> str:
  if config.layers == 2:
    return "runs/iwae_2layer"
  return "runs/iwae" if config.prior == "normal" else f"runs/iwae_prior_{config.prior}"


def parse_models(models) -> list[tuple[str, int]]:
  parsed = []
  for spec in models:
    name, _, k = spec.partition(":")
    if name not in ("vae", "iwae") or not k.isdigit() or int(k) < 1:
      raise ValueError(f"--models entries must be vae:K or iwae:K with K >= 1, got {spec!r}.")
    parsed.append((name, int(k)))
  return parsed


def burda_spec(config: Config) -> dict:
  """The spec (`tfpvi.specs`) of the model the flags ask for, saved beside its checkpoints."""
  data = {"name": "mnist", "format": "binary"}
  if config.layers == 2:
    w1, w2 = config.two_layer_hidden
    return dict(
      tfpvi.hierarchical.two_layer_spec(latent_sizes=config.two_layer_latents, hidden_sizes=((w1, w1), (w2, w2))),
      data=data,
    )
  hidden = list(config.hidden_sizes)
  prior = {
    "normal": {"class": "standard_normal", "latent_size": config.latent_size},
    "mog": {
      "class": "MixtureOfGaussians",
      "latent_size": config.latent_size,
      "num_components": config.prior_components,
    },
    "vamp": {"class": "VampPrior", "input_shape": [28, 28, 1], "num_components": config.prior_components},
  }[config.prior]
  spec = common.burda_mlp_spec(hidden, config.latent_size, prior=prior)
  if config.pixel_mean_bias:  # the output-bias variable, started in build_model (restored from checkpoints)
    spec["decoder"]["pixel_mean_bias"] = True
  return spec


def build_model(config: Config, x_train: np.ndarray) -> tfpvi.VAE:
  """The model of `burda_spec(config)`, its output bias started at the pixel means' logits with --pixel_mean_bias.

  (The two-layer model always starts there, as in the authors' code.)
  """
  if config.layers == 2:
    w1, w2 = config.two_layer_hidden
    return tfpvi.hierarchical.burda_two_layer(
      train_images=x_train, latent_sizes=config.two_layer_latents, hidden_sizes=((w1, w1), (w2, w2))
    )
  return tfpvi.specs.build(burda_spec(config), train_images=x_train)


def objective_for(name: str, k: int, gradient_estimator: str = "reparam"):
  if name == "vae":
    return functools.partial(tfpvi.objectives.elbo, num_samples=k, return_terms=True)
  return functools.partial(
    tfpvi.objectives.iwae, num_samples=k, gradient_estimator=gradient_estimator, return_terms=True
  )


def learning_rate_schedule(total_steps: int, base: float, growth: float):
  """Burda's staircase: rate base * 10^(-i/7) in stage i, stage lengths proportional to growth^i."""
  weights = np.array([growth**i for i in range(8)])
  boundaries = tf.constant(np.cumsum(weights)[:-1] / weights.sum() * total_steps, tf.float32)

  def schedule(step):
    stage = tf.reduce_sum(tf.cast(step > boundaries, tf.float32))
    return base * tf.pow(10.0, -stage / 7.0)

  return schedule


# The settings that fix a model folder's step count and learning-rate schedule (its run.json "plan").
PLAN_SETTINGS = (
  "steps",
  "epochs",
  "time_budget",
  "full_protocol",
  "schedule_growth",
  "learning_rate",
  "batch_size",
  "train_examples",
  "gradient_estimator",
  "pixel_mean_bias",
  "precision",
)


def plan_request(config: Config) -> dict:
  return {name: getattr(config, name) for name in PLAN_SETTINGS}


def fixed_steps(config: Config, index: int = 0) -> int:
  """Steps per model when they do not depend on a time measurement."""
  steps_per_epoch = math.ceil(config.train_examples / batch_size(config, index))
  if config.full_protocol:
    return PASSES * steps_per_epoch
  if config.epochs > 0:
    return max(1, int(config.epochs * steps_per_epoch))
  return config.steps


def precision(config: Config) -> str:
  """--precision, with auto resolved for this machine (`tfpvi.precision.bfloat16_is_fast`)."""
  if config.precision != "auto":
    return config.precision
  return "mixed_bfloat16" if tfpvi.precision.bfloat16_is_fast() else "float32"


def batch_size(config: Config, index: int) -> int:
  """The training batch of the index-th model of --models."""
  sizes, models = config.batch_size, parse_models(config.models)
  if len(sizes) == 1:
    return int(sizes[0])
  if len(sizes) == len(models):
    return int(sizes[index])
  return 20 if models[index][1] >= 50 else 100  # the default, for another list of models


def budget_seconds(config: Config, index: int) -> float:
  """The training time of the index-th model of --models under --time_budget."""
  budgets, count = config.time_budget, len(config.models)
  if len(budgets) == 1:
    return float(budgets[0])
  if len(budgets) == count:
    return float(budgets[index])
  return sum(budgets) / count  # the default budgets, for another number of models: their total, shared


def timed(config: Config) -> bool:
  """Whether the step count comes from the time budget (no --steps, --epochs or --full_protocol)."""
  return not (config.full_protocol or config.epochs > 0 or config.steps > 0)


def planned_steps(config: Config, run_dir: pathlib.Path, fit, index: int = 0) -> int:
  """Total steps for one model, fixed at the first run and reused on resume (`common.plan_steps`).

  Under the time budget the count comes from a short run of `fit` that times a step on this
  machine (`common.budget_steps`; the full run resumes from it).
  """

  def choose() -> int:
    if timed(config):
      return common.budget_steps(budget_seconds(config, index), fit, config.steps_per_call, minimum=100)
    return fixed_steps(config, index)

  return common.plan_steps(run_dir, plan_request(config), choose)


def check_folders(config: Config, out: pathlib.Path) -> None:
  """Refuses (ValueError) model folders trained with another model or other step settings."""
  for name, k in parse_models(config.models):
    run_dir = out / f"{name}_k{k}"
    common.check_spec(run_dir, burda_spec(config))
    common.check_plan(run_dir, plan_request(config))


def _posterior_means(q, seed, num_samples: int):
  """E_q[z] per latent: {name: [B, d]} for a joint q (deeper layers averaged over samples), else [B, d]."""
  if not isinstance(q, tfd.JointDistribution):
    return q.mean().numpy()
  distributions, _ = q.sample_distributions(num_samples, seed=seed)
  means = {}
  for name, part in distributions.items():
    mean = part.mean().numpy()  # [B, d] for a part given x alone, [S, B, d] for one given a sampled parent
    means[name] = mean if mean.ndim == 2 else mean.mean(axis=0)
  return means


def active_units(model, x, batch: int = 500, threshold: float = 1e-2, seed: int = 0, num_samples: int = 100):
  """Burda et al.'s active units, Cov_x(E_q[z]) > threshold: an int, or {layer: int} for a joint q.

  For a two-layer q(z1 | x) q(z2 | z1), E_q[z2] is averaged over num_samples draws of z1.
  """
  parts = [
    _posterior_means(model.posterior(x[i : i + batch]), tf.constant([seed, i]), num_samples)
    for i in range(0, len(x), batch)
  ]
  if isinstance(parts[0], dict):
    return {
      name: int(np.sum(np.var(np.concatenate([p[name] for p in parts]), axis=0) > threshold))
      for name in sorted(parts[0])
    }
  return int(np.sum(np.var(np.concatenate(parts), axis=0) > threshold))


def evaluate(model, config: Config, x_test: np.ndarray) -> dict:
  """Test log p(x) (importance sampling) with its diagnostics, bits/dim and active units."""
  started = time.time()
  summary, _ = tfpvi.evaluation.evaluate_dataset(
    model,
    x_test,
    config.eval_samples,
    batch_size=config.eval_batch,
    chunk_size=config.eval_chunk,
    seed=config.seed,
  )
  return {
    "test_log_px": summary["log_px"],
    "test_log_px_standard_error": summary["log_px_standard_error"],
    "test_bits_per_dim": summary["bits_per_dim"],
    "monte_carlo_standard_error": summary["monte_carlo_standard_error"],
    "ess_mean": summary["ess_mean"],
    "khat_mean": summary.get("khat_mean"),
    "khat_fraction_above_0_7": summary.get("khat_fraction_above_0_7"),
    "active_units": active_units(model, x_test, seed=config.seed),
    "eval_examples": summary["num_examples"],
    "eval_samples": config.eval_samples,
    "eval_seconds": round(time.time() - started, 1),
  }


def train_one(name: str, k: int, config: Config, x_train: np.ndarray, run_dir: pathlib.Path, index: int = 0):
  tf.random.set_seed(config.seed)
  common.save_spec(run_dir, burda_spec(config))
  model = build_model(config, x_train)
  optimizer = snt.optimizers.Adam(
    tf.Variable(config.learning_rate, trainable=False), beta1=0.9, beta2=0.999, epsilon=1e-4
  )
  fit = functools.partial(
    tfpvi.train.fit,
    model,
    objective_for(name, k, config.gradient_estimator),
    x_train,
    optimizer=optimizer,
    batch_size=batch_size(config, index),
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(run_dir),
    seed=config.seed,
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=config.steps_per_call, precision=precision(config)),
  )

  steps = planned_steps(config, run_dir, fit, index)
  schedule = learning_rate_schedule(steps, config.learning_rate, config.schedule_growth)
  history = fit(
    steps=steps,
    logging=tfpvi.train.Logging(every=max(1, steps // 100)),
    loop=tfpvi.train.Loop(steps_per_call=config.steps_per_call, learning_rate=schedule, precision=precision(config)),
  )
  return model, history, steps


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folders)
  models = parse_models(config.models)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, _ = common.binarized_test_set("mnist", config.eval_examples)
  common.say(
    f"tfpvi iwae: {len(models)} models with {config.layers} stochastic layer(s)"
    f"{'' if config.prior == 'normal' else f' and a {config.prior} prior'}, results in {out}/"
  )
  metrics, histories, trained, record = {}, {}, {}, {}
  for index, (name, k) in enumerate(models):
    key, label = f"{name}_k{k}", f"{name.upper()} k={k}"
    if config.layers == 2 or config.prior != "normal":
      label += f" ({config.layers} layers)" if config.prior == "normal" else f" ({config.prior} prior)"
    common.say(f"[{label}] training ...")
    model, history, steps = train_one(name, k, config, x_train, out / f"{name}_k{k}", index)
    record[key] = common.trained_record(history, steps)
    common.say(
      f"[{label}] {int(history['step'].iloc[-1])} steps in {history['wall_time'].iloc[-1]:.0f} s; "
      f"evaluating log p(x) with k={config.eval_samples} on {len(x_test)} test images ..."
    )
    result = evaluate(model, config, x_test)
    result.update(
      planned_steps=steps,
      train_steps=record[key]["trained_steps"],
      train_seconds=record[key]["train_seconds"],
      final_train_objective=float(-history["loss"].iloc[-1]),
      layers=config.layers,
      prior=config.prior,
      burda_2016_test_nll=BURDA_NLL.get((config.layers, name, k)) if config.prior == "normal" else None,
    )
    metrics[key] = result
    histories[label], trained[label] = history, (model, result["test_log_px"])
    common.say(
      f"[{label}] test log p(x) = {result['test_log_px']:.2f} +- "
      f"{result['test_log_px_standard_error']:.2f} nats, active units {_units(result['active_units'])}"
    )
  best = max(trained, key=lambda label: trained[label][1])
  best_model = trained[best][0]
  tfpvi.plot.loss_curves(
    histories, terms=["loss"], title="negative training bound (nats)", path=str(out / "loss_curves.png")
  )
  tfpvi.plot.reconstructions(
    best_model,
    x_test[:10],
    num_examples=10,
    path=str(out / "reconstructions.png"),
    title=f"{best}: test inputs (top), reconstructions (bottom)",
  )
  tfpvi.plot.image_grid(
    best_model.sample(100, seed=tf.constant([config.seed, 1])).numpy(),
    rows=10,
    title=f"{best}: samples (pixel probabilities)",
    path=str(out / "samples.png"),
  )
  common.write_results(out, config, metrics, started, trained=record, published=published(config, models))
  print(_table(metrics))
  common.say(reading(metrics))
  common.say(f"results: {out}/results.json; figures: {out}/loss_curves.png, reconstructions.png, samples.png")
  return metrics


def published(config, models) -> Optional[dict]:
  """Burda et al.'s Table 1 numbers for the models run (None with a learned prior: not in their table)."""
  if config.prior != "normal":
    return None
  values = {
    f"{name}_k{k}": {"test_log_px": -BURDA_NLL[(config.layers, name, k)]}
    for name, k in models
    if (config.layers, name, k) in BURDA_NLL
  }
  return {
    "source": "Burda, Grosse, Salakhutdinov 2016, Table 1 (test log p(x), K = 5000, 10,000 test images)",
    "values": values,
    "note": "after 3,280 passes over the training set (--full_protocol); the CPU default makes far fewer.",
  }


def _units(active) -> str:
  """Active units: "17", or per layer "z1+z2" counts, e.g. "20+5"."""
  return "+".join(str(active[name]) for name in sorted(active)) if isinstance(active, dict) else str(active)


def _row_name(key: str, m: dict) -> str:
  objective, _, k = key.partition("_k")
  name = f"{objective.upper()} k={k}"
  prior = m.get("prior", "normal")
  return f"{name}, {m.get('layers', 1)} layer{'s' if m.get('layers', 1) > 1 else ''}" + (
    "" if prior == "normal" else f", {prior} prior"
  )


def _table(metrics: dict) -> str:
  """Our numbers beside Burda et al.'s Table 1 (their N(0, I)-prior models, as -NLL in nats)."""
  lines = [
    f"{'model':<31} {'steps':>7} {'train s':>8} {'test log p(x)':>14} {'Burda 2016':>11} {'bits/dim':>9} "
    f"{'active':>7} {'ESS':>9} {'k-hat>=0.7':>11}"
  ]
  for key, m in metrics.items():
    khat, burda = m.get("khat_fraction_above_0_7"), m.get("burda_2016_test_nll")
    lines.append(
      f"{_row_name(key, m):<31} {m['train_steps']:>7} {m['train_seconds']:>8.0f} {m['test_log_px']:>14.2f} "
      f"{'n/a' if burda is None else f'{-burda:.2f}':>11} {m['test_bits_per_dim']:>9.4f} "
      f"{_units(m['active_units']):>7} {m['ess_mean']:>9.1f} "
      f"{'n/a' if khat is None else f'{100 * khat:.0f}%':>11}"
    )
  lines.append(
    "Burda 2016: Table 1 test log p(x) (k = 5000, N(0, I) prior, 3,280 passes); ours trains far "
    "shorter on the CPU default."
  )
  return "\n".join(lines)


def reading(metrics: dict) -> str:
  """The table's ESS and k-hat columns explained, then `tfpvi.evaluation.reading` of its least reliable model."""
  samples = next(iter(metrics.values()))["eval_samples"]
  name, worst = max(metrics.items(), key=lambda item: item[1].get("khat_fraction_above_0_7") or 0.0)
  legend = (
    f"ESS: mean effective number of the K = {samples} importance samples per image; k-hat >= 0.7: share of "
    "images whose weights are too heavy-tailed for a reliable estimate."
  )
  verdict = tfpvi.evaluation.reading(
    {
      "khat_fraction_above_0_7": worst.get("khat_fraction_above_0_7"),
      "ess_mean": worst.get("ess_mean"),
      "num_samples": samples,
    }
  )
  who = f"Least reliable model, {name}" if worst.get("khat_fraction_above_0_7") else "All models"
  return f"{legend} {who}: {verdict}"


if __name__ == "__main__":
  common.run(main)
