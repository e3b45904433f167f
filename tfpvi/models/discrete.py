"""Discrete latents: Gumbel-softmax / Concrete posteriors, straight-through, temperature schedules.

N categorical latent variables of K classes each, z [..., B, N, K]. Three forms of q(z|x), from the
same encoder logits [B, N, K]:

- "exp_relaxed" (default; Maddison et al. 2017): `tfd.ExpRelaxedOneHotCategorical`, whose samples
  are log-probability vectors y = log z. Densities are evaluated in log space, so log q, log p and
  the log weights stay finite at any temperature; pair it with `relaxed_prior(..., log_space=True)`
  and a decoder wrapped in `RelaxedInput(decoder, log_space=True)` (which feeds it exp(y)). Every
  objective (`elbo` with a Monte Carlo KL, `iwae` with any reparameterized estimator, `tfpvi.objectives`)
  applies.
- "relaxed" (Jang et al. 2017): `tfd.RelaxedOneHotCategorical` on the simplex. Its density at a
  sample can underflow at low temperature (components exactly 0), so use it with
  `elbo_categorical_kl`: E_q[log p(x|z)] on relaxed samples minus the analytic KL between the
  categorical distributions (the uniform prior `one_hot_prior`), which never evaluates a density
  at z.
- "categorical": `tfd.OneHotCategorical`, exact discrete latents, trained with
  `tfpvi.objectives.iwae(..., gradient_estimator="vimco")` (not reparameterizable).

Straight-through (`RelaxedInput(..., straight_through=True)`): the decoder sees one_hot(argmax z)
in the forward pass and the relaxed z's gradient in the backward pass (Jang et al. 2017, section 2.2);
densities stay those of the relaxed sample.

The temperature is a non-trainable `tf.Variable` on the encoder; `with_temperature(objective)` makes
it a keyword of the objective so that `tfpvi.train.fit(..., objective_kwargs=dict(temperature=
temperature_schedule(1e-4)))` anneals it inside the compiled loop and logs it in the history.

References:
  Jang, Gu, Poole. Categorical reparameterization with Gumbel-softmax. ICLR 2017.
  Maddison, Mnih, Teh. The Concrete distribution: a continuous relaxation of discrete random
    variables. ICLR 2017.
  Mnih, Rezende. Variational inference for Monte Carlo objectives. ICML 2016.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.config import configurable
from tfpvi.types import Activation, Seed

tfd = tfp.distributions

__all__ = [
  "KINDS",
  "GumbelSoftmaxMLP",
  "RelaxedInput",
  "elbo_categorical_kl",
  "one_hot_prior",
  "relaxed_prior",
  "temperature_schedule",
  "with_temperature",
]

KINDS = ("exp_relaxed", "relaxed", "categorical")


def _check_kind(kind: str) -> None:
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")


def _check_temperature(temperature) -> None:
  if isinstance(temperature, (int, float)) and not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature}.")


@configurable
class GumbelSoftmaxMLP(snt.Module):
  """An MLP encoder returning q(z|x) over N categorical variables of K classes.

  ```none
  logits = Linear(MLP(flatten(x))) reshaped to [B, N, K]
  q(z|x) = Independent(ExpRelaxedOneHotCategorical(temperature, logits), 1)   # kind="exp_relaxed"
  ```

  with batch shape [B] and event shape [N, K] (see the module docstring for the other kinds).

  #### Examples

  ```python
  encoder = GumbelSoftmaxMLP([512, 256], num_variables=30, num_classes=10)
  q = encoder(tf.zeros([20, 28, 28, 1]))   # batch_shape [20], event_shape [30, 10]
  ```
  """

  def __init__(
    self,
    hidden_sizes: Sequence[int],
    num_variables: int,
    num_classes: int,
    *,
    kind: str = "exp_relaxed",
    temperature: float = 1.0,
    activation: Activation = tf.nn.relu,
    name: Optional[str] = None,
  ):
    """Builds the encoder (variables are created at the first call).

    Args:
      hidden_sizes: MLP hidden sizes.
      num_variables: N >= 1.
      num_classes: K >= 2.
      kind: "exp_relaxed", "relaxed" or "categorical".
      temperature: initial temperature tau > 0 of the relaxation (a non-trainable variable, see
        `with_temperature`); ignored by "categorical".
      activation: MLP nonlinearity.
      name: module name.
    """
    super().__init__(name=name)
    _check_kind(kind)
    _check_temperature(temperature)
    if num_variables < 1 or num_classes < 2:
      raise ValueError(f"need num_variables >= 1 and num_classes >= 2, got {num_variables} and {num_classes}.")
    self.num_variables, self.num_classes, self.kind = int(num_variables), int(num_classes), kind
    self.temperature = tf.Variable(float(temperature), trainable=False, name="temperature")
    self._flatten_input = snt.Flatten()
    self._torso = snt.nets.MLP(list(hidden_sizes), activation=activation, activate_final=True)
    self._head = snt.Linear(self.num_variables * self.num_classes, name="logits")

  def logits(self, x: tf.Tensor) -> tf.Tensor:
    """Encoder logits [B, N, K]."""
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank is not None and x.shape.rank < 2:
      raise ValueError(f"{self.name}: expected a batch of inputs with shape [batch, ...], got {x.shape.as_list()}.")
    flat = self._head(self._torso(self._flatten_input(x)))
    return tf.reshape(flat, tf.concat([tf.shape(flat)[:-1], [self.num_variables, self.num_classes]], 0))

  def __call__(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q(z|x), batch shape [B], event shape [N, K]."""
    return _categorical_family(self.kind, self.temperature, self.logits(x))


