"""The latent-variable model: an encoder q(z|x), a decoder p(x|z) and a prior p(z)."""

from __future__ import annotations

import inspect
from typing import Callable, NamedTuple, Optional, Union

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.config import configurable
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


PriorLike = Union[tfd.Distribution, Callable[[], tfd.Distribution]]

# Sonnet wraps each method of a module in a name scope whose visible signature is (*args, **kwargs)
# and which has no docstring; `_shown` keeps the method as written so that `_show_methods` can give
# the wrappers their real signature and docstring back (help(), inspect.signature, API docs).
_SHOWN: dict = {}


def _shown(method):
  _SHOWN[method.__qualname__] = method
  return method


def _stateless(seed):
  """A Python int seed as a stateless seed (the same draws at every call); None and Tensors as they are.

  TFP reads a Python int as the seed of a stateful generator, whose draws change from call to call.
  """
  if isinstance(seed, int) and not isinstance(seed, bool):
    return checks.stateless_seed(seed)
  return seed


def _show_methods(cls):
  # Only the signature and the docstring: a `__wrapped__` would make AutoGraph, which caches its
  # conversions per code object (one for all of Sonnet's wrappers), run one method for another.
  for name, wrapper in vars(cls).items():
    original = _SHOWN.get(f"{cls.__qualname__}.{name}")
    if original is not None and wrapper is not original:
      wrapper.__signature__ = inspect.signature(original)
      wrapper.__doc__ = original.__doc__
      wrapper.__name__, wrapper.__qualname__ = original.__name__, original.__qualname__
      wrapper.__module__ = original.__module__
  return cls


def _shape_list(shape) -> str:
  """A TensorShape, or a nest of them, as text."""
  return str(tf.nest.map_structure(lambda s: s.as_list() if s.rank is not None else "unknown", shape))


def _as_event_prior(prior: tfd.Distribution) -> tfd.Distribution:
  """Reinterprets the batch dimensions of a prior as event dimensions, so log p(z) is one number per z.

  `tfd.Normal(tf.zeros(d), 1.)` (batch [d], event []) becomes an event of shape [d]; a
  `tfd.RelaxedOneHotCategorical` with batch [8] and event [10] becomes an event [8, 10]. Joint
  distributions are returned as they are when their batch shapes are scalar (components wrapped in
  `tfd.Independent`, or an auto-batched joint); an auto-batched joint with batch dimensions is
  wrapped in `tfd.Independent`.

  Raises:
    TypeError: if `prior` is not a distribution.
    ValueError: for a joint distribution whose components have batch dimensions (its log_prob
      would not be one number per z).
  """
  checks.check_distribution(prior, "prior")
  batch_shape = prior.batch_shape
  if isinstance(batch_shape, tf.TensorShape):
    if (batch_shape.rank or 0) > 0:
      return tfd.Independent(prior, reinterpreted_batch_ndims=batch_shape.rank)
    return prior
  ranks = [s.rank for s in tf.nest.flatten(batch_shape)]
  if any(r is None or r > 0 for r in ranks):
    raise ValueError(
      f"the prior is a {type(prior).__name__} whose components have batch shapes "
      f"{_shape_list(batch_shape)}; expected every batch shape to be [] so that log p(z) is one "
      "number per z. Wrap each component in tfd.Independent(..., reinterpreted_batch_ndims=...) or "
      "use the AutoBatched variant of the joint distribution."
    )
  return prior


def _check_posterior(q: tfd.Distribution, prior: tfd.Distribution) -> None:
  """Raises ValueError unless q has batch shape [B] (per component) and the prior's event shape."""
  for batch_shape in tf.nest.flatten(q.batch_shape):
    if batch_shape.rank is not None and batch_shape.rank != 1:
      raise ValueError(
        f"encoder must return q(z|x) with batch shape [batch] and the latent dimensions in its "
        f"event shape; got batch shape {_shape_list(q.batch_shape)} and event shape "
        f"{_shape_list(q.event_shape)}. Wrap it as tfd.Independent(q, reinterpreted_batch_ndims="
        f"{(batch_shape.rank or 1) - 1}) (for a joint distribution, wrap each component)."
      )
  q_event, prior_event = q.event_shape, prior.event_shape
  try:
    tf.nest.assert_same_structure(q_event, prior_event)
    compatible = all(a.is_compatible_with(b) for a, b in zip(tf.nest.flatten(q_event), tf.nest.flatten(prior_event)))
  except (ValueError, TypeError):
    compatible = False
  if not compatible:
    raise ValueError(
      f"q(z|x) has event shape {_shape_list(q_event)} but the prior has event shape "
      f"{_shape_list(prior_event)}; they must match (the same nest of latents, the same shapes)."
    )


