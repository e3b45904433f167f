"""Learned priors p(z): Sonnet modules whose variables train with the model.

A `tfpvi.VAE` accepts a prior that is a callable returning a distribution and calls it every time
`model.prior` is read, inside the gradient tape, so gradients reach the prior's variables. Neither
prior here has a KL divergence registered in TFP; `elbo(kl="auto")` uses the Monte Carlo KL.

```python
encoder = tfpvi.encoders.GaussianMLP([200, 200], 50)
model = tfpvi.VAE(encoder, decoder, tfpvi.priors.VampPrior(encoder, [28, 28, 1], 500))
```
"""

from __future__ import annotations

from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.config import configurable
from tfpvi.types import DistributionFn

tfd = tfp.distributions

__all__ = ["MixtureOfGaussians", "VampPrior"]


@configurable
class MixtureOfGaussians(snt.Module):
  """p(z) = sum_c pi_c N(z; mu_c, diag(sigma_c^2)) with trainable pi, mu, sigma.

  Means start at N(0, init_spread^2) draws (a fixed seed), scales at 1 and weights uniform, so the
  prior starts near N(0, I) but with components that differ.
  """

  def __init__(
    self,
    latent_size: int,
    num_components: int = 10,
    *,
    init_spread: float = 1.0,
    min_scale: float = 1e-3,
    seed: int = 0,
    name: Optional[str] = None,
  ):
    """Builds the prior's variables.

    Args:
      latent_size: dimension d of z.
      num_components: mixture components C.
      init_spread: standard deviation of the initial component means.
      min_scale: floor of every component's scale.
      seed: seed of the initial means.
      name: module name.
    """
    super().__init__(name=name)
    if latent_size < 1 or num_components < 1:
      raise ValueError(f"latent_size and num_components must be >= 1, got {latent_size} and {num_components}.")
    self.min_scale = float(min_scale)
    self.logits = tf.Variable(tf.zeros([num_components]), name="logits")
    self.locs = tf.Variable(
      init_spread * tf.random.stateless_normal([num_components, latent_size], seed=[seed, 0]), name="locs"
    )
    # softplus(0.5413) = 1.
    self.raw_scales = tf.Variable(tf.fill([num_components, latent_size], 0.5413), name="raw_scales")

  def __call__(self) -> tfd.Distribution:
    """Returns the mixture, batch shape [], event shape [latent_size]."""
    components = tfd.Independent(
      tfd.Normal(self.locs, self.min_scale + tf.nn.softplus(self.raw_scales)), reinterpreted_batch_ndims=1
    )
    return tfd.MixtureSameFamily(tfd.Categorical(logits=self.logits), components)


@configurable
class VampPrior(snt.Module):
  """The VampPrior: the mixture of the posteriors at learned pseudo-inputs (Tomczak & Welling 2018).

  ```none
  p(z) = (1/C) sum_c q(z | u_c),   u_c learned pseudo-inputs
  ```

  The encoder is evaluated at the pseudo-inputs every time the prior is called, so the prior follows
  the encoder and gradients reach the pseudo-inputs (a prior built once from `encoder(u)` would
  hold constants and never move them). The encoder must return q with batch shape [C] and a single
  Tensor event (not a joint distribution).

  References:
    Tomczak, Welling. VAE with a VampPrior. AISTATS 2018.
  """

  def __init__(
    self,
    encoder: DistributionFn,
    input_shape: Sequence[int],
    num_components: int = 500,
    *,
    init_mean: float = 0.5,
    init_stddev: float = 0.01,
    seed: int = 0,
    name: Optional[str] = None,
  ):
    """Builds the pseudo-inputs.

    Args:
      encoder: the model's encoder x [B, *input_shape] -> q(z|x) (the same object the VAE uses).
      input_shape: shape of one input, e.g. [28, 28, 1].
      num_components: number of pseudo-inputs C (500 in Tomczak & Welling).
      init_mean: mean of the initial pseudo-inputs (values are N(init_mean, init_stddev^2)).
      init_stddev: spread of the initial pseudo-inputs.
      seed: seed of the initial pseudo-inputs.
      name: module name.
    """
    super().__init__(name=name)
    if not callable(encoder):
      raise TypeError(f"encoder must be callable, got {type(encoder).__name__}.")
    self.encoder = encoder
    shape = [int(num_components), *[int(d) for d in input_shape]]
    self.pseudo_inputs = tf.Variable(
      init_mean + init_stddev * tf.random.stateless_normal(shape, seed=[seed, 1]), name="pseudo_inputs"
    )

  def __call__(self) -> tfd.Distribution:
    """Returns the mixture of q(z | u_c), batch shape [], event shape of q."""
    q = self.encoder(self.pseudo_inputs)
    if isinstance(q, tfd.JointDistribution):
      raise ValueError("VampPrior needs an encoder returning a single distribution, got a joint distribution.")
    num_components = tf.shape(self.pseudo_inputs)[0]
    return tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros([num_components])), q)
