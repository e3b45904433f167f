"""Renyi bounds and MIWAE / PIWAE / CIWAE on dynamically binarized MNIST, with encoder-gradient SNR.

Model: a VAE with a 784-200-20 tanh MLP encoder (diagonal Gaussian q), the mirror decoder (Bernoulli
p(x|z)) and an N(0, I) prior; one model is trained per entry of --models (`tfpvi.objectives`):
- vr:ALPHA:K, the Renyi bound VR_alpha with K samples (Li & Turner 2016): ALPHA = -inf is VR-max,
  0 is IWAE, 1 the VAE (the K-sample ELBO);
- miwae:M:K, piwae:M:K, ciwae:BETA:K (Rainforth et al. 2018): at M * K = 50 these spend the same
  sample budget as vr:0:50 (IWAE_50).
Training: Adam 1e-3, batch 20, --steps per model (the same for every model).
Evaluation: test log p(x) by importance sampling (k = --eval_samples) on --eval_examples statically
binarized test images (Li & Turner's figure: log p(x) against alpha, one line per K), and the
signal-to-noise ratio of each model's own gradient estimate, |E g| / std(g) averaged over the
encoder's (and, separately, the decoder's) parameters, from --snr_replicates draws on one training
batch at the end of training. Rainforth et al.'s point: tighter bounds (IWAE with large K) starve
the encoder (low encoder SNR); MIWAE / PIWAE / CIWAE trade tightness for encoder signal.

    python -m experiments.renyi --output_dir runs/renyi    # CPU default, about 15 minutes on 2 cores

References:
  Li, Turner. Renyi divergence variational inference. NeurIPS 2016.
  Rainforth, Kosiorek, Le, Maddison, Igl, Wood, Teh. Tighter variational bounds are not necessarily
    better. ICML 2018.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib

import numpy as np
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import common
from tfpvi import objectives

DEFAULT_MODELS = (
  "vr:-inf:5",
  "vr:0:5",
  "vr:0.5:5",
  "vr:1:5",
  "vr:-inf:50",
  "vr:0:50",
  "vr:0.5:50",
  "vr:1:50",
  "miwae:5:10",
  "piwae:5:10",
  "ciwae:0.5:50",
)


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/renyi", "folder for results, figures and one sub-folder per model")
  models: tuple = common.flag(DEFAULT_MODELS, "models, each vr:ALPHA:K, miwae:M:K, piwae:M:K or ciwae:BETA:K")
  gradient_estimator: str = common.flag(
    "reparam", "gradient estimator of every bound", choices=objectives.GRADIENT_ESTIMATORS
  )
  hidden_sizes: tuple = common.flag((200,), "hidden layer sizes of the encoder and decoder MLPs", minimum=1)
  latent_size: int = common.flag(20, "number of latent dimensions", minimum=1)
  batch_size: int = common.flag(20, "training batch size", minimum=1)
  learning_rate: float = common.flag(1e-3, "Adam learning rate", above=0)
  steps: int = common.flag(1200, "training steps per model (the same for every model)", minimum=1)
  time_budget: float = common.flag(
    0.0, "if > 0, seconds of training per model (a step is timed on this machine), replacing --steps", minimum=0
  )
  eval_samples: int = common.flag(2000, "importance samples per test image for log p(x)", minimum=1)
  eval_examples: int = common.flag(200, "test images evaluated", minimum=1, maximum=10000)
  eval_batch: int = common.flag(50, "test images per evaluation batch", minimum=1)
  eval_chunk: int = common.flag(500, "importance samples computed at once (memory)", minimum=1)
  snr_replicates: int = common.flag(100, "gradient draws for the signal-to-noise ratios", minimum=2)
  steps_per_call: int = common.flag(50, "training steps per compiled call (speed only)", minimum=1)
  train_examples: int = common.flag(60000, "number of MNIST training images used", minimum=1, maximum=60000)
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  SMOKE = dict(
    models=("vr:-inf:3", "vr:0:3", "vr:0.5:3", "vr:1:3", "miwae:2:2", "piwae:2:2", "ciwae:0.5:4"),
    hidden_sizes=(16,),
    latent_size=4,
    steps=10,
    eval_samples=20,
    eval_examples=10,
    eval_batch=10,
    eval_chunk=10,
    snr_replicates=4,
    steps_per_call=5,
    train_examples=200,
  )

  def check(self) -> None:
    for spec in self.models:
      parse_model(spec)
    if len(set(self.models)) != len(self.models):
      raise ValueError(f"--models lists a model twice: {','.join(self.models)}")
    for spec in self.models:
      if spec.startswith("vr:-inf") and self.gradient_estimator == "dreg":
        raise ValueError(f"{spec} (VR-max) has no DReG estimator; use --gradient_estimator reparam or stl.")


def parse_model(spec: str) -> tuple[str, float, int]:
  """'vr:0.5:5' -> ('vr', 0.5, 5); the middle field is alpha, M or beta."""
  parts = spec.split(":")
  problem = f"--models entries must be vr:ALPHA:K, miwae:M:K, piwae:M:K or ciwae:BETA:K with K >= 1, got {spec!r}"
  if len(parts) != 3 or parts[0] not in ("vr", "miwae", "piwae", "ciwae") or not parts[2].isdigit():
    raise ValueError(problem)
  name, k = parts[0], int(parts[2])
  try:
    middle = float(parts[1])
  except ValueError:
    raise ValueError(problem) from None
  if k < 1 or math.isnan(middle) or middle == math.inf:
    raise ValueError(problem)
  if name in ("miwae", "piwae") and (middle < 1 or middle != int(middle)):
    raise ValueError(f"{spec}: M must be an integer >= 1.")
  if name == "ciwae" and not 0 <= middle <= 1:
    raise ValueError(f"{spec}: beta must be in [0, 1].")
  return name, middle, k


def objective_for(spec: str, estimator: str):
  name, middle, k = parse_model(spec)
  common_kwargs = dict(gradient_estimator=estimator, return_terms=True)
  if name == "vr":
    return functools.partial(objectives.renyi, num_samples=k, alpha=middle, **common_kwargs)
  if name == "ciwae":
    return functools.partial(objectives.ciwae, num_samples=k, beta=middle, **common_kwargs)
  fn = objectives.miwae if name == "miwae" else objectives.piwae
  return functools.partial(fn, num_groups=int(middle), num_samples=k, **common_kwargs)


def samples_per_example(spec: str) -> int:
  name, middle, k = parse_model(spec)
  return int(middle) * k if name in ("miwae", "piwae") else k


def model_spec(config: Config) -> dict:
  """The spec (`tfpvi.specs`) of every model here, saved beside its checkpoints with its test data."""
  hidden, d = list(config.hidden_sizes), config.latent_size
  return {
    "encoder": {"class": "GaussianMLP", "hidden_sizes": hidden, "latent_size": d, "activation": "tanh"},
    "decoder": {
      "class": "BernoulliMLP",
      "hidden_sizes": hidden[::-1],
      "output_shape": [28, 28, 1],
      "activation": "tanh",
    },
    "prior": {"class": "standard_normal", "latent_size": d},
    "data": {"name": "mnist", "format": "binary"},
  }


def build_model(config: Config) -> tfpvi.VAE:
  return tfpvi.specs.build(model_spec(config))


SETTINGS = (
  "gradient_estimator",
  "hidden_sizes",
  "latent_size",
  "batch_size",
  "learning_rate",
  "steps",
  "time_budget",
  "train_examples",
  "seed",
)


def folder_name(spec: str) -> str:
  return spec.replace(":", "_").replace("-inf", "max")


def settings_for(spec: str, config: Config) -> dict:
  return {"model": spec, **{s: getattr(config, s) for s in SETTINGS}}


def check_folders(config: Config, out: pathlib.Path) -> None:
  for spec in config.models:
    common.check_plan(out / folder_name(spec), settings_for(spec, config))
    common.check_spec(out / folder_name(spec), model_spec(config))


def gradient_snr(model, objective, x: np.ndarray, replicates: int, seed: int) -> dict:
  """Mean over parameters of |mean| / std of the objective's gradient, for the encoder and the decoder."""
  encoder, decoder = model.encoder.trainable_variables, model.decoder.trainable_variables
  x = tf.constant(x, tf.float32)

  @tf.function
  def gradient(s):
    with tf.GradientTape() as tape:
      value = objective(model, x, seed=s)
      value = value["objective"] if isinstance(value, dict) else value
      loss = -tf.reduce_mean(value)
    grads = tape.gradient(loss, encoder + decoder)
    flat = [tf.reshape(g, [-1]) for g in grads]
    return tf.concat(flat[: len(encoder)], 0), tf.concat(flat[len(encoder) :], 0)

  draws = [gradient(tf.constant([seed, 1000 + r])) for r in range(replicates)]
  result = {}
  for i, part in enumerate(("encoder", "decoder")):
    g = np.stack([d[i].numpy() for d in draws])
    result[f"{part}_snr"] = float(np.mean(np.abs(g.mean(0)) / (g.std(0, ddof=1) + 1e-12)))
  return result


