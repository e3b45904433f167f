"""Flow posteriors on dynamically binarized MNIST: diagonal Gaussian vs planar vs IAF q(z|x).

Model: Burda et al.'s MLP, 784-200-200-50 with tanh, Bernoulli p(x|z), N(0, I) prior; the decoder
is the same for every posterior. Posteriors (`tfpvi.flows`):
- gaussian: a diagonal Gaussian (`tfpvi.encoders.GaussianMLP`);
- planar: the Gaussian followed by --planar_steps amortized planar flows (Rezende & Mohamed 2015);
- iaf: the Gaussian followed by --iaf_steps inverse autoregressive flow steps on MADEs with the
  encoder's context h, reversed orderings between steps (Kingma et al. 2016).
Objective: the single-sample ELBO (`tfpvi.objectives.elbo`; analytic KL for the Gaussian, Monte
Carlo for the flows). Adam, batch 100.
Evaluation: test log p(x) by importance sampling with k = --eval_samples (5000) on the first
--eval_examples statically binarized test images, the test ELBO (--elbo_samples draws), and the
gap log p(x) - ELBO = E_x KL(q(z|x) || p(z|x)) + (importance-sampling error): a more flexible q
must shrink it. During training, every --eval_every steps, the same gap is estimated on
--gap_examples images with k = --gap_samples and plotted against training time (evaluation time
excluded): gap.png.

    python -m experiments.flows --output_dir runs/flows     # CPU default, about 15 minutes on 2 cores

References:
  Burda, Grosse, Salakhutdinov. Importance weighted autoencoders. ICLR 2016.
  Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling. Improved variational inference with
    inverse autoregressive flow. NeurIPS 2016 (-81.08 nats on binarized MNIST with a ResNet VAE).
  Rezende, Mohamed. Variational inference with normalizing flows. ICML 2015.
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

import tfpvi
from experiments import common

POSTERIORS = ("gaussian", "planar", "iaf")


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/flows", "folder for results, figures and one sub-folder per posterior")
  posteriors: tuple = common.flag(POSTERIORS, "posteriors to train", choices=POSTERIORS)
  hidden_sizes: tuple = common.flag((200, 200), "hidden layer sizes of the encoder and decoder MLPs", minimum=1)
  latent_size: int = common.flag(50, "number of latent dimensions", minimum=1)
  iaf_steps: int = common.flag(2, "IAF steps", minimum=1)
  made_hidden: tuple = common.flag((100,), "hidden sizes of each IAF step's MADE", minimum=1)
  planar_steps: int = common.flag(8, "planar flow steps", minimum=1)
  context_size: int = common.flag(50, "size of the encoder context h fed to the flows", minimum=1)
  batch_size: int = common.flag(100, "training batch size", minimum=1)
  learning_rate: float = common.flag(1e-3, "Adam learning rate", above=0)
  steps: int = common.flag(3000, "training steps per posterior", minimum=1)
  time_budget: float = common.flag(
    0.0, "if > 0, seconds of training per posterior (a step is timed on this machine), replacing --steps", minimum=0
  )
  eval_every: int = common.flag(300, "steps between estimates of the gap during training", minimum=1)
  gap_examples: int = common.flag(100, "test images for the gap during training", minimum=1, maximum=10000)
  gap_samples: int = common.flag(500, "importance samples for log p(x) during training", minimum=1)
  eval_samples: int = common.flag(5000, "importance samples K per test image for the final log p(x)", minimum=1)
  eval_examples: int = common.flag(200, "test images for the final evaluation", minimum=1, maximum=10000)
  elbo_samples: int = common.flag(100, "samples per test image for the test ELBO", minimum=1)
  eval_batch: int = common.flag(50, "test images per evaluation batch", minimum=1)
  eval_chunk: int = common.flag(500, "importance samples computed at once (memory)", minimum=1)
  steps_per_call: int = common.flag(50, "training steps per compiled call (speed only)", minimum=1)
  train_examples: int = common.flag(60000, "number of MNIST training images used", minimum=1, maximum=60000)
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  SMOKE = dict(
    hidden_sizes=(16,),
    latent_size=4,
    made_hidden=(8,),
    planar_steps=2,
    context_size=8,
    batch_size=20,
    steps=20,
    eval_every=10,
    gap_examples=10,
    gap_samples=20,
    eval_samples=50,
    eval_examples=10,
    elbo_samples=5,
    eval_batch=10,
    eval_chunk=25,
    steps_per_call=5,
    train_examples=300,
  )

  def check(self) -> None:
    if len(set(self.posteriors)) != len(self.posteriors):
      raise ValueError(f"--posteriors lists a posterior twice: {','.join(self.posteriors)}")


# ---------------------------------------------------------------------------------------------------
# Helpers shared with experiments.discrete and experiments.renyi.


def gap_evaluator(x, num_samples: int, elbo_samples: int, seed: int):
  """eval_fn for fit: log p(x) (importance sampling), the ELBO and their gap on x, with the time it took."""
  x = tf.constant(x, tf.float32)

  def evaluate(model):
    started = time.perf_counter()
    compiled = _compiled_gap(model, num_samples, elbo_samples)
    log_px, elbo = (float(v) for v in compiled(x, tf.constant([seed, 7])))
    return {"log_px": log_px, "elbo": elbo, "gap": log_px - elbo, "eval_seconds": time.perf_counter() - started}

  return evaluate


def _compiled_gap(model, num_samples, elbo_samples):
  """One compiled (log p(x), ELBO) per model and sample counts (tfpvi's compile cache)."""
  reference = weakref.ref(model)

  def compute(x, seed):
    log_px = tfpvi.evaluation.log_marginal_likelihood(
      reference(), x, num_samples, chunk_size=min(num_samples, 500), seed=seed
    )
    elbo = tfpvi.objectives.elbo(reference(), x, num_samples=elbo_samples, seed=seed)
    return tf.reduce_mean(log_px), tf.reduce_mean(elbo)

  return tfpvi.xla.cached(model, ("gap", num_samples, elbo_samples), lambda: tfpvi.xla.function(compute))


def mean_elbo(model, x: np.ndarray, num_samples: int, batch: int, seed: int) -> float:
  """Mean ELBO over x with num_samples draws per image."""

  @tf.function
  def batch_sum(xb, s):
    return tf.reduce_sum(tfpvi.objectives.elbo(model, xb, num_samples=num_samples, seed=s))

  total = sum(
    float(batch_sum(tf.constant(x[i : i + batch], tf.float32), tf.constant([seed, i]))) for i in range(0, len(x), batch)
  )
  return total / len(x)


# ---------------------------------------------------------------------------------------------------


def model_spec(posterior: str, config: Config) -> dict:
  """The spec (`tfpvi.specs`) of one posterior's model, saved beside its checkpoints with its test data."""
  hidden, d = list(config.hidden_sizes), config.latent_size
  if posterior == "gaussian":
    encoder = {"class": "GaussianMLP", "hidden_sizes": hidden, "latent_size": d, "activation": "tanh"}
  elif posterior == "planar":
    encoder = {
      "class": "planar_mlp",
      "hidden_sizes": hidden,
      "latent_size": d,
      "num_steps": config.planar_steps,
      "context_size": config.context_size,
    }
  else:
    encoder = {
      "class": "iaf_mlp",
      "hidden_sizes": hidden,
      "latent_size": d,
      "num_steps": config.iaf_steps,
      "made_hidden_sizes": list(config.made_hidden),
      "context_size": config.context_size,
    }
  decoder = {"class": "BernoulliMLP", "hidden_sizes": hidden, "output_shape": [28, 28, 1], "activation": "tanh"}
  return {
    "encoder": encoder,
    "decoder": decoder,
    "prior": {"class": "standard_normal", "latent_size": d},
    "data": {"name": "mnist", "format": "binary"},
  }


def build_model(posterior: str, config: Config) -> tfpvi.VAE:
  return tfpvi.specs.build(model_spec(posterior, config))


MODEL_SETTINGS = (
  "hidden_sizes",
  "latent_size",
  "iaf_steps",
  "made_hidden",
  "planar_steps",
  "context_size",
  "batch_size",
  "learning_rate",
  "steps",
  "time_budget",
  "train_examples",
  "seed",
)


def settings_for(posterior: str, config: Config) -> dict:
  return {"posterior": posterior, **{name: getattr(config, name) for name in MODEL_SETTINGS}}


def check_folders(config: Config, out: pathlib.Path) -> None:
  for posterior in config.posteriors:
    common.check_plan(out / posterior, settings_for(posterior, config))
    common.check_spec(out / posterior, model_spec(posterior, config))


def train_one(posterior: str, config: Config, x_train, x_gap, run_dir: pathlib.Path):
  tf.random.set_seed(config.seed)
  common.save_spec(run_dir, model_spec(posterior, config))  # so `python -m tfpvi.cli.evaluate run_dir` works
  model = build_model(posterior, config)
  fit = functools.partial(
    tfpvi.train.fit,
    model,
    functools.partial(tfpvi.objectives.elbo, num_samples=1, return_terms=True),
    x_train,
    optimizer=snt.optimizers.Adam(config.learning_rate),
    batch_size=config.batch_size,
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(run_dir),
    seed=config.seed,
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=config.steps_per_call),
  )
  steps = common.plan_steps(run_dir, settings_for(posterior, config), lambda: common.steps_for_budget(config, fit))
  eval_fn = gap_evaluator(x_gap, config.gap_samples, config.elbo_samples, config.seed)
  history = fit(
    steps=steps,
    logging=tfpvi.train.Logging(every=max(1, steps // 100)),
    evaluation=tfpvi.train.Evaluation(every=config.eval_every, metrics=eval_fn),
  )
  return model, history, steps


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folders)
  x_train, _ = common.mnist_like("mnist", "train", config.train_examples)
  x_test, _ = common.binarized_test_set("mnist", config.eval_examples)
  x_gap = x_test[: config.gap_examples]
  common.say(f"tfpvi flows: {', '.join(config.posteriors)}; results in {out}/")
  metrics, histories, record = {}, {}, {}
  for posterior in config.posteriors:
    common.say(f"[{posterior}] training ...")
    model, history, steps = train_one(posterior, config, x_train, x_gap, out / posterior)
    record[posterior] = common.trained_record(history, steps)
    common.say(
      f"[{posterior}] {record[posterior]['trained_steps']} steps; evaluating log p(x) with "
      f"k={config.eval_samples} on {len(x_test)} test images ..."
    )
    result = common.evaluate_log_px(
      model, x_test, config.eval_samples, config.eval_batch, config.eval_chunk, config.seed
    )
    result["test_elbo"] = mean_elbo(model, x_test, config.elbo_samples, config.eval_batch, config.seed)
    result["gap"] = result["test_log_px"] - result["test_elbo"]
    result.update(
      train_steps=record[posterior]["trained_steps"],
      train_seconds=float(common.training_seconds(history)[-1]),
      final_train_elbo=float(-history["loss"].iloc[-1]),
    )
    metrics[posterior], histories[posterior] = result, history
    common.say(
      f"[{posterior}] test log p(x) = {result['test_log_px']:.2f}, ELBO = {result['test_elbo']:.2f}, "
      f"gap = {result['gap']:.2f} nats"
    )
  plot_gap(
    histories,
    out / "gap.png",
    num_samples=config.gap_samples,
    num_examples=config.gap_examples,
    final_samples=config.eval_samples,
  )
  tfpvi.plot.loss_curves(
    histories, terms=["loss"], title="negative training ELBO (nats)", path=str(out / "loss_curves.png")
  )
  common.write_results(
    out,
    config,
    metrics,
    started,
    trained=record,
    published={
      "source": "Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling 2016 (binarized MNIST test log p(x))",
      "values": {"ResNet VAE with a deep IAF posterior": {"test_log_px": -81.08}},
      "note": "a convolutional ResNet VAE trained for days; here Burda et al.'s MLP for a few epochs.",
    },
  )
  print(table(metrics))
  common.say(f"results: {out}/results.json; figures: {out}/gap.png, loss_curves.png")
  return metrics


def plot_gap(histories: dict, path: pathlib.Path, *, num_samples: int, num_examples: int, final_samples: int):
  """The bound gap during training, with the K it was measured at (smaller than the final table's)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for i, (name, history) in enumerate(histories.items()):
    rows = history["gap"].notna() if "gap" in history else np.zeros(len(history), bool)
    seconds = common.training_seconds(history)[np.asarray(rows)]
    color = f"C{i}"
    axes[0].plot(seconds, history.loc[rows, "gap"], marker="o", color=color, label=name)
    axes[1].plot(seconds, history.loc[rows, "log_px"], marker="o", color=color, label=f"{name}: log p(x)")
    axes[1].plot(seconds, history.loc[rows, "elbo"], linestyle="--", color=color, label=f"{name}: ELBO")
  axes[0].set(
    xlabel="training time (s)",
    ylabel="log p(x) - ELBO (nats)",
    title=f"bound gap on {num_examples} test images, log p(x) at K = {num_samples}",
  )
  axes[1].set(xlabel="training time (s)", ylabel="nats", title=f"test log p(x) (IS, K = {num_samples}) and ELBO")
  fig.text(
    0.01,
    0.01,
    f"During training log p(x) uses K = {num_samples} importance samples (the final table uses "
    f"K = {final_samples}), so these gaps are slightly larger than the table's.",
    fontsize=7,
  )
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout(rect=(0, 0.04, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return fig


def table(metrics: dict) -> str:
  lines = [f"{'posterior':<10} {'steps':>6} {'train s':>8} {'log p(x)':>9} {'ELBO':>9} {'gap':>6} {'ESS':>8}"]
  for name, m in metrics.items():
    lines.append(
      f"{name:<10} {m['train_steps']:>6} {m['train_seconds']:>8.0f} {m['test_log_px']:>9.2f} "
      f"{m['test_elbo']:>9.2f} {m['gap']:>6.2f} {m['ess_mean']:>8.1f}"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  common.run(main)
