"""Bayes by Backprop on MNIST: test error against SGD and dropout, then pruning by signal-to-noise.

Models (one per --models entry and hidden width, 2 hidden ReLU layers of that width, 10 classes):
- bbb_gaussian, bbb_scale_mixture: `tfpvi.bnn.MLP` with a diagonal Gaussian q(w) (sigma =
  softplus(rho)) and a N(0, prior_sigma^2) or scale-mixture prior, trained with `tfpvi.bnn.elbo`
  (minibatch free energy, KL weighted over an epoch's minibatches by --kl_weighting), one weight
  sample per minibatch;
- sgd: the same MLP with point weights, trained by maximum likelihood (cross-entropy);
- dropout: the point MLP with dropout on the hidden units (Hinton et al. 2012).
All are trained the same way: `tfpvi.train.fit` on (image, label) batches, Adam, the same steps,
batch size and seed. Pixels are scaled to [0, 1]; all 60,000 training images are used.
Evaluation: test error of the posterior-mean network and of the predictive averaged over
--predictive_samples weight samples (BBB), of the trained network (baselines). Pruning (Blundell et
al. Table 2): the weights of each BBB model are ranked by signal-to-noise |mu| / sigma; the lowest
50% ... 98% are set to 0 and the test error of the posterior-mean network is recorded.
Figures: loss_curves.png, test_error.png, snr_density.png (density of 10 log10(|mu| / sigma),
Blundell Figure 4), pruning.png.

    python -m experiments.bayes_by_backprop --output_dir runs/bayes_by_backprop
    python -m experiments.bayes_by_backprop --full_protocol --output_dir runs/bbb_full   # 600 epochs, 3 widths

Blundell et al. report 1.32% test error for the scale-mixture prior at 1,200 units (600 epochs of
SGD); the CPU default trains far less and reports what it reaches.

References:
  Blundell, Cornebise, Kavukcuoglu & Wierstra. Weight Uncertainty in Neural Networks. ICML 2015.
  Hinton et al. Improving neural networks by preventing co-adaptation of feature detectors. 2012.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfpvi  # noqa: E402
from experiments import common  # noqa: E402
from tfpvi import bnn  # noqa: E402

tfd = tfp.distributions

MODELS = ("bbb_gaussian", "bbb_scale_mixture", "sgd", "dropout")
FULL_PROTOCOL_EPOCHS = 600


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/bayes_by_backprop", "folder for checkpoints, history, results and figures")
  models: tuple = common.flag(MODELS, "models to train", choices=MODELS)
  widths: tuple = common.flag((400,), "hidden width(s); each model has 2 hidden layers of this width", minimum=1)
  steps: int = common.flag(4000, "training steps per model", minimum=1)
  batch_size: int = common.flag(128, "training batch size", minimum=1)
  learning_rate: float = common.flag(1e-3, "Adam learning rate", above=0)
  prior_sigma: float = common.flag(1.0, "scale of the Gaussian prior (bbb_gaussian)", above=0)
  mixture_pi: float = common.flag(0.5, "scale mixture: weight of the wide component", above=0)
  mixture_sigma1: float = common.flag(1.0, "scale mixture: sigma1 (wide); Blundell's grid: exp(0, -1, -2)", above=0)
  mixture_sigma2: float = common.flag(float(math.exp(-6)), "scale mixture: sigma2 (narrow); exp(-6, -7, -8)", above=0)
  estimator: str = common.flag("sample", "how BBB samples weights", choices=bnn.ESTIMATORS)
  kl_weighting: str = common.flag("uniform", "KL weights over an epoch's minibatches", choices=bnn.KL_WEIGHTINGS)
  init_rho: float = common.flag(-5.0, "initial rho of every BBB weight (sigma = softplus(rho))")
  dropout_rate: float = common.flag(0.5, "dropout rate of the hidden units (dropout baseline)", minimum=0)
  predictive_samples: int = common.flag(10, "weight samples averaged in the BBB predictive", minimum=1)
  prune_fractions: tuple = common.flag((0.5, 0.75, 0.95, 0.98), "fractions of weights removed by SNR", minimum=0)
  train_examples: int = common.flag(60000, "number of MNIST training images used", minimum=1, maximum=60000)
  eval_examples: int = common.flag(10000, "number of MNIST test images evaluated", minimum=1, maximum=10000)
  steps_per_call: int = common.flag(100, "training steps per compiled call (speed only)", minimum=1)
  full_protocol: bool = common.flag(
    False,
    f"Blundell et al.'s scale: {FULL_PROTOCOL_EPOCHS} epochs, widths 400, 800, 1200, the full test set "
    "(replaces --steps, --widths, --eval_examples)",
  )
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, weight samples)")

  SMOKE = dict(
    widths=(16,),
    steps=30,
    batch_size=32,
    train_examples=512,
    eval_examples=200,
    predictive_samples=3,
    steps_per_call=10,
  )

  def __post_init__(self):
    if self.full_protocol:
      steps_per_epoch = math.ceil(self.train_examples / self.batch_size)
      object.__setattr__(self, "steps", FULL_PROTOCOL_EPOCHS * steps_per_epoch)
      object.__setattr__(self, "widths", (400, 800, 1200))
      object.__setattr__(self, "eval_examples", 10000)

  def check(self) -> None:
    if len(set(self.models)) != len(self.models):
      raise ValueError(f"--models lists a model twice: {','.join(self.models)}")
    if not self.mixture_pi < 1 or not self.mixture_sigma2 < self.mixture_sigma1:
      raise ValueError(
        "the scale mixture needs mixture_pi < 1 and mixture_sigma2 < mixture_sigma1, got "
        f"pi={self.mixture_pi}, sigma1={self.mixture_sigma1}, sigma2={self.mixture_sigma2}"
      )
    if not self.dropout_rate < 1 or any(f >= 1 for f in self.prune_fractions):
      raise ValueError("--dropout_rate and --prune_fractions must be below 1")
    if self.batch_size > self.train_examples:
      raise ValueError(f"--batch_size must be at most --train_examples ({self.train_examples}), got {self.batch_size}")


@tfpvi.config.configurable
class PointMLP(snt.Module):
  """The baselines: an MLP with point weights and optional dropout, with the `bnn.MLP` interface.

  `outputs(x, seed=..., num_samples=S, mode=...)`: with mode "sample" and dropout_rate > 0 every
  call drops hidden units with stateless noise from `seed` (training); mode "mean" is the usual
  test-time network (no dropout; inverted dropout keeps the scale). The KL is 0.
  """

  def __init__(self, hidden_sizes, output_size, *, dropout_rate=0.0, name=None):
    super().__init__(name=name)
    self.likelihood = bnn.categorical_likelihood
    self.dropout_rate = float(dropout_rate)
    self._flatten_input = snt.Flatten()
    self.layers = [snt.Linear(size, name=f"linear_{i}") for i, size in enumerate(list(hidden_sizes) + [output_size])]

  def outputs(self, x, *, seed=None, num_samples=None, mode="sample", return_kl=False):
    h = self._flatten_input(tf.cast(x, tf.float32))
    if num_samples is not None:
      h = tf.tile(h[None], [int(num_samples), 1, 1])
    drop = mode == "sample" and self.dropout_rate > 0
    seeds = tfp.random.split_seed(tfp.random.sanitize_seed(seed), len(self.layers)) if drop else None
    for i, layer in enumerate(self.layers):
      h = layer(h)
      if i < len(self.layers) - 1:
        h = tf.nn.relu(h)
        if drop:
          h = tf.nn.experimental.stateless_dropout(h, self.dropout_rate, seed=seeds[i])
    return (h, tf.constant(0.0)) if return_kl else h


def build(name: str, width: int, config: Config):
  hidden = [width, width]
  if name == "sgd":
    return PointMLP(hidden, 10)
  if name == "dropout":
    return PointMLP(hidden, 10, dropout_rate=config.dropout_rate)
  prior = (
    bnn.gaussian_prior(config.prior_sigma)
    if name == "bbb_gaussian"
    else bnn.scale_mixture_prior(config.mixture_pi, config.mixture_sigma1, config.mixture_sigma2)
  )
  return bnn.MLP(hidden, 10, prior=prior, estimator=config.estimator, init_rho=config.init_rho)


def train(model, name: str, train_data, config: Config, run_dir):
  num_batches = math.ceil(len(train_data[0]) / config.batch_size)
  kl_weight = bnn.kl_weight_schedule(config.kl_weighting, num_batches) if name.startswith("bbb") else 0.0
  return tfpvi.train.fit(
    model,
    functools.partial(bnn.elbo, return_terms=True),
    train_data,
    optimizer=snt.optimizers.Adam(config.learning_rate),
    steps=config.steps,
    batch_size=config.batch_size,
    objective_kwargs={"kl_weight": kl_weight},
    output_dir=str(run_dir),
    seed=config.seed,
    logging=tfpvi.train.Logging(every=max(1, config.steps // 100)),
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=config.steps_per_call),
  )


def test_error(model, x, y, *, mode="mean", num_samples=None, seed=(0, 0), batch=1000) -> float:
  """Test error (%) of argmax p(y | x): the mean network, or the average of num_samples weight samples."""
  wrong = 0
  for start in range(0, len(x), batch):
    if num_samples is None:
      probs = tf.nn.softmax(model.outputs(x[start : start + batch], mode=mode))
    else:
      predictive = bnn.predictive_distribution(
        model, x[start : start + batch], num_samples=num_samples, seed=[seed[0], seed[1] + start]
      )
      probs = tf.einsum(
        "bs,bsk->bk",
        predictive.mixture_distribution.probs_parameter(),
        predictive.components_distribution.probs_parameter(),
      )
    wrong += int(np.sum(np.argmax(probs.numpy(), -1) != y[start : start + batch]))
  return 100.0 * wrong / len(x)


def signal_to_noise(model: bnn.MLP) -> np.ndarray:
  """|mu| / sigma of every kernel weight of the network, flattened."""
  return np.concatenate(
    [(np.abs(layer.kernel_loc.numpy()) / tf.nn.softplus(layer.kernel_rho).numpy()).ravel() for layer in model.layers]
  )


def pruned_errors(model: bnn.MLP, x, y, fractions) -> dict[str, float]:
  """Test error (%) of the mean network with the lowest-SNR fraction of kernel weights set to 0."""
  snr = signal_to_noise(model)
  originals = [layer.kernel_loc.numpy() for layer in model.layers]
  errors = {}
  try:
    for fraction in fractions:
      threshold = np.quantile(snr, fraction)
      for layer, loc in zip(model.layers, originals):
        keep = np.abs(loc) / tf.nn.softplus(layer.kernel_rho).numpy() > threshold
        layer.kernel_loc.assign(loc * keep)
      errors[f"{100 * fraction:g}%"] = test_error(model, x, y)
  finally:
    for layer, loc in zip(model.layers, originals):
      layer.kernel_loc.assign(loc)
  return errors


def plot_snr(snrs: dict[str, np.ndarray], path) -> None:
  figure, ax = plt.subplots(figsize=(6, 4))
  for name, snr in snrs.items():
    db = 10 * np.log10(np.maximum(snr, 1e-12))
    density, edges = np.histogram(db, bins=100, density=True)
    ax.plot(0.5 * (edges[1:] + edges[:-1]), density, label=name)
  ax.set_xlabel("signal-to-noise ratio 10 log10(|mu| / sigma) (dB)")
  ax.set_ylabel("density")
  ax.legend(fontsize=8)
  figure.tight_layout()
  tfpvi.plot.save(figure, str(path))
  plt.close(figure)


def loss_curves(histories, path):
  """Cross-entropy of every model on one axis and BBB's KL on its own (the free energy's scale is another)."""
  return tfpvi.plot.loss_curves(
    histories,
    terms=["log_likelihood", "kl"],
    log_y=False,
    title="training curves",
    term_labels={
      "log_likelihood": "cross-entropy -log p(y|x, w), nats per image",
      "kl": "KL(q(w) || p(w)), whole network (BBB)",
    },
    caption="Cross-entropy is comparable across models; BBB's training loss adds its KL divided by the "
    "number of images\n(Blundell et al.'s free energy). Baselines have no KL term (0).",
    path=str(path),
  )


def plot_bars(errors: dict[str, float], path, *, xlabel: str, title: str) -> None:
  figure, ax = plt.subplots(figsize=(max(5, 0.9 * len(errors)), 4))
  ax.bar(list(errors), list(errors.values()), color="tab:blue")
  ax.set_ylabel("test error (%)")
  ax.set_xlabel(xlabel)
  ax.set_title(title)
  ax.tick_params(axis="x", labelrotation=30)
  figure.tight_layout()
  tfpvi.plot.save(figure, str(path))
  plt.close(figure)
  return figure


def plot_pruning(pruning: dict[str, dict[str, float]], path) -> None:
  figure, ax = plt.subplots(figsize=(6, 4))
  for name, errors in pruning.items():
    ax.plot([float(k.rstrip("%")) for k in errors], list(errors.values()), "o-", label=name)
  ax.set_xlabel("weights removed (%)")
  ax.set_ylabel("test error (%)")
  ax.legend(fontsize=8)
  figure.tight_layout()
  tfpvi.plot.save(figure, str(path))
  plt.close(figure)


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__)
  x_train, y_train = common.mnist_like("mnist", "train", config.train_examples)
  x_test, y_test = common.mnist_like("mnist", "test", config.eval_examples)
  tf.random.set_seed(config.seed)
  train_data = (x_train, y_train.astype(np.int32))
  errors, pruning, snrs, histories, trained = {}, {}, {}, {}, {}
  for width in config.widths:
    for name in config.models:
      run = f"{name}_{width}"
      common.say(f"training {run} for {config.steps} steps")
      model = build(name, width, config)
      histories[run] = train(model, name, train_data, config, out / run)
      trained[run] = common.trained_record(histories[run], config.steps)
      errors[run] = {"mean_weights": test_error(model, x_test, y_test)}
      if name.startswith("bbb"):
        errors[run]["predictive"] = test_error(
          model, x_test, y_test, num_samples=config.predictive_samples, seed=(config.seed, 11)
        )
        errors[run]["final_kl_nats"] = float(histories[run]["kl"].iloc[-1])
        snrs[run] = signal_to_noise(model)
        pruning[run] = {
          "0%": errors[run]["mean_weights"],
          **pruned_errors(model, x_test, y_test, config.prune_fractions),
        }
  metrics = {"test_error_percent": errors, "pruning_test_error_percent": pruning}
  loss_curves(histories, out / "loss_curves.png")
  plot_bars(
    {run: e["predictive" if "predictive" in e else "mean_weights"] for run, e in errors.items()},
    out / "test_error.png",
    xlabel="model, hidden units per layer",
    title="MNIST test error (BBB: predictive average)",
  )
  if snrs:
    plot_snr(snrs, out / "snr_density.png")
    plot_pruning(pruning, out / "pruning.png")
  common.write_results(
    out,
    config,
    metrics,
    started,
    trained=trained,
    published={
      "source": "Blundell, Cornebise, Kavukcuoglu, Wierstra 2015, Table 1 (MNIST test error)",
      "values": {"Bayes by Backprop, scale-mixture prior, 2 x 1200 units": {"test_error_percent": 1.32}},
      "note": "after 600 epochs (--full_protocol); the CPU default is 2 x 400 units for a few epochs.",
    },
  )
  common.say(
    "MNIST test error (%): "
    + ", ".join(f"{run} {e.get('predictive', e['mean_weights']):.2f}" for run, e in errors.items())
  )
  if pruning:
    common.say(
      "pruning (test error % of the mean network): "
      + "; ".join(f"{run}: " + ", ".join(f"{k} {v:.2f}" for k, v in p.items()) for run, p in pruning.items())
    )
  common.say(f"results and figures in {out}/")
  return metrics


if __name__ == "__main__":
  common.run(main)
