"""A linear-Gaussian latent model with exact marginal likelihood and posterior, for checking estimators.

```none
p(z) = N(0, I_d),   p(x|z) = N(W z + b, s^2 I_D)
p(x) = N(b, W W^T + s^2 I_D)
p(z|x) = N(S W^T (x - b) / s^2, S),   S = (I_d + W^T W / s^2)^-1
```

Every estimator of log p(x) in tfpvi can be checked against `log_marginal(x)`; with
`exact_posterior` as the encoder, every importance weight equals p(x).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.models.vae import VAE, standard_normal_prior

tfd = tfp.distributions

__all__ = ["LinearGaussian"]


class LinearGaussian:
  """p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I) with closed-form p(x) and p(z|x).

  Args:
    weights: [data_size, latent_size] matrix W.
    bias: [data_size] vector b.
    noise_scale: positive float s.

  Examples:
    Its exact log p(x) bounds every estimator from above, and q = p(z|x) makes them exact.

    >>> import tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> exact = truth.log_marginal(x)  # [3] nats
    >>> iwae = tfpvi.objectives.iwae(truth.as_vae(), x, num_samples=5, seed=[0, 1])  # q is the exact posterior
    >>> bool(tf.reduce_max(tf.abs(iwae - exact)) < 1e-3)
    True
  """

  def __init__(self, weights, bias, noise_scale: float):
    self.weights = tf.constant(weights, tf.float32)
    self.bias = tf.constant(bias, tf.float32)
    self.noise_scale = float(noise_scale)
    self.data_size, self.latent_size = self.weights.shape
    gram = tf.eye(self.latent_size) + tf.matmul(self.weights, self.weights, transpose_a=True) / (self.noise_scale**2)
    self._posterior_covariance = tf.linalg.inv(gram)
    self._posterior_scale_tril = tf.linalg.cholesky(self._posterior_covariance)

  @classmethod
  def random(cls, data_size: int, latent_size: int, noise_scale: float = 0.5, seed: int = 0):
    """A model with W, b drawn from N(0, 1) with a NumPy seed."""
    rng = np.random.default_rng(seed)
    return cls(
      rng.normal(size=[data_size, latent_size]).astype(np.float32),
      rng.normal(size=[data_size]).astype(np.float32),
      noise_scale,
    )

  @property
  def prior(self) -> tfd.Distribution:
    return standard_normal_prior(self.latent_size)

  def decoder(self, z: tf.Tensor) -> tfd.Distribution:
    """p(x|z) for z [..., latent]: batch shape z.shape[:-1], event shape [data_size]."""
    loc = tf.linalg.matvec(self.weights, z) + self.bias
    return tfd.Independent(tfd.Normal(loc, self.noise_scale), reinterpreted_batch_ndims=1)

  def marginal(self) -> tfd.Distribution:
    """p(x) = N(b, W W^T + s^2 I)."""
    covariance = tf.matmul(self.weights, self.weights, transpose_b=True) + self.noise_scale**2 * (
      tf.eye(self.data_size)
    )
    return tfd.MultivariateNormalTriL(self.bias, tf.linalg.cholesky(covariance))

  def log_marginal(self, x: tf.Tensor) -> tf.Tensor:
    """Exact log p(x), [B] for x [B, data_size]."""
    return self.marginal().log_prob(x)

  def exact_posterior(self, x: tf.Tensor) -> tfd.Distribution:
    """p(z|x) with batch shape [B] for x [B, data_size]."""
    loc = tf.linalg.matvec(
      self._posterior_covariance,
      tf.linalg.matvec(self.weights, x - self.bias, transpose_a=True) / self.noise_scale**2,
    )
    return tfd.MultivariateNormalTriL(loc, self._posterior_scale_tril)

  def perturbed_posterior(self, shift: float = 0.3, scale_factor: float = 1.5):
    """An encoder x -> q(z|x) worse than the exact posterior: mean shifted, scale widened."""

    def encoder(x):
      exact = self.exact_posterior(x)
      return tfd.MultivariateNormalTriL(exact.loc + shift, self._posterior_scale_tril * scale_factor)

    return encoder

  def sample(self, num_examples: int, seed) -> tf.Tensor:
    """x ~ p(x), [num_examples, data_size]."""
    return self.marginal().sample(num_examples, seed=seed)

  def as_vae(self, encoder=None) -> VAE:
    """This model as a `tfpvi.VAE`; the encoder defaults to the exact posterior."""
    return VAE(encoder or self.exact_posterior, self.decoder, self.prior)
