"""Flow posteriors: inverse autoregressive flows (IAF) on a Sonnet MADE, and planar flows.

```none
IAF step t (Kingma et al. 2016):  z_t = (z_{t-1} - m_t(z_{t-1}, h)) * exp(-s_t(z_{t-1}, h))
planar step (Rezende & Mohamed 2015):  z_t = z_{t-1} + u_t tanh(w_t^T z_{t-1} + b_t)
log q(z_T|x) = log q_0(z_0|x) - sum_t log |det d z_t / d z_{t-1}|
```

`IAFPosterior` builds q(z|x) as a `tfd.TransformedDistribution` of a base distribution from any
encoder with a chain of `tfb.Invert(tfb.MaskedAutoregressiveFlow(...))` steps whose shift and
log-scale come from `MADE` modules (Sonnet, so every variable is tracked by the encoder and hence
by `tfpvi.VAE` and `fit`). Each MADE sees the encoder's context h [B, context_size] as an extra
input; consecutive steps use reversed variable orderings; the MADE's output layers start at zero,
so a fresh IAF is the identity and q is exactly the base distribution.

Sampling runs each step in parallel over the latent dimensions. log q at the sampled z is exact and
cheap thanks to the bijector cache; log q at any other z (STL and DReG evaluate it at
stop_gradient(z), see `tfpvi.objectives.stl_log_prob`) inverts the flow, which is sequential in
the latent dimension: correct, d times the cost.

`PlanarPosterior` is the baseline: amortized planar flows whose (u, w, b) are read from the
context h, with Rezende & Mohamed's constraint on u for invertibility. A planar flow has no
closed-form inverse, so log q is available only at samples just drawn (the bijector cache): use it
with `gradient_estimator="reparam"` (STL and DReG raise, naming the missing inverse).

References:
  Germain, Gregor, Murray, Larochelle. MADE: masked autoencoder for distribution estimation. ICML 2015.
  Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling. Improved variational inference with
    inverse autoregressive flow. NeurIPS 2016.
  Rezende, Mohamed. Variational inference with normalizing flows. ICML 2015.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks
from tfpvi.config import configurable
from tfpvi.types import Activation

tfd = tfp.distributions
tfb = tfp.bijectors

__all__ = ["GaussianContextMLP", "IAFPosterior", "MADE", "PlanarFlow", "PlanarPosterior", "iaf_mlp", "planar_mlp"]

BaseEncoder = Callable[[tf.Tensor], Union[tfd.Distribution, tuple]]


def _degrees(event_size: int, hidden_sizes: Sequence[int], reverse: bool):
  """MADE degrees: inputs a permutation of 1..D, hidden units cycling through 1..max(D - 1, 1)."""
  inputs = np.arange(event_size, 0, -1) if reverse else np.arange(1, event_size + 1)
  top = max(event_size - 1, 1)
  hidden = [np.arange(size) % top + 1 for size in hidden_sizes]
  return inputs, hidden


class _MaskedLinear(snt.Module):
  """y = x @ (mask * W) + b, with a fixed binary mask [in, out]."""

  def __init__(self, mask: np.ndarray, zero_init: bool = False, name: Optional[str] = None):
    super().__init__(name=name)
    self.mask = tf.constant(mask, tf.float32)
    fan_in = max(int(mask.sum(axis=0).max()), 1)
    init = tf.zeros(mask.shape) if zero_init else tf.random.truncated_normal(mask.shape, stddev=1.0 / np.sqrt(fan_in))
    self.w = tf.Variable(init, name="w")
    self.b = tf.Variable(tf.zeros([mask.shape[1]]), name="b")

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    return tf.matmul(x, self.mask * self.w) + self.b


@configurable
class MADE(snt.Module):
  """A masked autoregressive network: (shift, log_scale) of dimension i depend on z_<i (in its order) and h.

  `made(z, context)` maps z [..., D] (and an optional context h [..., context] broadcastable
  against z's leading dimensions, fed to the first hidden layer without a mask) to shift and
  log_scale, each [..., D]. Output layers start at zero (shift = log_scale = 0: the identity flow).
  log_scale is soft-clipped, clip * tanh(raw / clip), so that no step can scale by more than
  exp(clip).

  #### Examples

  ```python
  made = MADE(event_size=4, hidden_sizes=[32])
  shift, log_scale = made(tf.zeros([5, 4]))   # each [5, 4], zeros at initialisation
  ```
  """

  def __init__(
    self,
    event_size: int,
    hidden_sizes: Sequence[int] = (64,),
    *,
    reverse: bool = False,
    activation: Activation = tf.nn.elu,
    log_scale_clip: float = 5.0,
    name: Optional[str] = None,
  ):
    """Builds the network (variables are created at once; the context layer at the first call).

    Args:
      event_size: D, the latent dimension.
      hidden_sizes: sizes of the masked hidden layers (at least one).
      reverse: order the variables D, ..., 1 instead of 1, ..., D.
      activation: nonlinearity of the hidden layers.
      log_scale_clip: bound on |log_scale|.
      name: module name.
    """
    super().__init__(name=name)
    if event_size < 1 or not hidden_sizes or min(hidden_sizes) < 1:
      raise ValueError(
        f"MADE needs event_size >= 1 and at least one hidden size >= 1, got {event_size}, {list(hidden_sizes)}."
      )
    self.event_size, self.activation, self.log_scale_clip = int(event_size), activation, float(log_scale_clip)
    inputs, hidden = _degrees(event_size, hidden_sizes, reverse)
    self.order = inputs
    previous = inputs
    self._layers = []
    for i, degrees in enumerate(hidden):
      self._layers.append(_MaskedLinear((degrees[None, :] >= previous[:, None]).astype(np.float32), name=f"hidden_{i}"))
      previous = degrees
    out_mask = (inputs[None, :] > previous[:, None]).astype(np.float32)
    self._shift = _MaskedLinear(out_mask, zero_init=True, name="shift")
    self._log_scale = _MaskedLinear(out_mask, zero_init=True, name="log_scale")
    self._context = snt.Linear(int(hidden_sizes[0]), with_bias=False, name="context")

  def __call__(self, z: tf.Tensor, context: Optional[tf.Tensor] = None):
    """Returns (shift, log_scale), each with z's shape [..., D]."""
    hidden = self._layers[0](z)
    if context is not None:
      hidden = hidden + self._context(context)
    hidden = self.activation(hidden)
    for layer in self._layers[1:]:
      hidden = self.activation(layer(hidden))
    raw = self._log_scale(hidden)
    return self._shift(hidden), self.log_scale_clip * tf.tanh(raw / self.log_scale_clip)


def _split_base(output, who: str):
  """(q0, h) from a base encoder that returns q0 or (q0, h)."""
  if isinstance(output, tfd.Distribution):
    return output, None
  if isinstance(output, (tuple, list)) and len(output) == 2:
    return checks.check_distribution(output[0], who), tf.convert_to_tensor(output[1])
  raise TypeError(
    f"{who} must return a distribution q0(z|x) or a pair (q0, context [batch, size]), got {type(output).__name__}."
  )


def _check_base(q0: tfd.Distribution, latent_size: int, who: str) -> None:
  event = q0.event_shape
  if event.rank is not None and (event.rank != 1 or (event[0] is not None and event[0] != latent_size)):
    raise ValueError(f"{who}: the base distribution must have event shape [{latent_size}], got {event.as_list()}.")


@configurable
class IAFPosterior(snt.Module):
  """q(z|x): a base distribution from an encoder, then T inverse autoregressive flow steps.

  `IAFPosterior(base_encoder, latent_size, num_steps)(x)` returns
  `tfd.TransformedDistribution(q0, Chain(steps))` with batch shape [B] and event shape [D]: a
  fully reparameterized q that works with every objective and estimator ("reparam", "stl",
  "dreg"), the bounds of `tfpvi.objectives` and the evaluators.

  #### Examples

  ```python
  encoder = tfpvi.flows.iaf_mlp([200, 200], latent_size=50, num_steps=2)
  model = tfpvi.VAE(encoder, decoder, tfpvi.standard_normal_prior(50))
  ```
  """

  def __init__(
    self,
    base_encoder: BaseEncoder,
    latent_size: int,
    num_steps: int = 2,
    hidden_sizes: Sequence[int] = (64,),
    *,
    activation: Activation = tf.nn.elu,
    log_scale_clip: float = 5.0,
    name: Optional[str] = None,
  ):
    """Builds the flow.

    Args:
      base_encoder: callable x [B, ...] -> q0(z|x) (batch [B], event [latent_size], fully
        reparameterized), or -> (q0, h) with a context h [B, context_size] that every MADE sees.
        A Sonnet module's variables are tracked (trained) with the flow's.
      latent_size: D.
      num_steps: T >= 1 IAF steps; steps alternate the variable order (1..D, D..1, ...).
      hidden_sizes: hidden layer sizes of each MADE.
      activation: MADE nonlinearity.
      log_scale_clip: bound on each step's |log scale| (see `MADE`).
      name: module name.
    """
    super().__init__(name=name)
    if not callable(base_encoder):
      raise TypeError(f"base_encoder must be callable, got {type(base_encoder).__name__}.")
    num_steps = checks.check_num_samples(num_steps, "num_steps")
    self.base_encoder, self.latent_size = base_encoder, int(latent_size)
    self.mades = [
      MADE(
        latent_size,
        hidden_sizes,
        reverse=bool(t % 2),
        activation=activation,
        log_scale_clip=log_scale_clip,
        name=f"made_{t}",
      )
      for t in range(num_steps)
    ]

  def bijector(self, context: Optional[tf.Tensor] = None) -> tfb.Bijector:
    """The flow z_0 -> z_T for a given context, as a `tfb.Chain` of inverted MAF steps."""
    steps = []
    for t, made in enumerate(self.mades):

      def shift_and_log_scale(z, made=made):
        return made(z, context)

      steps.append(
        tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale, name=f"maf_{t}"))
      )
    return tfb.Chain(steps[::-1])  # Chain applies its last bijector first: step 0 acts first

  def __call__(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q(z|x), batch shape [B], event shape [latent_size]."""
    q0, context = _split_base(self.base_encoder(x), "base_encoder")
    _check_base(q0, self.latent_size, "IAFPosterior")
    return tfd.TransformedDistribution(q0, self.bijector(context))


class PlanarFlow(tfb.Bijector):
  """f(z) = z + u^ tanh(w^T z + b) (Rezende & Mohamed 2015), parameters broadcast over z's batch.

  u^ = u + (m(w^T u) - w^T u) w / |w|^2 with m(a) = -1 + softplus(a) makes w^T u^ >= -1, so f is
  invertible; log |det df/dz| = log |1 + u^T psi(z)|, psi = tanh'(w^T z + b) w. The inverse has no
  closed form: `inverse` raises, and log_prob works only at values this bijector just produced
  (the bijector cache).
  """

  def __init__(self, u, w, b, validate_args: bool = False, name: str = "planar"):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self.u, self.w, self.b = (tf.convert_to_tensor(v, tf.float32) for v in (u, w, b))
      super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters, name=name)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return dict(
      u=tfp.util.ParameterProperties(event_ndims=1),
      w=tfp.util.ParameterProperties(event_ndims=1),
      b=tfp.util.ParameterProperties(event_ndims=0),
    )

  def _u_hat(self):
    wu = tf.reduce_sum(self.w * self.u, -1, keepdims=True)
    return self.u + (tf.nn.softplus(wu) - 1.0 - wu) * self.w / (
      tf.reduce_sum(tf.square(self.w), -1, keepdims=True) + 1e-8
    )

  def _activation(self, z):
    return tf.tanh(tf.reduce_sum(self.w * z, -1, keepdims=True) + self.b[..., None])

  def _forward(self, z):
    return z + self._u_hat() * self._activation(z)

  def _forward_log_det_jacobian(self, z):
    psi_u = (1.0 - tf.square(self._activation(z))) * tf.reduce_sum(self.w * self._u_hat(), -1, keepdims=True)
    return tf.math.log(tf.abs(1.0 + psi_u[..., 0]) + 1e-12)

  def _inverse(self, y):
    raise NotImplementedError(
      "PlanarFlow has no closed-form inverse: log q is available only at samples just drawn from the flow. "
      "Use gradient_estimator='reparam' (STL and DReG evaluate log q at stop_gradient(z)), or an IAF "
      "(tfpvi.flows.IAFPosterior)."
    )


@configurable
class PlanarPosterior(snt.Module):
  """q(z|x): a base Gaussian and context from an encoder, then T amortized planar flows.

  The flow parameters (u_t, w_t, b_t) are a linear function of the context h (initially
  constant: u = b = 0 and a random w per step). Use with "reparam" only (see `PlanarFlow`).
  """

  def __init__(self, base_encoder: BaseEncoder, latent_size: int, num_steps: int = 4, *, name: Optional[str] = None):
    """Args: base_encoder returning (q0, h) (h required: the flows are amortized); latent_size D; num_steps T."""
    super().__init__(name=name)
    if not callable(base_encoder):
      raise TypeError(f"base_encoder must be callable, got {type(base_encoder).__name__}.")
    self.base_encoder, self.latent_size = base_encoder, int(latent_size)
    self.num_steps = checks.check_num_samples(num_steps, "num_steps")
    size = self.num_steps * (2 * self.latent_size + 1)
    self._head = snt.Linear(size, w_init=tf.zeros, name="flow_parameters")
    self._w_offset = tf.Variable(tf.random.normal([self.num_steps, self.latent_size], stddev=1.0), name="w_offset")

  def __call__(self, x: tf.Tensor) -> tfd.Distribution:
    """Returns q(z|x), batch shape [B], event shape [latent_size]."""
    q0, context = _split_base(self.base_encoder(x), "base_encoder")
    if context is None:
      raise ValueError("PlanarPosterior needs a base_encoder returning (q0, context) to amortize its flows.")
    _check_base(q0, self.latent_size, "PlanarPosterior")
    d, t = self.latent_size, self.num_steps
    params = tf.reshape(self._head(context), tf.concat([tf.shape(context)[:-1], [t, 2 * d + 1]], 0))
    flows = [
      PlanarFlow(
        params[..., i, :d], params[..., i, d : 2 * d] + self._w_offset[i], params[..., i, 2 * d], name=f"planar_{i}"
      )
      for i in range(t)
    ]
    return tfd.TransformedDistribution(q0, tfb.Chain(flows[::-1]))


@configurable
class GaussianContextMLP(snt.Module):
  """An MLP encoder returning (q0(z|x), h): a diagonal Gaussian and a context vector for a flow.

  ```none
  hidden = MLP(flatten(x));  loc, raw, h = split(Linear(hidden), [D, D, context_size])
  q0 = Independent(Normal(loc, min_scale + softplus(raw)), 1)
  ```
  """

  def __init__(
    self,
    hidden_sizes: Sequence[int],
    latent_size: int,
    context_size: int = 32,
    activation: Activation = tf.nn.tanh,
    min_scale: float = 1e-4,
    name: Optional[str] = None,
  ):
    super().__init__(name=name)
    self.latent_size, self.context_size, self.min_scale = int(latent_size), int(context_size), float(min_scale)
    self._flatten_input = snt.Flatten()
    self._torso = snt.nets.MLP(list(hidden_sizes), activation=activation, activate_final=True)
    self._head = snt.Linear(2 * self.latent_size + self.context_size, name="loc_scale_context")

  def __call__(self, x: tf.Tensor):
    """Returns (q0 with batch [B] and event [D], h [B, context_size])."""
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank is not None and x.shape.rank < 2:
      raise ValueError(f"{self.name}: expected a batch of inputs with shape [batch, ...], got {x.shape.as_list()}.")
    out = self._head(self._torso(self._flatten_input(x)))
    loc, raw, context = tf.split(out, [self.latent_size, self.latent_size, self.context_size], axis=-1)
    q0 = tfd.Independent(tfd.Normal(loc, self.min_scale + tf.nn.softplus(raw)), reinterpreted_batch_ndims=1)
    return q0, context


def iaf_mlp(
  hidden_sizes: Sequence[int],
  latent_size: int,
  num_steps: int = 2,
  *,
  made_hidden_sizes=None,
  context_size: int = 32,
  activation: Activation = tf.nn.tanh,
  name: Optional[str] = None,
) -> IAFPosterior:
  """An IAF posterior on a `GaussianContextMLP` (Kingma et al. 2016's encoder, as an MLP).

  Args:
    hidden_sizes: encoder MLP hidden sizes, e.g. [200, 200].
    latent_size: D.
    num_steps: IAF steps.
    made_hidden_sizes: MADE hidden sizes (default [2 D]).
    context_size: size of the context h.
    activation: encoder nonlinearity.
    name: module name.
  """
  base = GaussianContextMLP(hidden_sizes, latent_size, context_size, activation)
  return IAFPosterior(base, latent_size, num_steps, made_hidden_sizes or (2 * latent_size,), name=name)


def planar_mlp(
  hidden_sizes: Sequence[int],
  latent_size: int,
  num_steps: int = 4,
  *,
  context_size: int = 32,
  activation: Activation = tf.nn.tanh,
  name: Optional[str] = None,
) -> PlanarPosterior:
  """A planar-flow posterior on a `GaussianContextMLP` (Rezende & Mohamed 2015, amortized)."""
  base = GaussianContextMLP(hidden_sizes, latent_size, context_size, activation)
  return PlanarPosterior(base, latent_size, num_steps, name=name)
