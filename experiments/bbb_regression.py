"""Bayes by Backprop on Blundell et al.'s curve-fitting task: predictive spread in and out of the data.

Data: x ~ U[0, 0.5], y = x + 0.3 sin(2 pi (x + eps)) + 0.3 sin(4 pi (x + eps)) + eps with
eps ~ N(0, 0.02^2) (the paper writes N(0, 0.02); we read 0.02 as the standard deviation).
Models: an MLP with Bayesian weights (`tfpvi.bnn.MLP`, diagonal Gaussian q(w), scale-mixture prior)
trained with `tfpvi.bnn.elbo` (the minibatch free energy with KL weights over an epoch), and a
standard MLP of the same sizes trained by maximum likelihood; both with a Gaussian likelihood of
known noise scale. Both are trained with `tfpvi.train.fit` on (x, y) batches.
Evaluation: the predictive distribution over x in [-0.2, 1.2] (for BBB a mixture over weight
samples, `tfpvi.bnn.predictive_distribution`): its median and interquartile range (the paper's
Figure 5) and its standard deviation averaged inside the training range [0, 0.5] and outside it.
Figures: regression.png (BBB and the standard network side by side), loss_curves.png.

    python -m experiments.bbb_regression --output_dir runs/bbb_regression

References:
  Blundell, Cornebise, Kavukcuoglu & Wierstra. Weight Uncertainty in Neural Networks. ICML 2015.
"""

from __future__ import annotations

import dataclasses
import functools

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

TRAIN_RANGE = (0.0, 0.5)
PLOT_RANGE = (-0.2, 1.2)


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/bbb_regression", "folder for checkpoints, history, results and figures")
  hidden_sizes: tuple = common.flag((100, 100), "hidden layer sizes of both networks", minimum=1)
  train_examples: int = common.flag(200, "training points, x uniform in [0, 0.5]", minimum=2)
  noise_scale: float = common.flag(0.02, "standard deviation of eps, also the likelihood's known noise", above=0)
  prior: str = common.flag(
    "scale_mixture", "weight prior of the Bayesian network", choices=("scale_mixture", "gaussian")
  )
  prior_pi: float = common.flag(0.5, "scale mixture: weight of the wide component", above=0)
  prior_sigma1: float = common.flag(1.0, "scale mixture: sigma1 (wide); gaussian prior: its scale", above=0)
  prior_sigma2: float = common.flag(float(np.exp(-6.0)), "scale mixture: sigma2 (narrow)", above=0)
  estimator: str = common.flag("sample", "how weights are sampled", choices=bnn.ESTIMATORS)
  init_rho: float = common.flag(-3.0, "initial rho of every Bayesian weight (sigma = softplus(rho))")
  kl_weighting: str = common.flag("blundell", "KL weights over an epoch's minibatches", choices=bnn.KL_WEIGHTINGS)
  batch_size: int = common.flag(50, "training batch size", minimum=1)
  steps: int = common.flag(15000, "training steps per network", minimum=1)
  learning_rate: float = common.flag(1e-2, "Adam learning rate", above=0)
  predictive_samples: int = common.flag(500, "weight samples in the BBB predictive mixture", minimum=2)
  grid_points: int = common.flag(281, "points on [-0.2, 1.2] where the predictive is evaluated", minimum=8)
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (data, initialisation, minibatches, weight samples)")

  SMOKE = dict(hidden_sizes=(16,), train_examples=40, batch_size=20, steps=40, predictive_samples=20, grid_points=29)

  def check(self) -> None:
    if self.batch_size > self.train_examples:
      raise ValueError(f"--batch_size must be at most --train_examples ({self.train_examples}), got {self.batch_size}")
    if self.prior == "scale_mixture" and not (self.prior_pi < 1 and self.prior_sigma2 < self.prior_sigma1):
      raise ValueError(
        "the scale mixture needs prior_pi < 1 and prior_sigma2 < prior_sigma1, got "
        f"pi={self.prior_pi}, sigma1={self.prior_sigma1}, sigma2={self.prior_sigma2}"
      )


def curve(x: np.ndarray, eps: np.ndarray) -> np.ndarray:
  """Blundell et al.'s curve, y = x + 0.3 sin(2 pi (x + eps)) + 0.3 sin(4 pi (x + eps)) + eps."""
  return x + 0.3 * np.sin(2 * np.pi * (x + eps)) + 0.3 * np.sin(4 * np.pi * (x + eps)) + eps


def make_data(config: Config) -> tuple[np.ndarray, np.ndarray]:
  """(x [N, 1], y [N, 1]) float32 training points."""
  rng = np.random.default_rng(config.seed)
  x = rng.uniform(*TRAIN_RANGE, size=[config.train_examples, 1])
  y = curve(x, rng.normal(0.0, config.noise_scale, size=x.shape))
  return x.astype(np.float32), y.astype(np.float32)


def make_prior(config: Config) -> tfd.Distribution:
  if config.prior == "gaussian":
    return bnn.gaussian_prior(config.prior_sigma1)
  return bnn.scale_mixture_prior(config.prior_pi, config.prior_sigma1, config.prior_sigma2)


@tfpvi.config.configurable
class PointMLP(snt.Module):
  """A standard MLP with the `bnn.MLP` interface: `outputs(x, ...)` ignores seeds; KL is 0."""

  def __init__(self, hidden_sizes, output_size, likelihood, name=None):
    super().__init__(name=name)
    self.likelihood = likelihood
    self._net = snt.nets.MLP(list(hidden_sizes) + [output_size], activation=tf.nn.relu)

  def outputs(self, x, *, seed=None, num_samples=None, mode="sample", return_kl=False):
    del seed, mode  # deterministic weights
    h = self._net(tf.cast(x, tf.float32))  # x [B, 1]
    if num_samples is not None:
      h = tf.tile(h[None], [num_samples, 1, 1])
    return (h, tf.constant(0.0)) if return_kl else h


