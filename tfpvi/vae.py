"""The latent-variable model: an encoder q(z|x), a decoder p(x|z) and a prior p(z)."""

from __future__ import annotations

from typing import NamedTuple, Optional

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.types import DistributionFn, Seed

tfd = tfp.distributions

__all__ = ["LogWeightTerms", "VAE", "standard_normal_prior"]


class LogWeightTerms(NamedTuple):
  """The three terms of the log importance weights, each [num_samples, batch], in nats."""

  log_likelihood: tf.Tensor  # log p(x|z)
  log_prior: tf.Tensor  # log p(z)
  log_posterior: tf.Tensor  # log q(z|x)

  @property
  def log_weights(self) -> tf.Tensor:
    """log p(x|z) + log p(z) - log q(z|x), [num_samples, batch]."""
    return self.log_likelihood + self.log_prior - self.log_posterior


def _as_event_prior(prior: tfd.Distribution) -> tfd.Distribution:
  """Reinterprets a prior with batch dims and a scalar event (tfd.Normal(zeros(d), 1)) as one event."""
  checks.check_distribution(prior, "prior")
  if prior.event_shape.rank == 0 and (prior.batch_shape.rank or 0) > 0:
    return tfd.Independent(prior, reinterpreted_batch_ndims=prior.batch_shape.rank)
  return prior