def _categorical_family(kind: str, temperature, logits) -> tfd.Distribution:
  if kind == "exp_relaxed":
    base = tfd.ExpRelaxedOneHotCategorical(temperature, logits=logits)
  elif kind == "relaxed":
    base = tfd.RelaxedOneHotCategorical(temperature, logits=logits)
  else:
    base = tfd.OneHotCategorical(logits=logits, dtype=tf.float32)
  return tfd.Independent(base, reinterpreted_batch_ndims=1)


def relaxed_prior(
  num_variables: int, num_classes: int, temperature: float = 0.5, *, log_space: bool = True
) -> tfd.Distribution:
  """A uniform Concrete prior over [N, K]: ExpRelaxed (log space, default) or Relaxed, at a fixed temperature.

  Maddison et al. (2017) use a prior temperature below the posterior's (e.g. 0.5 vs 2/3).
  """
  _check_temperature(temperature)
  logits = tf.zeros([num_variables, num_classes])
  return _categorical_family("exp_relaxed" if log_space else "relaxed", float(temperature), logits)


def one_hot_prior(num_variables: int, num_classes: int) -> tfd.Distribution:
  """The uniform categorical prior over N one-hot variables of K classes: batch [], event [N, K]."""
  return _categorical_family("categorical", None, tf.zeros([num_variables, num_classes]))


@configurable
class RelaxedInput(snt.Module):
  """Wraps a decoder for relaxed categorical latents: exp for log-space z, and the straight-through trick.

  `RelaxedInput(decoder, log_space=True, straight_through=False)(z)` calls `decoder(v)` with

  ```none
  s = exp(z) if log_space else z                          # a point on the simplex, [..., N, K]
  v = s                                                     # relaxed
  v = one_hot(argmax s) + s - stop_gradient(s)              # straight-through: one-hot forward, soft backward
  ```
  """

  def __init__(
    self, decoder: Callable, *, log_space: bool = True, straight_through: bool = False, name: Optional[str] = None
  ):
    super().__init__(name=name)
    if not callable(decoder):
      raise TypeError(f"decoder must be callable, got {type(decoder).__name__}.")
    self.decoder, self.log_space, self.straight_through = decoder, bool(log_space), bool(straight_through)

  def decoder_input(self, z: tf.Tensor) -> tf.Tensor:
    """The value the wrapped decoder receives for z [..., N, K]."""
    soft = tf.exp(z) if self.log_space else z
    if not self.straight_through:
      return soft
    hard = tf.one_hot(tf.argmax(soft, axis=-1), tf.shape(soft)[-1], dtype=soft.dtype)
    return hard + (soft - tf.stop_gradient(soft))  # exactly one-hot in the forward pass

  def __call__(self, z) -> tfd.Distribution:
    return self.decoder(self.decoder_input(z))

  @property
  def output_shape(self):
    """The wrapped decoder's output_shape (None if it has none), for the evaluators' shape checks."""
    return getattr(self.decoder, "output_shape", None)


