"""Bits/dim of 8-bit images: a convolutional VAE with a logistic-mixture likelihood vs an MLP VAE with one logistic.

In the blog post on importance sampling and marginal likelihood in VAEs (Table 1, second row), a
ResNet VAE on CIFAR-10 with one discretized logistic reached 6.65 bits/dim (IAF: 3.11, PixelCNN++:
2.92), and its author expected a mixture of five logistics to do better. This experiment puts the
two likelihoods side by side on 8-bit images:

- "conv_mixture": `tfpvi.conv.ResNetEncoder` / `ResNetDecoder` (group normalization, bounded
  scales), 5 discretized logistics per pixel: `DiscretizedLogisticMixture` for grey images,
  PixelCNN++'s channel-coupled `PixelCNNMixture` for colour;
- "mlp_logistic": `GaussianMLP` ([300, 300], ReLU, inputs scaled by 1/255) and
  `DiscretizedLogisticMLP`, one logistic per sub-pixel.

Both have a 32-dimensional N(0, I) latent, are trained with the ELBO (1 sample, Adam, batch 64,
learning rate decayed 10x over the run) for the same wall-clock time (--time_budget seconds each,
timed on this machine), or for --steps each. Test log p(x) is estimated by importance sampling
with q(z|x) as proposal (`tfpvi.evaluation.evaluate_dataset`, K = --eval_samples), reported as
nats and bits/dim (-log2 p(x) / dims) with their standard errors over test images, the Monte Carlo
error, the effective sample size and the Pareto k-hat of the weights. Figures: learning curves in
bits/dim, samples and reconstructions of each model.

Data: 8-bit MNIST and Fashion-MNIST (`tfpvi.data`); CIFAR-10 and SVHN where TensorFlow Datasets can
download (`tfpvi.data.rgb`); "generated_rgb" (structured 32x32x3 images, `tfpvi.data.rgb.
generated_rgb`) to exercise the colour path anywhere.

    python -m experiments.bits_per_dim --output_dir runs/bits_per_dim        # CPU default, about 25 minutes
    python -m experiments.bits_per_dim --datasets fashion_mnist --output_dir runs/bits_per_dim   # the same on Fashion
    python -m experiments.bits_per_dim --datasets cifar10 --full_protocol --output_dir runs/bpd_cifar   # a GPU

The CPU default trains each of the two models for 10 minutes on 8-bit MNIST (2 cores) and
evaluates 500 test images with K = 200; the same folder holds the Fashion-MNIST models when the
second command runs, and a rerun resumes.

Targets: 1.30 bits/dim or better for the conv model on 8-bit MNIST (CPU default), below the MLP's.
Reached on a shared 2-core CPU with --time_budget 300 (half the default): conv_mixture 1.219 +- 0.014
bits/dim against mlp_logistic's 1.402 +- 0.019 on 500 test images of 8-bit MNIST (K = 200); the
README has the table beside the blog post's CIFAR-10 numbers.

References:
  Salimans, Karpathy, Chen, Kingma. PixelCNN++. ICLR 2017.
  Kingma et al. Improving Variational Inference with Inverse Autoregressive Flow. NeurIPS 2016.
  Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfpvi  # noqa: E402
from experiments import common  # noqa: E402
from tfpvi.models import conv  # noqa: E402

DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn", "generated_rgb")
MODELS = ("conv_mixture", "mlp_logistic")
# The blog post on importance sampling and marginal likelihood in VAEs, CIFAR-10 test bits/dim.
PUBLISHED = {
  "source": "the blog post on importance sampling and marginal likelihood in VAEs (CIFAR-10, test set)",
  "values": {
    "ResNet VAE, one discretized logistic (the post's model)": {"bits_per_dim": 6.65},
    "IAF VAE (Kingma et al. 2016)": {"bits_per_dim": 3.11},
    "PixelCNN++ (Salimans et al. 2017)": {"bits_per_dim": 2.92},
  },
  "note": "CIFAR-10 figures: compare with the cifar10 rows where TFDS can download it; MNIST and Fashion-MNIST "
  "have no such table.",
}


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/bits_per_dim", "folder for results, figures and one sub-folder per model")
  datasets: tuple = common.flag(("mnist",), "data sets, 8-bit", choices=DATASETS)
  models: tuple = common.flag(MODELS, "models to train on each data set", choices=MODELS)
  latent_size: int = common.flag(32, "number of latent dimensions", minimum=1)
  conv_channels: tuple = common.flag(
    (32, 64), "channels of the conv encoder stages (the decoder reverses them)", minimum=1
  )
  conv_blocks: int = common.flag(1, "residual blocks per conv stage", minimum=0)
  num_components: int = common.flag(5, "logistic components per pixel of the conv model", minimum=1)
  mlp_hidden: tuple = common.flag((300, 300), "hidden sizes of the MLP encoder and decoder", minimum=1)
  batch_size: int = common.flag(64, "training batch size", minimum=1)
  learning_rate: float = common.flag(1e-3, "initial Adam learning rate (decayed 10x over the run)", above=0)
  time_budget: float = common.flag(
    600.0, "seconds of training per model, timed on this machine (if --steps is 0)", minimum=0
  )
  steps: int = common.flag(0, "if > 0, training steps per model, replacing --time_budget", minimum=0)
  eval_samples: int = common.flag(200, "importance samples K per test image", minimum=1)
  eval_examples: int = common.flag(500, "test images evaluated", minimum=1)
  eval_batch: int = common.flag(25, "test images per evaluation batch", minimum=1)
  eval_chunk: int = common.flag(100, "importance samples computed at once (memory)", minimum=1)
  train_examples: int = common.flag(60000, "training images used", minimum=1)
  steps_per_call: int = common.flag(25, "training steps per compiled call (speed only)", minimum=1)
  full_protocol: bool = common.flag(
    False,
    "a GPU run: 200 epochs per model, 10,000 test images with K = 1000 (replaces --steps, "
    "--time_budget, --eval_examples, --eval_samples)",
  )
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  EXCLUSIVE = (
    ("steps", "time_budget", "full_protocol"),
    ("full_protocol", "eval_examples"),
    ("full_protocol", "eval_samples"),
  )

  SMOKE = dict(
    datasets=("mnist", "generated_rgb"),
    latent_size=4,
    conv_channels=(8, 8),
    num_components=2,
    mlp_hidden=(16,),
    batch_size=8,
    steps=6,
    time_budget=0.0,
    eval_samples=40,
    eval_examples=6,
    eval_batch=3,
    eval_chunk=20,
    train_examples=64,
    steps_per_call=3,
  )

  def __post_init__(self):
    if self.full_protocol:
      object.__setattr__(self, "steps", 200 * math.ceil(self.train_examples / self.batch_size))
      object.__setattr__(self, "eval_examples", 10000)
      object.__setattr__(self, "eval_samples", 1000)

  def check(self) -> None:
    if self.steps == 0 and self.time_budget <= 0:
      raise ValueError("give --steps > 0 or --time_budget > 0")
    for field in ("datasets", "models"):
      values = getattr(self, field)
      if len(set(values)) != len(values):
        raise ValueError(f"--{field} lists a value twice: {','.join(values)}")


# ---------------------------------------------------------------------------------------------
# Data and models.


def load_images(name: str, split: str, limit: int, seed: int) -> np.ndarray:
  """8-bit images as float32 integers 0..255, [N, H, W, C]."""
  if name in ("mnist", "fashion_mnist"):
    images, _ = common.mnist_like(name, split, limit, eight_bit=True)
    return images
  if name == "generated_rgb":
    return tfpvi.data.rgb.generated_rgb(limit, seed=seed + (0 if split == "train" else 1))
  return tfpvi.data.rgb.load_rgb(name, split).images[:limit].astype(np.float32)


def test_data(name: str, config: Config) -> dict:
  """The "data" part of a model spec: how `python -m tfpvi.cli.evaluate` makes the test images again."""
  if name == "generated_rgb":  # load_images' test split: made again from its seed and count
    return {"name": name, "format": "eight_bit", "seed": config.seed + 1, "num_images": config.eval_examples}
  return {"name": name, "format": "eight_bit"}


def build_model(name: str, config: Config, image_shape) -> tfpvi.VAE:
  latent = config.latent_size
  if name == "conv_mixture":
    encoder = conv.ResNetEncoder(latent, channels=config.conv_channels, blocks_per_stage=config.conv_blocks)
    decoder = conv.ResNetDecoder(
      image_shape,
      channels=config.conv_channels[::-1],
      blocks_per_stage=config.conv_blocks,
      num_components=config.num_components,
    )
  else:
    encoder = tfpvi.encoders.GaussianMLP(config.mlp_hidden, latent, input_scale=1.0 / 255.0)
    decoder = tfpvi.decoders.DiscretizedLogisticMLP(config.mlp_hidden, image_shape)
  return tfpvi.VAE(encoder, decoder, tfpvi.standard_normal_prior(latent))


# ---------------------------------------------------------------------------------------------
# Training (resumable: checkpoints, and the plan in each model folder's run.json).

PLAN_SETTINGS = (
  "steps",
  "time_budget",
  "batch_size",
  "learning_rate",
  "train_examples",
  "latent_size",
  "conv_channels",
  "conv_blocks",
  "num_components",
  "mlp_hidden",
  "seed",
)


def plan_request(config: Config) -> dict:
  return json.loads(json.dumps({name: getattr(config, name) for name in PLAN_SETTINGS}))


def check_folders(config: Config, out: pathlib.Path) -> None:
  """Refuses (ValueError) a model folder trained with other settings, before anything is written."""
  for dataset in config.datasets:
    for model in config.models:
      common.check_plan(out / f"{dataset}_{model}", plan_request(config))


def train_one(model, config: Config, x_train: np.ndarray, run_dir: pathlib.Path):
  """Trains with the ELBO; returns (history, planned steps)."""
  optimizer = snt.optimizers.Adam(tf.Variable(config.learning_rate, trainable=False))
  fit = functools.partial(
    tfpvi.train.fit,
    model,
    functools.partial(tfpvi.objectives.elbo, num_samples=1, return_terms=True),
    x_train,
    optimizer=optimizer,
    batch_size=config.batch_size,
    output_dir=str(run_dir),
    seed=config.seed,
    logging=tfpvi.train.Logging(progress=False),
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=config.steps_per_call),
  )
  run_dir.mkdir(parents=True, exist_ok=True)

  def choose() -> int:
    if config.steps > 0:
      return config.steps
    # Time a few steps at the initial rate (compilation excluded); the full run resumes from them.
    return common.budget_steps(
      config.time_budget, fit, config.steps_per_call, minimum=common.CALIBRATION_CALLS * config.steps_per_call + 1
    )

  steps = common.plan_steps(run_dir, plan_request(config), choose)

  def learning_rate(step):  # exponential decay to a tenth of the initial rate at the last step
    return config.learning_rate * tf.pow(0.1, step / steps)

  history = fit(
    steps=steps,
    logging=tfpvi.train.Logging(every=max(1, steps // 100), progress=False),
    loop=tfpvi.train.Loop(steps_per_call=config.steps_per_call, learning_rate=learning_rate),
  )
  return history, steps


# ---------------------------------------------------------------------------------------------
# Evaluation and figures.


def evaluate(model, config: Config, x_test: np.ndarray) -> dict:
  started = time.time()
  summary, _ = tfpvi.evaluation.evaluate_dataset(
    model,
    x_test,
    config.eval_samples,
    batch_size=config.eval_batch,
    chunk_size=config.eval_chunk,
    seed=config.seed,
  )
  dims = int(np.prod(x_test.shape[1:]))
  to_bits = 1.0 / (dims * math.log(2.0))
  return {
    "test_log_px": summary["log_px"],
    "test_log_px_standard_error": summary["log_px_standard_error"],
    "bits_per_dim": summary["bits_per_dim"],
    "bits_per_dim_standard_error": summary["log_px_standard_error"] * to_bits,
    "monte_carlo_standard_error": summary.get("monte_carlo_standard_error"),
    "ess_mean": summary.get("ess_mean"),
    "khat_mean": summary.get("khat_mean"),
    "khat_fraction_above_0_7": summary.get("khat_fraction_above_0_7"),
    "eval_examples": summary["num_examples"],
    "eval_samples": config.eval_samples,
    "eval_seconds": round(time.time() - started, 1),
  }


def tile(images: np.ndarray, rows: int) -> np.ndarray:
  """[N, H, W, C] in 0..255 -> one [rows (H + 1), cols (W + 1), C] canvas in [0, 1]."""
  n, height, width, channels = images.shape
  cols = math.ceil(n / rows)
  canvas = np.full([rows * (height + 1), cols * (width + 1), channels], 0.6, np.float32)
  for i in range(n):  # tiling a figure: a loop over at most a few dozen images
    r, c = divmod(i, cols)
    canvas[r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width] = images[i] / 255.0
  return canvas


def save_images(panels: dict, path: pathlib.Path, rows: int) -> None:
  """One figure with a titled column per panel (grey or colour images)."""
  figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
  for axis, (title, images) in zip(axes[0], panels.items()):
    canvas = tile(np.asarray(images, np.float32), rows)
    axis.imshow(
      canvas[..., 0] if canvas.shape[-1] == 1 else canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    axis.set_title(title, fontsize=9)
    axis.axis("off")
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)


def figures(models: dict, x_test: np.ndarray, histories: dict, dataset: str, out: pathlib.Path, seed: int) -> None:
  dims = int(np.prod(x_test.shape[1:]))
  learning_curves(histories, dims, dataset, out / f"learning_curves_{dataset}.png")
  _sample_figures(models, x_test, dataset, out, seed)


def learning_curves(histories: dict, dims: int, dataset: str, path: pathlib.Path):
  """Training bound in bits/dim against training seconds, on a log axis with enough labels to read."""
  figure, axis = plt.subplots(figsize=(5.5, 3.6))
  for name, history in histories.items():
    axis.plot(history["wall_time"], history["loss"] / (dims * math.log(2.0)), label=name)
  axis.set_xlabel("training seconds")
  axis.set_ylabel("negative ELBO (bits/dim)")
  axis.set_yscale("log")
  # Labels at 1, 2 and 5 times each power of ten, and plain numbers: a bits/dim curve spans less
  # than a decade, where the default log axis shows one label or none.
  axis.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
  axis.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
  axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  axis.set_title(f"8-bit {dataset}: training bound")
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return figure


def _sample_figures(models: dict, x_test: np.ndarray, dataset: str, out: pathlib.Path, seed: int) -> None:
  inputs = x_test[:16]
  panels = {"test images": inputs}
  samples = {}
  for index, (name, model) in enumerate(models.items()):
    z_seed, x_seed, r_seed = (tf.constant([seed, 10 * index + k]) for k in range(3))
    q = model.posterior(inputs)
    panels[f"{name}: reconstruction"] = model.likelihood(q.sample(seed=r_seed)).sample(seed=x_seed).numpy()
    samples[f"{name}: sample"] = model.likelihood(model.prior.sample(16, seed=z_seed)).sample(seed=x_seed).numpy()
  save_images(panels, out / f"reconstructions_{dataset}.png", rows=4)
  save_images(samples, out / f"samples_{dataset}.png", rows=4)


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folders)
  metrics, trained = {}, {}
  for dataset in config.datasets:
    x_train = load_images(dataset, "train", config.train_examples, config.seed)
    x_test = load_images(dataset, "test", config.eval_examples, config.seed)
    image_shape = list(x_train.shape[1:])
    models, histories = {}, {}
    for name in config.models:
      key = f"{dataset}_{name}"
      common.say(f"[{key}] training ...")
      tf.random.set_seed(config.seed)
      model = build_model(name, config, image_shape)
      tfpvi.run_record.update(out / key, data=test_data(dataset, config))  # for `python -m tfpvi.cli.evaluate`
      history, steps = train_one(model, config, x_train, out / key)
      trained[key] = common.trained_record(history, steps)
      common.say(
        f"[{key}] {trained[key]['trained_steps']} steps in {trained[key]['train_seconds']:.0f} s; "
        f"log p(x) with K={config.eval_samples} on {len(x_test)} test images ..."
      )
      result = evaluate(model, config, x_test)
      result.update(
        train_steps=trained[key]["trained_steps"],
        train_seconds=trained[key]["train_seconds"],
        final_train_bits_per_dim=float(history["loss"].iloc[-1]) / (np.prod(image_shape) * math.log(2.0)),
      )
      metrics[key] = result
      models[name], histories[name] = model, history
      common.say(
        f"[{key}] {result['bits_per_dim']:.4f} +- {result['bits_per_dim_standard_error']:.4f} bits/dim "
        f"(log p(x) {result['test_log_px']:.1f} nats, ESS {result['ess_mean']:.1f}, "
        f"k-hat {result['khat_mean']:.2f})"
      )
    figures(models, x_test, histories, dataset, out, config.seed)
  common.write_results(out, config, metrics, started, trained=trained, published=PUBLISHED)
  print(table(metrics))
  common.say(f"results: {out}/results.json; figures: {out}/learning_curves_*.png, reconstructions_*.png, samples_*.png")
  return metrics


def table(metrics: dict) -> str:
  lines = [
    f"{'data set / model':<30} {'steps':>7} {'train s':>8} {'log p(x)':>10} {'bits/dim':>14} {'ESS':>7} {'k-hat':>6}"
  ]
  for key, m in metrics.items():
    if "bits_per_dim" not in m:
      continue
    lines.append(
      f"{key:<30} {m['train_steps']:>7} {m['train_seconds']:>8.0f} {m['test_log_px']:>10.1f} "
      f"{m['bits_per_dim']:>7.4f}+-{m['bits_per_dim_standard_error']:.4f} {m['ess_mean']:>7.1f} "
      f"{m['khat_mean']:>6.2f}"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  common.run(main)
