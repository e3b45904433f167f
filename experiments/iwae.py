"""VAE vs IWAE on dynamically binarized MNIST (seed 004; Burda et al. 2016, Table 1 protocol).

Model: 784-200-200-50 with tanh, a diagonal-Gaussian q(z|x), Bernoulli p(x|z), N(0, I) prior.
Objectives: the VAE bound with k samples (`tfpvi.objectives.elbo`) and the IWAE bound with k
samples (`tfpvi.objectives.iwae`), for the models listed in --models as OBJECTIVE:K.
Training: Adam (beta1 0.9, beta2 0.999, eps 1e-4), batch 20, learning rate 1e-3 * 10^(-i/7) in
stage i = 0..7. Burda et al. run stage i for 3^i passes (3,280 in all); here stages are scaled into
--steps per model (default 50,000, about 17 passes, the same for every model), or --epochs, or
--time_budget seconds per model (timed on this machine; k = 50 then gets fewer steps than k = 1),
with stage i's length proportional to --schedule_growth^i (3 is Burda's; the CPU default 1 gives
equal stages, which suits short runs).
Evaluation: test log p(x) by importance sampling with k = 5000 (`tfpvi.evaluation`) on the first
--eval_examples of the statically binarized test set (10,000 for the full protocol), and the
number of active units (Burda et al. section 5.2: Cov_x(E_q[u]) > 0.01).

    python -m experiments.iwae --output_dir runs/iwae               # CPU default, about 25 minutes
    python -m experiments.iwae --full_protocol --output_dir runs/burda   # 3,280 passes per model

References:
  Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
import sys
import time

import numpy as np
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import common

PASSES = 3280  # sum_i 3^i for i = 0..7


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = "runs/iwae"
  models: tuple = ("vae:1", "iwae:5", "iwae:50")
  hidden_sizes: tuple = (200, 200)
  latent_size: int = 50
  batch_size: int = 20
  steps: int = 50000  # per model (the same for every model: Burda et al. compare equal passes)
  epochs: float = 0.0  # if > 0, replaces --steps
  time_budget: float = 0.0  # if > 0, seconds of training per model (measured here), replaces --steps
  schedule_growth: float = 1.0
  learning_rate: float = 1e-3
  eval_samples: int = 5000
  eval_examples: int = 1000
  eval_batch: int = 100
  eval_chunk: int = 500
  steps_per_call: int = 50
  train_examples: int = 60000
  full_protocol: bool = False
  seed: int = 0

  SMOKE = dict(
      models=("vae:1", "iwae:3"), hidden_sizes=(16,), latent_size=4, steps=20, train_examples=500,
      eval_samples=40, eval_examples=20, eval_batch=10, eval_chunk=16, steps_per_call=5,
  )


def parse_models(models) -> list[tuple[str, int]]:
  parsed = []
  for spec in models:
    name, _, k = spec.partition(":")
    if name not in ("vae", "iwae") or not k.isdigit() or int(k) < 1:
      raise ValueError(f"--models entries must be vae:K or iwae:K with K >= 1, got {spec!r}.")
    parsed.append((name, int(k)))
  return parsed


def burda_spec(config: Config) -> dict:
  hidden = list(config.hidden_sizes)
  return {
      "encoder": {"class": "GaussianMLP", "hidden_sizes": hidden, "latent_size": config.latent_size,
                  "activation": "tanh"},
      "decoder": {"class": "BernoulliMLP", "hidden_sizes": hidden, "output_shape": [28, 28, 1],
                  "activation": "tanh"},
      "prior": {"class": "standard_normal", "latent_size": config.latent_size},
      "data": {"name": "mnist", "format": "binary"},
  }


def objective_for(name: str, k: int):
  if name == "vae":
    return functools.partial(tfpvi.objectives.elbo, num_samples=k, return_terms=True)
  return functools.partial(tfpvi.objectives.iwae, num_samples=k, return_terms=True)


def learning_rate_schedule(total_steps: int, base: float, growth: float):
  """Burda's staircase: rate base * 10^(-i/7) in stage i, stage lengths proportional to growth^i."""
  weights = np.array([growth**i for i in range(8)])
  boundaries = tf.constant(np.cumsum(weights)[:-1] / weights.sum() * total_steps, tf.float32)

  def schedule(step):
    stage = tf.reduce_sum(tf.cast(step > boundaries, tf.float32))
    return base * tf.pow(10.0, -stage / 7.0)

  return schedule


def planned_steps(config: Config, run_dir: pathlib.Path, measure) -> int:
  """Total steps for one model, fixed at the first run and reused on resume (plan.json)."""
  run_dir.mkdir(parents=True, exist_ok=True)
  plan_path = run_dir / "plan.json"
  if plan_path.exists():
    return json.loads(plan_path.read_text())["steps"]
  steps_per_epoch = math.ceil(config.train_examples / config.batch_size)
  if config.full_protocol:
    steps = PASSES * steps_per_epoch
  elif config.time_budget > 0:
    steps = max(100, int(config.time_budget / measure()))
  elif config.epochs > 0:
    steps = int(config.epochs * steps_per_epoch)
  else:
    steps = config.steps
  plan_path.write_text(json.dumps({"steps": steps}))
  return steps