@configurable
@_show_methods
class VAE(snt.Module):
  """A deep latent-variable model p(z) p(x|z) with an amortized posterior q(z|x).

  The encoder and decoder are any callables (Sonnet modules or plain functions) returning
  distributions: `encoder(x)` gives q(z|x) with batch shape [B]; `decoder(z)` takes z with leading
  dimensions [..., B] and gives p(x|z) with batch shape [..., B].

  Latents may be structured: q(z|x) and p(z) can be any `tfd.Distribution`, including every
  `tfd.JointDistribution*` class (named, sequential, auto-batched or not), flows
  (`tfd.TransformedDistribution`) and relaxed or discrete distributions. z is then whatever q
  samples (a Tensor [S, B, ...] or a dict/list of them), and the decoder receives that nest as it
  is (e.g. `tfpvi.decoders.BernoulliMLP(..., latent_keys=["z1"])` reads one part of a dict).

  Examples:
    Samples are a leading dimension that broadcasts through the decoder.

    >>> import tfpvi
    >>> model = tfpvi.VAE(
    ...   tfpvi.encoders.GaussianMLP([16], latent_size=2),
    ...   tfpvi.decoders.BernoulliMLP([16], output_shape=[4, 4, 1]),
    ...   tfpvi.standard_normal_prior(2),
    ... )
    >>> x = tf.cast(tf.random.stateless_uniform([3, 4, 4, 1], seed=[0, 1]) > 0.5, tf.float32)
    >>> model.log_weights(x, 5, seed=[0, 2]).shape  # [K, B] log p(x, z_k) - log q(z_k|x)
    TensorShape([5, 3])

    The prior is a `tfd.Distribution` over z, or a callable (e.g. a Sonnet module with trainable
    variables, `tfpvi.priors.MixtureOfGaussians`, `tfpvi.priors.VampPrior`) that returns one and is
    called again every time `model.prior` is read, so that gradients reach its variables. A prior
    with batch dimensions (as in `tfd.Normal(tf.zeros(d), 1.)`) has them reinterpreted as event
    dimensions.

    Monte Carlo samples are a leading dimension: z ~ q has shape [S, B, ...] and flows through the
    decoder in one call.

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
    prior: PriorLike,
    name: Optional[str] = None,
  ):
    """Builds the model.

    Args:
      encoder: callable x [B, ...] -> q(z|x), a distribution with batch shape [B].
      decoder: callable z [..., B, ...] (a Tensor or a nest) -> p(x|z), batch shape [..., B].
      prior: p(z), a distribution over z, or a callable with no arguments returning one (a module
        whose variables are trained with the model).
      name: module name.

    Raises:
      TypeError: if encoder or decoder is not callable, or prior is neither a distribution nor
        callable.
      ValueError: if a joint prior's components have batch dimensions.
    """
    super().__init__(name=name)
    for role, fn in (("encoder", encoder), ("decoder", decoder)):
      if not callable(fn):
        raise TypeError(f"{role} must be callable, got {type(fn).__name__}.")
    self.encoder = encoder
    self.decoder = decoder
    if hasattr(encoder, "match_likelihood"):  # e.g. GaussianMLP's input_scale from the decoder's data range
      encoder.match_likelihood(decoder)
    if isinstance(prior, tfd.Distribution):
      self._prior = _as_event_prior(prior)
    elif callable(prior):
      self._prior = prior
    else:
      raise TypeError(
        f"prior must be a tfp.distributions.Distribution or a callable returning one, got {type(prior).__name__}."
      )

  @property
  def prior(self) -> tfd.Distribution:
    """p(z); a callable prior is evaluated anew at every access (so its variables get gradients)."""
    if isinstance(self._prior, tfd.Distribution):
      return self._prior
    return _as_event_prior(checks.check_distribution(self._prior(), "prior"))

  @_shown
  def posterior(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q(z|x) with batch shape [B] for x [B, ...].

    Raises:
      TypeError: if the encoder does not return a distribution.
      ValueError: if its batch shape is not [B], or its event shape is not the prior's.
    """
    x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
    q = checks.check_distribution(self.encoder(x), "encoder")
    _check_posterior(q, self.prior)
    return q

  @_shown
  def likelihood(self, z) -> tfd.Distribution:
    """Returns p(x|z) with batch shape [..., B] for z [..., B, ...] (a Tensor or a nest)."""
    return checks.check_distribution(self.decoder(z), "decoder")

  @_shown
  def sample_posterior(self, x: tf.Tensor, num_samples: int, *, seed: Seed = None):
    """Draws z ~ q(z|x) (reparameterized when q is).

    Args:
      x: float Tensor [B, ...].
      num_samples: Python int >= 1, S.
      seed: None, a Python int, or a stateless seed ([2] int Tensor).

    Returns:
      (q, z): q(z|x) with batch shape [B], and z [S, B, ...] (a nest for a joint q).
    """
    num_samples = checks.check_num_samples(num_samples)
    q = self.posterior(x)
    return q, q.sample(num_samples, seed=_stateless(seed))

  @_shown
  def log_weight_terms(
    self,
    x: tf.Tensor,
    z,
    posterior: Union[tfd.Distribution, tf.Tensor],
  ) -> LogWeightTerms:
    """Evaluates log p(x|z), log p(z) and log q(z|x) at given latents.

    Args:
      x: float Tensor [B, *event_shape of p(x|z)].
      z: latents [S, B, ...] (a Tensor or a nest), e.g. from `sample_posterior`.
      posterior: the distribution whose density is log q(z|x), or the values log q(z|x) [S, B]
        already computed (e.g. `tfpvi.objectives.stl_log_prob(q, z)` for STL and DReG).

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
    if isinstance(posterior, tfd.Distribution):
      log_posterior = posterior.log_prob(z)
    else:
      log_posterior = tf.convert_to_tensor(posterior)
    return LogWeightTerms(
      log_likelihood=log_likelihood,
      log_prior=self.prior.log_prob(z),
      log_posterior=log_posterior,
    )

  @_shown
  def log_weights(self, x: tf.Tensor, num_samples: int, *, seed: Seed = None) -> tf.Tensor:
    """Log importance weights log p(x|z) + log p(z) - log q(z|x), z ~ q(z|x).

    Args:
      x: float Tensor [B, ...].
      num_samples: Python int >= 1.
      seed: None, a Python int, or a stateless seed.

    Returns:
      float Tensor [num_samples, B], in nats.
    """
    q, z = self.sample_posterior(x, num_samples, seed=seed)
    return self.log_weight_terms(x, z, q).log_weights

  @_shown
  def posterior_location(self, x: tf.Tensor, *, seed: Seed = None):
    """A single representative latent per example: q's mean where TFP implements it.

    Falls back, in order, to the base distribution's mean pushed through the bijector for a
    `tfd.TransformedDistribution` whose mean is not implemented (flows: the image of the base
    mean, not the mean of q), and to one sample of q drawn with `seed` (relaxed categoricals,
    joint distributions with dependent parts, whose mean TFP does not compute).

    Returns:
      z [B, ...] (a nest for a joint q).
    """
    q = self.posterior(x)
    try:
      return q.mean()
    except NotImplementedError:
      pass
    except ValueError:  # a joint distribution with dependent parts has no mean in TFP
      if not isinstance(q, tfd.JointDistribution):
        raise
    # tfd.TransformedDistribution(...) may return a private subclass-like twin; test by attributes.
    if isinstance(getattr(q, "bijector", None), tfp.bijectors.Bijector) and isinstance(
      getattr(q, "distribution", None), tfd.Distribution
    ):
      try:
        return q.bijector.forward(q.distribution.mean())
      except NotImplementedError:
        pass
    return q.sample(seed=_stateless(seed))

  @_shown
  def reconstruct(self, x: tf.Tensor, num_samples: Optional[int] = None, *, seed: Seed = None) -> tf.Tensor:
    """Mean of p(x|z) for z from q(z|x).

    Args:
      x: float Tensor [B, ...].
      num_samples: None decodes one representative latent (`posterior_location`: q's mean, else
        the flow's image of its base mean, else one sample); an int S decodes S posterior samples
        (the Monte Carlo sample-size blog post's distribution over reconstructions).
      seed: seed for the posterior samples.

    Returns:
      [B, *event_shape] if num_samples is None, else [S, B, *event_shape].
    """
    if num_samples is None:
      return self.likelihood(self.posterior_location(x, seed=seed)).mean()
    num_samples = checks.check_num_samples(num_samples)
    return self.likelihood(self.posterior(x).sample(num_samples, seed=_stateless(seed))).mean()

  @_shown
  def sample(self, num_samples: int, *, seed: Seed = None, mean: bool = True) -> tf.Tensor:
    """Generates from the model: z ~ p(z), then the mean of p(x|z) (or a sample of it).

    Returns:
      [num_samples, *event_shape].
    """
    num_samples = checks.check_num_samples(num_samples)
    z_seed, x_seed = tfp.random.split_seed(_stateless(seed), n=2) if seed is not None else (None, None)
    likelihood = self.likelihood(self.prior.sample(num_samples, seed=z_seed))
    return likelihood.mean() if mean else likelihood.sample(seed=x_seed)


def standard_normal_prior(latent_size: int) -> tfd.Distribution:
  """N(0, I) over z in R^latent_size, as one event: batch shape [], event shape [latent_size].

  Examples:
    >>> prior = standard_normal_prior(3)
    >>> prior.event_shape, prior.batch_shape
    (TensorShape([3]), TensorShape([]))
  """
  return tfd.Independent(
    tfd.Normal(loc=tf.zeros([latent_size]), scale=tf.ones([latent_size])),
    reinterpreted_batch_ndims=1,
  )
