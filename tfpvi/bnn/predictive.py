"""The posterior predictive p(y | x, D) ~ mean_s p(y | x, w_s), w_s ~ q(w), and its uncertainty."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi.types import Seed

tfd = tfp.distributions

__all__ = [
  "expected_entropy",
  "mutual_information",
  "predictive_distribution",
  "predictive_entropy",
  "predictive_moments",
]


def predictive_distribution(model, x: tf.Tensor, *, num_samples: int = 100, seed: Seed = None) -> tfd.MixtureSameFamily:
  """The Monte Carlo posterior predictive as an equally weighted mixture over weight samples.

  ```none
  p(y | x, D) ~ (1 / S) sum_s p(y | x, w_s),   w_s ~ q(w)
  ```

  Args:
    model: a `tfpvi.bnn.MLP` (`outputs(x, seed=, num_samples=)` and `likelihood(outputs)`).
    x: float Tensor [B, ...].
    num_samples: S, weight samples (mixture components) per input.
    seed: None, a Python int or a stateless [2] seed.

  Returns:
    `tfd.MixtureSameFamily` with batch shape [B] and the likelihood's event shape; its components
    have batch shape [B, S].
  """
  if int(num_samples) < 1:
    raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
  outputs = model.outputs(x, seed=seed, num_samples=int(num_samples))  # [S, B, out]
  components = model.likelihood(tf.experimental.numpy.moveaxis(outputs, 0, 1))  # batch [B, S]
  mixture = tfd.Categorical(logits=tf.zeros(tf.shape(outputs)[1::-1]))  # uniform over [B, S]
  return tfd.MixtureSameFamily(mixture, components)


def _components(predictive: tfd.MixtureSameFamily) -> tfd.Distribution:
  if not isinstance(predictive, tfd.MixtureSameFamily):
    raise TypeError(f"expected a tfd.MixtureSameFamily predictive, got {type(predictive).__name__}.")
  return predictive.components_distribution


def _mixture_weights(predictive) -> tf.Tensor:
  return predictive.mixture_distribution.probs_parameter()  # [B, S]


def predictive_entropy(predictive: tfd.MixtureSameFamily, *, num_samples: int = 1000, seed: Seed = None) -> tf.Tensor:
  """H[p(y | x, D)] per input, in nats: exact for Categorical components, else Monte Carlo.

  For categorical likelihoods the mixture is itself categorical with probabilities
  sum_s pi_s p_s(y), whose entropy is computed exactly. Otherwise -mean log p(y_j) over num_samples
  draws y_j of the mixture (standard error ~ std(log p) / sqrt(num_samples)).

  Args:
    predictive: from `predictive_distribution`, batch shape [B].
    num_samples: draws for the Monte Carlo estimate.
    seed: seed of those draws.

  Returns:
    float Tensor [B].
  """
  components = _components(predictive)
  if isinstance(components, tfd.Categorical):
    probs = tf.einsum("bs,bsk->bk", _mixture_weights(predictive), components.probs_parameter())
    return -tf.reduce_sum(tf.math.xlogy(probs, probs), axis=-1)
  y = predictive.sample(num_samples, seed=seed)
  return -tf.reduce_mean(predictive.log_prob(y), axis=0)


def expected_entropy(predictive: tfd.MixtureSameFamily) -> tf.Tensor:
  """E_q(w)[H[p(y | x, w)]] per input: the mixture-weighted mean of the component entropies [B]."""
  return tf.reduce_sum(_mixture_weights(predictive) * _components(predictive).entropy(), axis=-1)


def mutual_information(predictive: tfd.MixtureSameFamily, *, num_samples: int = 1000, seed: Seed = None) -> tf.Tensor:
  """I(y; w | x, D) = H[p(y | x, D)] - E_q[H[p(y | x, w)]] per input [B]: the weight (epistemic) part."""
  return predictive_entropy(predictive, num_samples=num_samples, seed=seed) - expected_entropy(predictive)


def predictive_moments(predictive: tfd.MixtureSameFamily) -> tuple[tf.Tensor, tf.Tensor]:
  """(mean, variance) of the mixture by the laws of total expectation and variance.

  ```none
  mean = sum_s pi_s m_s,   variance = sum_s pi_s (v_s + m_s^2) - mean^2
  ```

  Returns:
    (mean, variance), each [B] + event shape.
  """
  components = _components(predictive)
  weights = _mixture_weights(predictive)
  weights = tf.reshape(weights, tf.concat([tf.shape(weights), tf.ones([components.event_shape.rank], tf.int32)], 0))
  means = components.mean()
  mean = tf.reduce_sum(weights * means, axis=1)
  second = tf.reduce_sum(weights * (components.variance() + tf.square(means)), axis=1)
  return mean, tf.maximum(second - tf.square(mean), 0.0)