def active_units(model, x, batch: int = 500, threshold: float = 1e-2) -> int:
  means = np.concatenate([model.posterior(x[i : i + batch]).mean().numpy() for i in range(0, len(x), batch)])
  return int(np.sum(np.var(means, axis=0) > threshold))


def evaluate(model, config: Config, x_test: np.ndarray) -> dict:
  """Test log p(x) (importance sampling) with its diagnostics, bits/dim and active units."""
  started = time.time()
  summary, _ = tfpvi.evaluation.evaluate_dataset(
      model, x_test, config.eval_samples, batch_size=config.eval_batch,
      chunk_size=config.eval_chunk, seed=config.seed,
  )
  return {
      "test_log_px": summary["log_px"],
      "test_log_px_standard_error": summary["log_px_standard_error"],
      "test_bits_per_dim": summary["bits_per_dim"],
      "monte_carlo_standard_error": summary["monte_carlo_standard_error"],
      "ess_mean": summary["ess_mean"],
      "khat_mean": summary.get("khat_mean"),
      "khat_fraction_above_0_7": summary.get("khat_fraction_above_0_7"),
      "active_units": active_units(model, x_test),
      "eval_examples": summary["num_examples"],
      "eval_samples": config.eval_samples,
      "eval_seconds": round(time.time() - started, 1),
  }


def train_one(name: str, k: int, config: Config, x_train: np.ndarray, run_dir: pathlib.Path):
  tf.random.set_seed(config.seed)
  spec = burda_spec(config)
  tfpvi.specs.save(run_dir, spec)
  model = tfpvi.specs.build(spec)
  optimizer = snt.optimizers.Adam(
      tf.Variable(config.learning_rate, trainable=False), beta1=0.9, beta2=0.999, epsilon=1e-4
  )
  fit = functools.partial(
      tfpvi.train.fit, model, objective_for(name, k), x_train, optimizer=optimizer,
      batch_size=config.batch_size, preprocess=tfpvi.data.binarize_dynamic, output_dir=str(run_dir),
      steps_per_call=config.steps_per_call, seed=config.seed,
  )

  def measure():
    # A short constant-rate run to time a step on this machine; the full run resumes from it.
    calibration = fit(steps=4 * config.steps_per_call, log_every=config.steps_per_call, progress=False)
    times = calibration["wall_time"].to_numpy()
    return float(times[-1] - times[1]) / (2 * config.steps_per_call)

  steps = planned_steps(config, run_dir, measure)
  schedule = learning_rate_schedule(steps, config.learning_rate, config.schedule_growth)
  history = fit(steps=steps, learning_rate=schedule, log_every=max(1, steps // 100))
  return model, history


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__)
  if config.full_protocol:
    config = dataclasses.replace(config, schedule_growth=3.0, eval_examples=10000)
  models = parse_models(config.models)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, _ = common.binarized_test_set("mnist", config.eval_examples)
  common.say(f"tfpvi iwae: {len(models)} models, results in {out}/")
  metrics, histories, trained = {}, {}, {}
  for name, k in models:
    key, label = f"{name}_k{k}", f"{name.upper()} k={k}"
    common.say(f"[{label}] training ...")
    model, history = train_one(name, k, config, x_train, out / f"{name}_k{k}")
    common.say(f"[{label}] {int(history['step'].iloc[-1])} steps in {history['wall_time'].iloc[-1]:.0f} s; "
               f"evaluating log p(x) with k={config.eval_samples} on {len(x_test)} test images ...")
    result = evaluate(model, config, x_test)
    result.update(train_steps=int(history["step"].iloc[-1]), train_seconds=float(history["wall_time"].iloc[-1]),
                  final_train_objective=float(-history["loss"].iloc[-1]))
    metrics[key] = result
    histories[label], trained[label] = history, (model, result["test_log_px"])
    common.say(f"[{label}] test log p(x) = {result['test_log_px']:.2f} +- "
               f"{result['test_log_px_standard_error']:.2f} nats, active units {result['active_units']}")
  best = max(trained, key=lambda label: trained[label][1])
  best_model = trained[best][0]
  tfpvi.plot.loss_curves(
      histories, terms=["loss"], title="negative training bound (nats)", path=str(out / "loss_curves.png")
  )
  tfpvi.plot.reconstructions(best_model, x_test[:10], num_examples=10, path=str(out / "reconstructions.png"),
                             title=f"{best}: test inputs (top), reconstructions (bottom)")
  tfpvi.plot.image_grid(best_model.sample(100, seed=tf.constant([config.seed, 1])).numpy(), rows=10,
                        title=f"{best}: samples (pixel probabilities)", path=str(out / "samples.png"))
  common.write_results(out, config, metrics, started)
  print(_table(metrics))
  common.say(f"results: {out}/results.json; figures: {out}/loss_curves.png, reconstructions.png, samples.png")
  return metrics


def _table(metrics: dict) -> str:
  lines = [f"{'model':<10} {'steps':>7} {'train s':>8} {'test log p(x)':>14} {'bits/dim':>9} {'active':>7}"]
  for name, m in metrics.items():
    lines.append(f"{name:<10} {m['train_steps']:>7} {m['train_seconds']:>8.0f} {m['test_log_px']:>14.2f} "
                 f"{m['test_bits_per_dim']:>9.4f} {m['active_units']:>7}")
  return "\n".join(lines)


if __name__ == "__main__":
  main(sys.argv[1:])
