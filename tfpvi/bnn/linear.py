"""`Linear`: a Bayesian fully connected layer with a diagonal Gaussian posterior over its weights."""

from __future__ import annotations

import math
from typing import Optional, Union

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.bnn import priors
from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = ["ESTIMATORS", "KL_METHODS", "Linear", "has_analytic_kl"]

ESTIMATORS = ("sample", "local_reparameterization", "flipout")
KL_METHODS = ("auto", "analytic", "monte_carlo")
MODES = ("sample", "mean")
# Added to the pre-activation variance before its square root under the local reparameterization
# trick, so that an all-zero input row without bias has a finite gradient.
_VARIANCE_FLOOR = 1e-12


def has_analytic_kl(posterior: tfd.Distribution, prior: tfd.Distribution) -> bool:
  """Whether TFP has KL(posterior || prior) registered for these distribution types."""
  try:
    tfd.kl_divergence(posterior, prior)
  except NotImplementedError:
    return False
  return True


def _seed(seed: Seed) -> tf.Tensor:
  return tfp.random.sanitize_seed(seed, salt="tfpvi.bnn.Linear")


class Linear(snt.Module):
  """A fully connected layer whose weights have a variational posterior q(w) (Bayes by Backprop).

  Every weight (kernel [input_size, output_size] and bias [output_size]) has an independent
  Gaussian posterior with a softplus-parameterized scale (Blundell et al. 2015):

  ```none
  q(w) = N(w | mu, sigma^2),   sigma = log(1 + exp(rho)),   theta = (mu, rho)
  ```

  and a prior `prior` (any `tfd` distribution with scalar event shape that broadcasts against the
  weights, e.g. `tfpvi.bnn.scale_mixture_prior()`). Each call draws fresh noise from `seed`, so a
  training step sees a new weight sample per minibatch. `estimator` chooses how:

  - "sample": one weight sample w = mu + sigma * eps shared by the batch (the paper's estimator);
  - "local_reparameterization": the pre-activations, Gaussian given x, are sampled directly per
    example, b ~ N(x mu + mu_b, x^2 sigma^2 + sigma_b^2) (Kingma, Salimans & Welling 2015): the same
    marginal per example, independent across examples, lower gradient variance;
  - "flipout": one shared perturbation dW = sigma * eps decorrelated across examples by random signs,
    x mu + ((x * s) dW) * r + b with s, r in {-1, +1} (Wen et al. 2018); also the same marginal.

  Inputs may carry a leading sample axis, [num_samples, batch, input_size]: then each of the
  num_samples slices gets its own weight sample (used for Monte Carlo over weights without a
  Python loop).

  The KL(q || P) of the layer is analytic when TFP has it registered (a Gaussian prior) and a Monte
  Carlo estimate log q(w) - log P(w) otherwise (the scale mixture), computed on the weights of the
  forward pass ("sample" and "flipout": common random numbers, as the paper) or, under the local
  reparameterization trick, on a separate weight sample.

  #### Examples

  ```python
  layer = tfpvi.bnn.Linear(10, prior=tfpvi.bnn.scale_mixture_prior())
  y, kl = layer(tf.zeros([32, 784]), seed=[1, 2], return_kl=True)   # y [32, 10], kl []
  ```

  #### References

  Blundell, Cornebise, Kavukcuoglu & Wierstra. Weight Uncertainty in Neural Networks. ICML 2015.
  Kingma, Salimans & Welling. Variational Dropout and the Local Reparameterization Trick. NeurIPS 2015.
  Wen, Vicol, Ba, Tran & Grosse. Flipout: Efficient Pseudo-Independent Weight Perturbations on
    Mini-Batches. ICLR 2018.
  """

  def __init__(
    self,
    output_size: int,
    *,
    prior: Optional[tfd.Distribution] = None,
    estimator: str = "sample",
    kl: str = "auto",
    with_bias: bool = True,
    init_rho: float = -5.0,
    name: Optional[str] = None,
  ):
    """Configures the layer; variables are created on the first call, from the input's size.

    Args:
      output_size: number of output units.
      prior: a `tfd.Distribution` with scalar event shape for every weight; default N(0, 1).
      estimator: "sample", "local_reparameterization" or "flipout" (see the class docstring).
      kl: "auto" (analytic if TFP has it registered for (Normal, prior), else Monte Carlo),
        "analytic" (raise if not registered) or "monte_carlo".
      with_bias: whether the layer has a (Bayesian) bias.
      init_rho: initial rho of every weight; softplus(-5) ~ 0.0067 starts close to a point estimate.
      name: module name.
    """
    super().__init__(name=name)
    if output_size < 1:
      raise ValueError(f"output_size must be >= 1, got {output_size}.")
    if estimator not in ESTIMATORS:
      raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}.")
    if kl not in KL_METHODS:
      raise ValueError(f"kl must be one of {KL_METHODS}, got {kl!r}.")
    self.output_size = int(output_size)
    self.prior = prior if prior is not None else priors.gaussian_prior(1.0)
    if self.prior.event_shape.rank != 0:
      raise ValueError(
        f"expected a prior over one scalar weight (event shape []), got event shape {self.prior.event_shape}."
      )
    self.estimator = estimator
    self.kl_method = kl
    self.with_bias = with_bias
    self.init_rho = float(init_rho)
    self.input_size = None
    analytic = has_analytic_kl(tfd.Normal(0.0, 1.0), self.prior)
    if kl == "analytic" and not analytic:
      raise NotImplementedError(
        f"kl='analytic' but TFP has no KL registered for q = Normal and P = {type(self.prior).__name__}; "
        "use kl='monte_carlo' or kl='auto'."
      )
    self.analytic_kl = analytic and kl != "monte_carlo"

  @snt.once
  def _initialize(self, inputs: tf.Tensor) -> None:
    input_size = inputs.shape[-1]
    if input_size is None:
      raise ValueError(f"{self.name}: the last input dimension must be known, got shape {inputs.shape}.")
    self.input_size = int(input_size)
    stddev = 1.0 / math.sqrt(self.input_size)
    self.kernel_loc = tf.Variable(
      snt.initializers.TruncatedNormal(stddev=stddev)([self.input_size, self.output_size], tf.float32),
      name="kernel_loc",
    )
    self.kernel_rho = tf.Variable(tf.fill([self.input_size, self.output_size], self.init_rho), name="kernel_rho")
    if self.with_bias:
      self.bias_loc = tf.Variable(tf.zeros([self.output_size]), name="bias_loc")
      self.bias_rho = tf.Variable(tf.fill([self.output_size], self.init_rho), name="bias_rho")

  def posterior(self) -> dict[str, tfd.Normal]:
    """q(w) per parameter: {"kernel": Normal [input_size, output_size], "bias": Normal [output_size]}.

    Elementwise (batch-shaped) Normals, one per weight; the layer must have been called once.
    """
    if self.input_size is None:
      raise ValueError(f"{self.name}: call the layer once (to build its variables) before asking for q(w).")
    posterior = {"kernel": tfd.Normal(self.kernel_loc, tf.nn.softplus(self.kernel_rho))}
    if self.with_bias:
      posterior["bias"] = tfd.Normal(self.bias_loc, tf.nn.softplus(self.bias_rho))
    return posterior

  def __call__(
    self,
    inputs: tf.Tensor,
    *,
    seed: Seed = None,
    mode: str = "sample",
    return_kl: bool = False,
  ) -> Union[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
    """Applies the layer with freshly sampled weights (or the posterior mean).

    Args:
      inputs: float Tensor [batch, input_size], or [num_samples, batch, input_size] for
        num_samples independent weight samples.
      seed: None, a Python int or a stateless [2] seed: the weight noise (and the Monte Carlo KL).
      mode: "sample" (the layer's estimator) or "mean" (the posterior mean weights, no noise).
      return_kl: also return the layer's KL(q || P), a scalar in nats (a Monte Carlo estimate is
        averaged over the sample axis).

    Returns:
      outputs with the input's leading shape and last dimension output_size; with `return_kl`,
      (outputs, kl).
    """
    if mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    if inputs.shape.rank not in (2, 3):
      raise ValueError(
        f"{self.name}: expected inputs [batch, input_size] or [num_samples, batch, input_size], got shape "
        f"{inputs.shape.as_list() if inputs.shape.rank is not None else 'of unknown rank'}."
      )
    self._initialize(inputs)
    if inputs.shape[-1] != self.input_size:
      raise ValueError(f"{self.name}: expected input size {self.input_size}, got shape {inputs.shape.as_list()}.")
    q = self.posterior()
    noise_seed, sign_seed, kl_seed = tfp.random.split_seed(_seed(seed), 3)
    sampled = inputs.shape.rank == 3
    weights = None  # weights sampled for the forward pass, reused by the Monte Carlo KL
    if mode == "mean":
      outputs = self._affine(inputs, self.kernel_loc, self.bias_loc if self.with_bias else None)
    elif self.estimator == "local_reparameterization":
      outputs = self._local_reparameterization(inputs, q, noise_seed)
    else:
      weights = self._sample_weights(q, tf.shape(inputs)[0] if sampled else None, noise_seed)
      if self.estimator == "sample":
        outputs = self._affine(inputs, weights["kernel"], weights.get("bias"))
      else:
        outputs = self._flipout(inputs, weights, sign_seed)
    if not return_kl:
      return outputs
    if weights is None and not self.analytic_kl:
      weights = self._sample_weights(q, tf.shape(inputs)[0] if sampled else None, kl_seed)
    return outputs, self._kl(q, weights, sampled)

  def kl_divergence(self, *, num_samples: int = 1, seed: Seed = None) -> tf.Tensor:
    """KL(q || P) of the layer in nats: analytic if available, else averaged over num_samples draws."""
    if self.input_size is None:
      raise ValueError(f"{self.name}: call the layer once (to build its variables) before its KL.")
    q = self.posterior()
    weights = None if self.analytic_kl else self._sample_weights(q, num_samples, _seed(seed))
    return self._kl(q, weights, True)

  # Weight sampling and the three estimators.

  def _sample_weights(self, q, num_samples, seed) -> dict[str, tf.Tensor]:
    """w = mu + sigma * eps per parameter, with a leading [num_samples] axis unless it is None."""
    seeds = tfp.random.split_seed(seed, len(q))
    weights = {}
    for (key, dist), part_seed in zip(q.items(), seeds):
      shape = tf.shape(dist.loc) if num_samples is None else tf.concat([[num_samples], tf.shape(dist.loc)], 0)
      weights[key] = dist.loc + dist.scale * tf.random.stateless_normal(shape, part_seed)
    return weights

  @staticmethod
  def _affine(inputs, kernel, bias):
    """inputs @ kernel + bias; a kernel [S, in, out] (bias [S, out]) maps each sample slice of inputs."""
    if kernel.shape.rank == 3:
      outputs = tf.einsum("sbi,sio->sbo", inputs, kernel)
    else:
      outputs = tf.einsum("...i,io->...o", inputs, kernel)
    if bias is None:
      return outputs
    return outputs + (bias[:, None, :] if bias.shape.rank == 2 else bias)

  def _local_reparameterization(self, inputs, q, seed):
    mean = tf.einsum("...i,io->...o", inputs, q["kernel"].loc)
    variance = tf.einsum("...i,io->...o", tf.square(inputs), tf.square(q["kernel"].scale))
    if self.with_bias:
      mean += q["bias"].loc
      variance += tf.square(q["bias"].scale)
    noise = tf.random.stateless_normal(tf.shape(mean), seed)
    return mean + tf.sqrt(variance + _VARIANCE_FLOOR) * noise

  def _flipout(self, inputs, weights, seed):
    in_seed, out_seed = tfp.random.split_seed(seed, 2)
    batch_shape = tf.shape(inputs)[:-1]
    sign_in = tfp.random.rademacher(tf.shape(inputs), dtype=inputs.dtype, seed=in_seed)
    sign_out = tfp.random.rademacher(tf.concat([batch_shape, [self.output_size]], 0), dtype=inputs.dtype, seed=out_seed)
    perturbation = weights["kernel"] - self.kernel_loc
    mean = tf.einsum("...i,io->...o", inputs, self.kernel_loc)
    flipped = self._affine(inputs * sign_in, perturbation, None) * sign_out
    outputs = mean + flipped
    bias = weights.get("bias")
    if bias is not None:
      outputs += bias[:, None, :] if bias.shape.rank == 2 else bias
    return outputs

  def _kl(self, q, weights, sampled) -> tf.Tensor:
    """Sum over parameters of KL(q || P): analytic, or mean over samples of log q(w) - log P(w)."""
    total = tf.constant(0.0)
    for key, dist in q.items():
      if self.analytic_kl:
        total += tf.reduce_sum(tfd.kl_divergence(dist, self.prior))
      else:
        w = weights[key]
        log_ratio = dist.log_prob(w) - self.prior.log_prob(w)
        total += tf.reduce_sum(log_ratio) / (tf.cast(tf.shape(w)[0], tf.float32) if sampled else 1.0)
    return total
