"""`MLP`: a Bayesian multilayer perceptron of `tfpvi.bnn.Linear` layers returning a likelihood."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.bnn.linear import Linear
from tfpvi.config import configurable
from tfpvi.types import Activation, Seed

tfd = tfp.distributions

__all__ = ["MLP", "NormalLikelihood", "categorical_likelihood", "normal_likelihood"]

Likelihood = Callable[[tf.Tensor], tfd.Distribution]


def categorical_likelihood(outputs: tf.Tensor) -> tfd.Distribution:
  """p(y | x, w) = Categorical(logits=outputs): batch shape outputs.shape[:-1], event shape []."""
  return tfd.Categorical(logits=outputs)


@configurable
class NormalLikelihood:
  """outputs -> Independent(Normal(outputs, scale), 1): event shape [output_size], a known noise scale.

  A class rather than a closure so that a network built with it describes itself (`tfpvi.config`)
  and its run folder can be rebuilt by `tfpvi.load_model`.
  """

  def __init__(self, scale: float):
    """Args: scale: the (known) observation noise standard deviation, > 0."""
    if not scale > 0:
      raise ValueError(f"the observation noise scale must be > 0, got {scale}.")
    self.scale = float(scale)

  def __call__(self, outputs: tf.Tensor) -> tfd.Distribution:
    return tfd.Independent(tfd.Normal(outputs, tf.cast(self.scale, outputs.dtype)), reinterpreted_batch_ndims=1)


def normal_likelihood(scale: float) -> Likelihood:
  """Returns outputs -> Independent(Normal(outputs, scale), 1): event shape [output_size].

  Args:
    scale: the (known) observation noise standard deviation, > 0.

  Returns:
    a `NormalLikelihood`.
  """
  return NormalLikelihood(scale)


@configurable
class MLP(snt.Module):
  """A Bayesian MLP: `Linear` layers with a weight posterior each, and a likelihood head.

  `net(x, seed=...)` flattens each example, runs the layers with one fresh weight sample and returns
  p(y | x, w) as a distribution with batch shape [B]; `net(x, num_samples=S, ...)` draws S weight
  samples at once (no Python loop) and returns batch shape [S, B]. `net.outputs(...)` gives the
  raw outputs (logits) and, with `return_kl=True`, the network's KL(q(w) || P(w)) summed over
  layers.

  #### Examples

  ```python
  net = tfpvi.bnn.MLP([400, 400], 10, prior=tfpvi.bnn.scale_mixture_prior())
  p = net(tf.zeros([32, 28, 28, 1]), seed=[0, 1])              # Categorical, batch [32]
  logits, kl = net.outputs(images, seed=[0, 1], return_kl=True)
  ```
  """

  def __init__(
    self,
    hidden_sizes: Sequence[int],
    output_size: int,
    *,
    prior: Optional[tfd.Distribution] = None,
    estimator: str = "sample",
    kl: str = "auto",
    activation: Activation = tf.nn.relu,
    likelihood: Likelihood = categorical_likelihood,
    init_rho: float = -5.0,
    input_scale: float = 1.0,
    name: Optional[str] = None,
  ):
    """Configures the network; variables are created on the first call.

    Args:
      hidden_sizes: sizes of the hidden layers, e.g. [400, 400].
      output_size: size of the last layer (classes, or regression targets).
      prior: the weight prior of every layer (`tfd`, scalar event); default N(0, 1).
      estimator: "sample", "local_reparameterization" or "flipout" (see `tfpvi.bnn.Linear`).
      kl: "auto", "analytic" or "monte_carlo".
      activation: nonlinearity between layers.
      likelihood: outputs -> p(y | x, w); `categorical_likelihood` (default) or `normal_likelihood(s)`.
      init_rho: initial rho of every weight (sigma = softplus(rho)).
      input_scale: multiplies x before the first layer.
      name: module name.
    """
    super().__init__(name=name)
    self.likelihood = likelihood
    self.activation = activation
    self.input_scale = float(input_scale)
    self._flatten_input = snt.Flatten()
    sizes = list(hidden_sizes) + [output_size]
    self.layers = [
      Linear(size, prior=prior, estimator=estimator, kl=kl, init_rho=init_rho, name=f"bayesian_linear_{i}")
      for i, size in enumerate(sizes)
    ]

  def outputs(
    self,
    x: tf.Tensor,
    *,
    seed: Seed = None,
    num_samples: Optional[int] = None,
    mode: str = "sample",
    return_kl: bool = False,
  ) -> Union[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
    """The last layer's outputs under a weight sample (or the posterior mean).

    Args:
      x: float Tensor [B, ...].
      seed: None, a Python int or a stateless [2] seed.
      num_samples: None for one weight sample and outputs [B, output_size]; an int S for S weight
        samples and outputs [S, B, output_size].
      mode: "sample" or "mean" (posterior mean weights).
      return_kl: also return KL(q(w) || P(w)) of the whole network, a scalar in nats.

    Returns:
      outputs, or (outputs, kl).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank is not None and x.shape.rank < 2:
      raise ValueError(f"{self.name}: expected a batch of inputs [batch, ...], got shape {x.shape.as_list()}.")
    h = self._flatten_input(x) * self.input_scale
    if num_samples is not None:
      if int(num_samples) < 1:
        raise ValueError(f"num_samples must be None or >= 1, got {num_samples}.")
      h = tf.tile(h[None], [int(num_samples), 1, 1])
    seeds = tfp.random.split_seed(tfp.random.sanitize_seed(seed, salt="tfpvi.bnn.MLP"), len(self.layers))
    kl = tf.constant(0.0)
    for i, (layer, layer_seed) in enumerate(zip(self.layers, seeds)):
      if return_kl:
        h, layer_kl = layer(h, seed=layer_seed, mode=mode, return_kl=True)
        kl += layer_kl
      else:
        h = layer(h, seed=layer_seed, mode=mode)
      if i < len(self.layers) - 1:
        h = self.activation(h)
    return (h, kl) if return_kl else h

  def __call__(
    self, x: tf.Tensor, *, seed: Seed = None, num_samples: Optional[int] = None, mode: str = "sample"
  ) -> tfd.Distribution:
    """p(y | x, w) under a weight sample: batch shape [B], or [S, B] with num_samples=S."""
    return self.likelihood(self.outputs(x, seed=seed, num_samples=num_samples, mode=mode))

  def kl_divergence(self, *, num_samples: int = 1, seed: Seed = None) -> tf.Tensor:
    """KL(q(w) || P(w)) summed over layers, in nats (Monte Carlo layers average num_samples draws)."""
    seeds = tfp.random.split_seed(tfp.random.sanitize_seed(seed, salt="tfpvi.bnn.MLP.kl"), len(self.layers))
    return tf.add_n([layer.kl_divergence(num_samples=num_samples, seed=s) for layer, s in zip(self.layers, seeds)])