def train(model, name: str, data, config: Config, out, *, kl_weight):
  """Trains one network with fit in out/name; returns its history."""
  objective = functools.partial(bnn.elbo, return_terms=True)
  return tfpvi.train.fit(
    model,
    objective,
    data,
    optimizer=snt.optimizers.Adam(config.learning_rate),
    steps=config.steps,
    batch_size=config.batch_size,
    objective_kwargs={"kl_weight": kl_weight},
    output_dir=str(out / name),
    seed=config.seed,
    logging=tfpvi.train.Logging(every="powers_of_two"),
    checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=100),
  )


def predictive_summary(model, grid: np.ndarray, config: Config) -> dict[str, np.ndarray]:
  """Median, quartiles and standard deviation of the predictive over the grid [G]."""
  predictive = bnn.predictive_distribution(
    model, grid[:, None], num_samples=config.predictive_samples, seed=[config.seed, 7]
  )
  draws = predictive.sample(2000, seed=[config.seed, 8]).numpy()[..., 0]  # [D, G]
  _, variance = bnn.predictive_moments(predictive)
  q25, median, q75 = np.quantile(draws, [0.25, 0.5, 0.75], axis=0)
  return {"median": median, "q25": q25, "q75": q75, "std": np.sqrt(variance.numpy()[:, 0])}


def spread(summary, grid) -> dict[str, float]:
  inside = (grid >= TRAIN_RANGE[0]) & (grid <= TRAIN_RANGE[1])
  return {
    "predictive_std_inside": float(summary["std"][inside].mean()),
    "predictive_std_outside": float(summary["std"][~inside].mean()),
    "iqr_inside": float((summary["q75"] - summary["q25"])[inside].mean()),
    "iqr_outside": float((summary["q75"] - summary["q25"])[~inside].mean()),
  }


def plot(summaries, grid, data, path) -> None:
  x, y = data
  figure, axes = plt.subplots(1, len(summaries), figsize=(5 * len(summaries), 4), sharey=True)
  for ax, (name, summary) in zip(np.atleast_1d(axes), summaries.items()):
    ax.fill_between(grid, summary["q25"], summary["q75"], color="tab:blue", alpha=0.3, label="interquartile range")
    ax.plot(grid, summary["median"], color="tab:blue", label="median")
    ax.plot(x[:, 0], y[:, 0], "kx", markersize=3, label="training data")
    ax.plot(grid, curve(grid, 0.0), color="grey", linestyle=":", label="noise-free curve")
    ax.axvspan(*TRAIN_RANGE, color="grey", alpha=0.08)
    ax.set_title(name)
    ax.set_xlabel("x")
    ax.set_ylim(-1.0, 2.0)
  np.atleast_1d(axes)[0].set_ylabel("y")
  np.atleast_1d(axes)[0].legend(loc="upper left", fontsize=8)
  figure.tight_layout()
  tfpvi.plot.save(figure, str(path))
  plt.close(figure)


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__)
  tf.random.set_seed(config.seed)
  data = make_data(config)
  likelihood = bnn.normal_likelihood(config.noise_scale)
  num_batches = -(-config.train_examples // config.batch_size)
  models = {
    "bayes_by_backprop": bnn.MLP(
      config.hidden_sizes,
      1,
      prior=make_prior(config),
      estimator=config.estimator,
      likelihood=likelihood,
      init_rho=config.init_rho,
    ),
    "standard_network": PointMLP(config.hidden_sizes, 1, likelihood),
  }
  kl_weights = {"bayes_by_backprop": bnn.kl_weight_schedule(config.kl_weighting, num_batches), "standard_network": 0.0}
  histories = {
    name: train(model, name, data, config, out, kl_weight=kl_weights[name]) for name, model in models.items()
  }
  grid = np.linspace(*PLOT_RANGE, config.grid_points).astype(np.float32)
  summaries = {name: predictive_summary(model, grid, config) for name, model in models.items()}
  metrics = {name: spread(summary, grid) for name, summary in summaries.items()}
  bbb = metrics["bayes_by_backprop"]
  metrics["bbb_std_ratio_outside_to_inside"] = bbb["predictive_std_outside"] / bbb["predictive_std_inside"]
  metrics["bbb_final_kl_nats"] = float(histories["bayes_by_backprop"]["kl"].iloc[-1])
  plot(
    {"Bayes by Backprop": summaries["bayes_by_backprop"], "standard network": summaries["standard_network"]},
    grid,
    data,
    out / "regression.png",
  )
  tfpvi.plot.loss_curves(
    histories,
    terms=["loss"],
    title="negative minibatch objective, per point",
    log_y=False,
    path=str(out / "loss_curves.png"),
  )
  trained = {name: common.trained_record(history, config.steps) for name, history in histories.items()}
  common.write_results(out, config, metrics, started, trained=trained)
  common.say(
    f"BBB regression: predictive std inside [0, 0.5] {bbb['predictive_std_inside']:.4f}, outside "
    f"{bbb['predictive_std_outside']:.4f} (ratio {metrics['bbb_std_ratio_outside_to_inside']:.1f}); "
    f"results and figures in {out}/"
  )
  return metrics


if __name__ == "__main__":
  common.run(main)
