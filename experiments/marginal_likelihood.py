"""log p(x) and bits/dim by importance sampling, beside the naive estimate (after the importance-sampling blog post).

Three VAEs with MLP encoder and decoder ([300, 300], ReLU, 32 latents, N(0, I) prior):
- "bernoulli_mnist": Bernoulli p(x|z) on binarized MNIST (dynamic for training, static for test);
- "logistic_mnist": discretized-logistic p(x|z) on 8-bit MNIST (integers 0..255);
- "logistic_fashion_mnist": the same on 8-bit Fashion-MNIST.
(--num_components > 1 uses a mixture of discretized logistics, PixelCNN++'s likelihood.)
Each is trained with the ELBO (Adam 1e-3, batch 100), then log p(x) of test images is estimated
two ways with the same number of samples K:
- importance sampling with q(z|x) as proposal (the blog post's eq. 10; `tfpvi.evaluation`);
- naive Monte Carlo with the prior as proposal, p(x) ~ mean_k p(x|z_k), z_k ~ p(z) (eq. 7),
  which collapses in high dimension: it is far below the IS estimate.
bits/dim = -log2 p(x) / 784, with the likelihood's own discretization (binary or 256 levels).

    python -m experiments.marginal_likelihood --output_dir runs/marginal_likelihood

References:
  Salimans et al. PixelCNN++. ICLR 2017. Burda et al. Importance Weighted Autoencoders. ICLR 2016.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import plotnine as gg
import sonnet as snt
import tensorflow as tf

import tfpvi
from experiments import common

MODELS = ("bernoulli_mnist", "logistic_mnist", "logistic_fashion_mnist")


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str = common.flag("runs/marginal_likelihood", "folder for results, figures and one sub-folder per model")
  models: tuple = common.flag(MODELS, "models to train and evaluate", choices=MODELS)
  hidden_sizes: tuple = common.flag((300, 300), "hidden layer sizes of the encoder and decoder MLPs", minimum=1)
  latent_size: int = common.flag(32, "number of latent dimensions", minimum=1)
  num_components: int = common.flag(
    1, "mixture components of the discretized-logistic likelihood (1: a single logistic)", minimum=1
  )
  learning_rate: float = common.flag(1e-3, "Adam learning rate", above=0)
  batch_size: int = common.flag(100, "training batch size", minimum=1)
  steps: int = common.flag(4000, "training steps per model", minimum=1)
  eval_samples: int = common.flag(1000, "samples K per test image for both estimates of log p(x)", minimum=1)
  eval_examples: int = common.flag(500, "number of test images evaluated", minimum=1, maximum=10000)
  eval_batch: int = common.flag(50, "test images per evaluation batch", minimum=1)
  train_examples: int = common.flag(60000, "number of training images used", minimum=1, maximum=60000)
  resume: str = common.resume_flag()
  seed: int = common.flag(0, "random seed (initialisation, minibatches, evaluation)")

  SMOKE = dict(
    hidden_sizes=(16,), latent_size=4, steps=10, eval_samples=20, eval_examples=10, eval_batch=5, train_examples=300
  )

  def check(self) -> None:
    if len(set(self.models)) != len(self.models):
      raise ValueError(f"--models lists a model twice: {','.join(self.models)}")


def check_folders(config: Config, out) -> None:
  for name in config.models:
    likelihood, _, dataset = name.partition("_")
    common.check_spec(out / name, model_spec(config, likelihood, dataset))


def model_spec(config, likelihood: str, dataset: str) -> dict:
  hidden = list(config.hidden_sizes)
  decoder = {"hidden_sizes": hidden, "output_shape": [28, 28, 1]}
  if likelihood == "bernoulli":
    decoder["class"] = "BernoulliMLP"
  elif config.num_components > 1:
    decoder.update({"class": "DiscretizedLogisticMixtureMLP", "num_components": config.num_components})
  else:
    decoder["class"] = "DiscretizedLogisticMLP"
  return {
    "encoder": {
      "class": "GaussianMLP",
      "hidden_sizes": hidden,
      "latent_size": config.latent_size,
      # The encoder sees 8-bit intensities scaled to [0, 1].
      "input_scale": 1.0 if likelihood == "bernoulli" else 1.0 / 255.0,
    },
    "decoder": decoder,
    "prior": {"class": "standard_normal", "latent_size": config.latent_size},
    "data": {"name": dataset, "format": "binary" if likelihood == "bernoulli" else "eight_bit"},
  }


def data_for(name: str, config):
  likelihood, _, dataset = name.partition("_")
  if likelihood == "bernoulli":
    x_train, _ = common.mnist_like(dataset, "train", config.train_examples)
    x_test, _ = common.binarized_test_set(dataset, config.eval_examples)
    return likelihood, x_train, x_test, tfpvi.data.binarize_dynamic
  x_train, _ = common.mnist_like(dataset, "train", config.train_examples, eight_bit=True)
  x_test, _ = common.mnist_like(dataset, "test", config.eval_examples, eight_bit=True)
  return likelihood, x_train, x_test, None


def estimate(model, x_test, config, proposal: str) -> np.ndarray:
  """Per-example log p(x) [N] with the posterior (importance sampling) or the prior as proposal."""

  def batch(x, seed):
    return tfpvi.evaluation.log_marginal_likelihood(
      model,
      x,
      config.eval_samples,
      chunk_size=min(500, config.eval_samples),
      proposal=proposal,
      seed=seed,
    )

  batch = tfpvi.xla.function(
    batch, jit_compile=tfpvi.xla.resolve(), reduce_retracing=True
  )  # one per model and proposal

  return np.concatenate(
    [
      batch(tf.constant(x_test[i : i + config.eval_batch]), tf.constant([config.seed, i])).numpy()
      for i in range(0, len(x_test), config.eval_batch)
    ]
  )


def estimates_figure(table: pd.DataFrame, metrics: dict, num_samples: int, num_images: int) -> gg.ggplot:
  """Both estimates per model as points on the model's own scale, labelled with their paired difference.

  The two estimates are of the same images, so what tells them apart is the spread of the per-image
  difference, not the spread of log p(x) over images (which is much larger and shared).
  """
  labels = {
    # bits/dim is -log2 p(x) / 784: a log p(x) below IS is a bits/dim above it.
    name: f"{name}\nnaive - IS = {-m['naive_minus_importance']['log_px'] / (784 * np.log(2.0)):+.3f} "
    f"+- {m['naive_minus_importance']['standard_error'] / (784 * np.log(2.0)):.3f} bits/dim"
    for name, m in metrics.items()
  }
  table = table.assign(panel=table["model"].map(labels))
  return (
    gg.ggplot(table, gg.aes("estimate", "bits_per_dim", color="estimate"))
    + gg.geom_point(size=3)
    + gg.facet_wrap("~panel", scales="free_y")
    + gg.labs(
      y="test bits/dim (lower is better)",
      x="",
      color="",
      title=f"test bits/dim from K = {num_samples} samples per image",
      caption=f"Both estimates on the same {num_images} test images; each panel gives their paired "
      "difference with its standard error\nand has its own scale (the naive estimate is far above).",
    )
    + gg.theme_bw()
    + gg.theme(figure_size=(3.4 * len(metrics) + 1, 4.4), legend_position="none")
  )


def main(argv=None) -> dict:
  config, out, started = common.start(Config, argv, __doc__, check=check_folders)
  metrics, rows, trained = {}, [], {}
  for name in config.models:
    likelihood, x_train, x_test, preprocess = data_for(name, config)
    tf.random.set_seed(config.seed)
    spec = model_spec(config, likelihood, name.partition("_")[2])
    common.save_spec(out / name, spec)
    model = tfpvi.specs.build(spec)
    common.say(f"[{name}] training {config.steps} steps ...")
    history = tfpvi.train.fit(
      model,
      functools.partial(tfpvi.objectives.elbo, return_terms=True),
      x_train,
      optimizer=snt.optimizers.Adam(config.learning_rate),
      steps=config.steps,
      batch_size=config.batch_size,
      preprocess=preprocess,
      output_dir=str(out / name),
      seed=config.seed,
      checkpoints=tfpvi.train.Checkpoints(resume=common.fit_resume(config)),
      loop=tfpvi.train.Loop(steps_per_call=50),
    )
    trained[name] = common.trained_record(history, config.steps)
    result = {"final_train_loss": float(history["loss"].iloc[-1])}
    per_image = {}
    for proposal, label in (("posterior", "importance_sampling"), ("prior", "naive_prior_sampling")):
      log_px = per_image[proposal] = estimate(model, x_test, config, proposal)
      mean = float(np.mean(log_px))
      result[label] = {
        "log_px": mean,
        "standard_error": float(np.std(log_px) / np.sqrt(len(log_px))),
        "bits_per_dim": float(tfpvi.evaluation.bits_per_dim(mean, 784)),
      }
      rows.append(
        {
          "model": name,
          "estimate": "importance sampling" if proposal == "posterior" else "naive (prior)",
          "log_px": mean,
          "bits_per_dim": result[label]["bits_per_dim"],
          "bits_per_dim_se": result[label]["standard_error"] / (784 * np.log(2.0)),
        }
      )
    gap = per_image["prior"] - per_image["posterior"]  # paired: the same images
    result["naive_minus_importance"] = {
      "log_px": float(gap.mean()),
      "standard_error": float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else 0.0,
    }
    result.update(eval_samples=config.eval_samples, eval_examples=len(x_test))
    metrics[name] = result
    common.say(
      f"[{name}] log p(x): IS {result['importance_sampling']['log_px']:.1f} nats "
      f"({result['importance_sampling']['bits_per_dim']:.3f} bits/dim), naive "
      f"{result['naive_prior_sampling']['log_px']:.1f} nats"
    )
    tfpvi.plot.image_grid(
      model.sample(64, seed=tf.constant([config.seed, 3])).numpy() / (1.0 if likelihood == "bernoulli" else 255.0),
      rows=8,
      title=f"{name}: samples (means)",
      path=str(out / f"samples_{name}.png"),
    )
  table = pd.DataFrame(rows)
  plot = estimates_figure(table, metrics, config.eval_samples, len(x_test))
  tfpvi.plot.save(plot, str(out / "estimates.png"))
  common.write_results(out, config, metrics, started, trained=trained)
  print(table.to_string(index=False))
  common.say(f"results and figures in {out}/")
  return metrics


if __name__ == "__main__":
  common.run(main)