def _encoder_logits(q: tfd.Distribution) -> tf.Tensor:
  inner = q.distribution if isinstance(q, tfd.Independent) else q
  if not hasattr(inner, "logits") or inner.logits is None:
    raise ValueError(
      f"elbo_categorical_kl needs q(z|x) built from logits (e.g. GumbelSoftmaxMLP), got {type(q).__name__}."
    )
  return inner.logits


def elbo_categorical_kl(
  model,
  x: tf.Tensor,
  num_samples: int = 1,
  *,
  seed: Seed = None,
  return_terms: bool = False,
):
  """Jang et al.'s Gumbel-softmax ELBO: relaxed samples for the likelihood, the exact categorical KL.

  ```none
  L(x) = E_{z ~ Concrete(pi, tau)}[log p(x|z)] - sum_n KL(Cat(pi_n) || p_n)
  ```

  with pi = softmax(encoder logits) and p_n the categorical prior's class probabilities (the model's
  prior: `one_hot_prior`, or a relaxed prior whose logits are used). The KL is analytic, so the
  relaxed density is never evaluated (no underflow at low temperature).

  Args:
    model: a `tfpvi.VAE` whose encoder returns a (relaxed) categorical q from logits.
    x: float Tensor [B, ...].
    num_samples: Python int >= 1.
    seed: None, a Python int or a stateless seed.
    return_terms: if True, return {"objective", "log_likelihood", "kl"}, each [B].

  Returns:
    float Tensor [B] in nats (or the dict of terms).
  """
  num_samples = checks.check_num_samples(num_samples)
  q, z = model.sample_posterior(x, num_samples, seed=seed)
  logits = _encoder_logits(q)
  prior_logits = _encoder_logits(model.prior)
  kl = tf.reduce_sum(tfd.kl_divergence(tfd.Categorical(logits=logits), tfd.Categorical(logits=prior_logits)), -1)
  log_likelihood = tf.reduce_mean(model.likelihood(z).log_prob(x), axis=0)
  value = log_likelihood - kl
  if return_terms:
    return {"objective": value, "log_likelihood": log_likelihood, "kl": kl}
  return value


def temperature_schedule(rate: float, minimum: float = 0.5, initial: float = 1.0, every: int = 1):
  """Jang et al.'s annealing, tau(t) = max(minimum, initial * exp(-rate * t)), t = every * floor(step / every).

  Written with TensorFlow ops, so it runs inside `fit`'s compiled loop. Jang et al. use rate in
  {1e-5, 1e-4}, minimum 0.5, initial 1, updated every 500 steps.

  Returns:
    `schedule(step) -> temperature`, a float32 scalar Tensor.
  """
  if not rate >= 0 or not minimum > 0 or not initial > 0 or every < 1:
    raise ValueError(
      f"temperature_schedule needs rate >= 0, minimum > 0, initial > 0, every >= 1; got {rate}, "
      f"{minimum}, {initial}, {every}."
    )

  def schedule(step):
    t = tf.floor(tf.cast(step, tf.float32) / float(every)) * float(every)
    return tf.maximum(float(minimum), float(initial) * tf.exp(-float(rate) * t))

  return schedule


def with_temperature(objective: Callable) -> Callable:
  """An objective that takes `temperature=` and sets the encoder's temperature before calling `objective`.

  For `fit(..., objective_kwargs=dict(temperature=temperature_schedule(1e-4), ...))`: the value is
  computed (and logged) at every step, assigned to `model.encoder.temperature`, then the objective
  runs with the rest of the keywords.
  """

  # No functools.wraps: for a functools.partial it would set __wrapped__ to the partial, which
  # AutoGraph then fails to convert ("Please report this to the TensorFlow team").
  def annealed(model, x, *, temperature=None, **kwargs):
    if temperature is not None:
      variable = getattr(model.encoder, "temperature", None)
      if not isinstance(variable, tf.Variable):
        raise TypeError(
          f"with_temperature needs model.encoder.temperature to be a tf.Variable (GumbelSoftmaxMLP); "
          f"got {type(variable).__name__}."
        )
      variable.assign(tf.cast(temperature, variable.dtype))
    return objective(model, x, **kwargs)

  inner = getattr(objective, "func", objective)  # a functools.partial names its function
  annealed.__name__ = f"with_temperature({getattr(inner, '__name__', type(inner).__name__)})"
  annealed.__doc__ = getattr(inner, "__doc__", None)
  return annealed