class VAE(snt.Module):
  """A deep latent-variable model p(z) p(x|z) with an amortized posterior q(z|x).

  The encoder and decoder are any callables (Sonnet modules or plain functions) returning
  distributions: `encoder(x)` gives q(z|x) with batch shape [B]; `decoder(z)` takes z
  [..., B, latent] and gives p(x|z) with batch shape z.shape[:-1]. The prior is any
  `tfd.Distribution` over z; a prior with batch shape [latent] and scalar event (as in
  `tfd.Normal(tf.zeros(d), 1.)`) is reinterpreted as one event of shape [latent].

  Monte Carlo samples are a leading dimension: z ~ q has shape [S, B, latent] and flows through
  the decoder in one call.

  #### Examples

  ```python
  model = tfpvi.VAE(
      encoder=tfpvi.encoders.GaussianMLP([200, 200], 50, activation=tf.nn.tanh),
      decoder=tfpvi.decoders.BernoulliMLP([200, 200], [28, 28, 1], activation=tf.nn.tanh),
      prior=tfpvi.standard_normal_prior(50))
  log_w = model.log_weights(x, num_samples=50)   # [50, B]
  ```
  """

  def __init__(
      self,
      encoder: DistributionFn,
      decoder: DistributionFn,
      prior: tfd.Distribution,
      name: Optional[str] = None,
  ):
    """Builds the model.

    Args:
      encoder: callable x [B, ...] -> q(z|x), a distribution with batch shape [B].
      decoder: callable z [..., B, latent] -> p(x|z), batch shape z.shape[:-1].
      prior: p(z), a distribution over z.
      name: module name.

    Raises:
      TypeError: if encoder or decoder is not callable, or prior is not a distribution.
    """
    super().__init__(name=name)
    for role, fn in (("encoder", encoder), ("decoder", decoder)):
      if not callable(fn):
        raise TypeError(f"{role} must be callable, got {type(fn).__name__}.")
    self.encoder = encoder
    self.decoder = decoder
    self.prior = _as_event_prior(prior)

  def posterior(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q(z|x) with batch shape [B] for x [B, ...].

    Raises:
      TypeError: if the encoder does not return a distribution.
      ValueError: if its batch shape is not [B].
    """
    x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
    q = checks.check_distribution(self.encoder(x), "encoder")
    if q.batch_shape.rank is not None and q.batch_shape.rank != 1:
      raise ValueError(
          f"encoder must return q(z|x) with batch shape [batch] and the latent dimensions in its "
          f"event shape; got batch shape {q.batch_shape.as_list()} and event shape "
          f"{q.event_shape.as_list()}. Wrap it as tfd.Independent(q, reinterpreted_batch_ndims="
          f"{q.batch_shape.rank - 1})."
      )
    if not q.event_shape.is_compatible_with(self.prior.event_shape):
      raise ValueError(
          f"q(z|x) has event shape {q.event_shape.as_list()} but the prior has event shape "
          f"{self.prior.event_shape.as_list()}; they must match."
      )
    return q

  def likelihood(self, z: tf.Tensor) -> tfd.Distribution:
    """Returns p(x|z) with batch shape z.shape[:-1]."""
    return checks.check_distribution(self.decoder(z), "decoder")

  def sample_posterior(
      self, x: tf.Tensor, num_samples: int, *, seed: Seed = None
  ) -> tuple[tfd.Distribution, tf.Tensor]:
    """Draws reparameterized z ~ q(z|x).

    Args:
      x: float Tensor [B, ...].
      num_samples: Python int >= 1, S.
      seed: None, a Python int, or a stateless seed ([2] int Tensor).

    Returns:
      (q, z): q(z|x) with batch shape [B], and z [S, B, latent].
    """
    num_samples = checks.check_num_samples(num_samples)
    q = self.posterior(x)
    return q, q.sample(num_samples, seed=seed)

  def log_weight_terms(
      self,
      x: tf.Tensor,
      z: tf.Tensor,
      posterior: tfd.Distribution,
  ) -> LogWeightTerms:
    """Evaluates log p(x|z), log p(z) and log q(z|x) at given latents.

    Args:
      x: float Tensor [B, *event_shape of p(x|z)].
      z: float Tensor [S, B, latent], e.g. from `sample_posterior`.
      posterior: the distribution whose density is used as log q(z|x) (callers may pass a copy
        with gradients stopped, for the STL and DReG estimators).

    Returns:
      LogWeightTerms, each [S, B].

    Raises:
      ValueError: if x's shape does not match the decoder's event shape.
    """
    x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
    likelihood = self.likelihood(z)
    checks.check_event_shape(x, likelihood, "log p(x|z)")
    with tf.control_dependencies([checks.assert_finite(x, "x")]):
      log_likelihood = likelihood.log_prob(x)
    return LogWeightTerms(
        log_likelihood=log_likelihood,
        log_prior=self.prior.log_prob(z),
        log_posterior=posterior.log_prob(z),
    )

  def log_weights(self, x: tf.Tensor, num_samples: int, *, seed: Seed = None) -> tf.Tensor:
    """Log importance weights log p(x|z) + log p(z) - log q(z|x), z ~ q(z|x) reparameterized.

    Args:
      x: float Tensor [B, ...].
      num_samples: Python int >= 1.
      seed: None, a Python int, or a stateless seed.

    Returns:
      float Tensor [num_samples, B], in nats.
    """
    q, z = self.sample_posterior(x, num_samples, seed=seed)
    return self.log_weight_terms(x, z, q).log_weights

  def reconstruct(
      self, x: tf.Tensor, num_samples: Optional[int] = None, *, seed: Seed = None
  ) -> tf.Tensor:
    """Mean of p(x|z) for z from q(z|x).

    Args:
      x: float Tensor [B, ...].
      num_samples: None decodes the posterior mean once; an int S decodes S posterior samples
        (seed 000's distribution over reconstructions).
      seed: seed for the posterior samples.

    Returns:
      [B, *event_shape] if num_samples is None, else [S, B, *event_shape].
    """
    q = self.posterior(x)
    if num_samples is None:
      return self.likelihood(q.mean()).mean()
    num_samples = checks.check_num_samples(num_samples)
    return self.likelihood(q.sample(num_samples, seed=seed)).mean()

  def sample(self, num_samples: int, *, seed: Seed = None, mean: bool = True) -> tf.Tensor:
    """Generates from the model: z ~ p(z), then the mean of p(x|z) (or a sample of it).

    Returns:
      [num_samples, *event_shape].
    """
    num_samples = checks.check_num_samples(num_samples)
    z_seed, x_seed = tfp.random.split_seed(seed, n=2) if seed is not None else (None, None)
    likelihood = self.likelihood(self.prior.sample(num_samples, seed=z_seed))
    return likelihood.mean() if mean else likelihood.sample(seed=x_seed)


def standard_normal_prior(latent_size: int) -> tfd.Distribution:
  """N(0, I) over z in R^latent_size, as one event: batch shape [], event shape [latent_size]."""
  return tfd.Independent(
      tfd.Normal(loc=tf.zeros([latent_size]), scale=tf.ones([latent_size])),
      reinterpreted_batch_ndims=1,
  )