def train_one(spec: str, config: Config, x_train, run_dir: pathlib.Path):
  tf.random.set_seed(config.seed)
  common.save_spec(run_dir, model_spec(config))  # so `python -m tfpvi.cli.evaluate run_dir` works
  model = build_model(config)
  objective = objective_for(spec, config.gradient_estimator)
  fit = functools.partial(
    tfpvi.train.fit,
    model,
    objective,
    x_train,
    optimizer=snt.optimizers.Adam(config.learning_rate),
    batch_size=config.batch_size,
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(run_dir),
    seed=config.seed,
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=config.steps_per_call),
  )
  steps = common.plan_steps(run_dir, settings_for(spec, config), lambda: common.steps_for_budget(config, fit))
  history = fit(steps=steps, logging=tfpvi.train.Logging(every=max(1, steps // 50)))
  return model, objective, history, steps


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folders)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, _ = common.binarized_test_set("mnist", config.eval_examples)
  snr_batch = tfpvi.data.binarize_static(x_train[: config.batch_size])
  common.say(f"tfpvi renyi: {len(config.models)} models, results in {out}/")
  metrics, histories, record = {}, {}, {}
  for spec in config.models:
    common.say(f"[{spec}] training ...")
    model, objective, history, steps = train_one(spec, config, x_train, out / folder_name(spec))
    record[spec] = common.trained_record(history, steps)
    result = common.evaluate_log_px(
      model, x_test, config.eval_samples, config.eval_batch, config.eval_chunk, config.seed
    )
    result.update(gradient_snr(model, objective, snr_batch, config.snr_replicates, config.seed))
    result.update(
      samples_per_example=samples_per_example(spec),
      train_steps=record[spec]["trained_steps"],
      train_seconds=float(common.training_seconds(history)[-1]),
      final_train_objective=float(-history["loss"].iloc[-1]),
    )
    metrics[spec], histories[spec] = result, history
    common.say(
      f"[{spec}] test log p(x) = {result['test_log_px']:.2f} nats; encoder SNR {result['encoder_snr']:.3f}, "
      f"decoder SNR {result['decoder_snr']:.3f}"
    )
  plot_by_alpha(metrics, out / "log_px_by_alpha.png")
  plot_snr(metrics, out / "snr.png")
  plot_losses(histories, out / "loss_curves.png")
  common.write_results(out, config, metrics, started, trained=record)
  print(table(metrics))
  common.say(f"results: {out}/results.json; figures: {out}/log_px_by_alpha.png, snr.png, loss_curves.png")
  return metrics


def plot_by_alpha(metrics: dict, path: pathlib.Path) -> None:
  """Test log p(x) against alpha (VR-max drawn at the left edge), one line per K."""
  plt = common.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  by_k: dict[int, list] = {}
  for spec, m in metrics.items():
    name, alpha, k = parse_model(spec)
    if name == "vr":
      by_k.setdefault(k, []).append((alpha, m["test_log_px"], m["test_log_px_standard_error"]))
  finite = [a for rows in by_k.values() for a, _, _ in rows if a != -math.inf] or [0.0]
  left = min(finite) - 0.5
  for k, rows in sorted(by_k.items()):
    rows.sort()
    xs = [left if a == -math.inf else a for a, _, _ in rows]
    ax.errorbar(xs, [v for _, v, _ in rows], yerr=[e for _, _, e in rows], marker="o", capsize=3, label=f"K={k}")
  ticks = sorted({left, *finite})
  ax.set_xticks(ticks, ["max" if t == left else f"{t:g}" for t in ticks])
  ax.set(xlabel="alpha (max: VR-max)", ylabel="test log p(x) (nats)", title="Renyi bounds: test log p(x) by alpha")
  fig.text(
    0.01,
    0.01,
    "error bars: +-1 standard error of the mean over the test images (the same images for every model)",
    fontsize=7,
  )
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout(rect=(0, 0.04, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return fig


def plot_losses(histories: dict, path: pathlib.Path) -> None:
  plt = common.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4))
  for spec, history in histories.items():
    ax.plot(history["step"], history["loss"], label=spec)
  ax.set(xlabel="step", ylabel="nats", title="negative training bound (each model's own)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_snr(metrics: dict, path: pathlib.Path) -> None:
  plt = common.pyplot()
  names = list(metrics)
  fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names)), 4))
  positions = np.arange(len(names))
  ax.bar(positions - 0.2, [metrics[n]["encoder_snr"] for n in names], 0.4, label="encoder")
  ax.bar(positions + 0.2, [metrics[n]["decoder_snr"] for n in names], 0.4, label="decoder")
  ax.set_xticks(positions, names, rotation=45, ha="right")
  # Log scale: the encoder's SNR (what tighter bounds degrade; Rainforth et al. 2018) is orders of
  # magnitude below the decoder's and would sit at 0 on a linear axis.
  ax.set_yscale("log")
  ax.set(ylabel="mean |E g| / std(g) (log scale)", title="gradient signal-to-noise ratio at the end of training")
  ax.grid(alpha=0.3, axis="y", which="both")
  ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over one
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return fig


def table(metrics: dict) -> str:
  lines = [f"{'model':<14} {'samples':>7} {'steps':>6} {'train s':>8} {'log p(x)':>9} {'enc SNR':>8} {'dec SNR':>8}"]
  for spec, m in metrics.items():
    lines.append(
      f"{spec:<14} {m['samples_per_example']:>7} {m['train_steps']:>6} {m['train_seconds']:>8.0f} "
      f"{m['test_log_px']:>9.2f} {m['encoder_snr']:>8.3f} {m['decoder_snr']:>8.3f}"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  common.run(main)
