"""Annealed importance sampling (AIS) of log p(x) and bidirectional Monte Carlo (BDMC).

AIS (Neal 2001) moves C chains per example through distributions that interpolate geometrically
between a normalized start pi_0(z) (the prior, as in Wu et al. 2017, or q(z|x)) and the joint
p(x, z), whose normalizer is p(x):

```none
log f_t(z) = log pi_0(z) + beta_t (log p(x, z) - log pi_0(z)),   0 = beta_0 < ... < beta_T = 1
log w      = sum_t (beta_t - beta_{t-1}) (log p(x, z_{t-1}) - log pi_0(z_{t-1}))
z_t        ~ T_t(z_t | z_{t-1}),  an HMC transition that leaves f_t invariant
```

Each chain's w is an unbiased estimate of p(x), so `log mean_c w_c` is a stochastic lower bound on
log p(x) (Jensen), as an importance-sampled estimate is; it is exact when T is large enough for the
chains to follow the annealing path. Run backwards (beta from 1 to 0) from an exact posterior sample,
the same sum estimates 1/p(x), which gives a stochastic *upper* bound. On data simulated from the
model an exact posterior sample is at hand (the latent that generated each example): this is
bidirectional Monte Carlo (Grosse et al. 2015, 2016), and the gap between the two bounds bounds the
error of either on data like it (`bdmc`).

Transitions are TFP's `tfp.mcmc.HamiltonianMonteCarlo`, with a step size per example adapted
during the run towards a target acceptance rate (Wu et al. use 0.65). Chains lie on the leading
axis, [C, B, ...], as Monte Carlo samples do everywhere in tfpvi; the annealing loop is a
`tf.while_loop`, compiled (with XLA where `jit_compile` says so), run in segments of
`steps_per_call` steps so that a progress bar can follow long runs. Memory is O(C * B * dims),
independent of the number of steps.

References:
  Neal. Annealed importance sampling. Statistics and Computing 2001.
  Grosse, Ghahramani, Adams. Sandwiching the marginal likelihood using bidirectional Monte Carlo.
    arXiv:1511.02543, 2015.
  Wu, Burda, Salakhutdinov, Grosse. On the quantitative analysis of decoder-based generative
    models. ICLR 2017.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import NamedTuple, Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import checks, xla
from tfpvi.types import Seed

tfd = tfp.distributions
tfb = tfp.bijectors

__all__ = [
  "AIS",
  "AISResult",
  "BDMCResult",
  "ais_log_marginal_likelihood",
  "bdmc",
  "linear_schedule",
  "sigmoidal_schedule",
]

_STARTS = ("prior", "posterior")


def sigmoidal_schedule(num_steps: int, *, delta: float = 4.0) -> np.ndarray:
  """Inverse temperatures beta_0 = 0 < ... < beta_T = 1 spaced by a sigmoid (Wu et al. 2017).

  ```none
  s_t = sigmoid(delta (2 t / T - 1)),   beta_t = (s_t - s_0) / (s_T - s_0)
  ```

  The steps are small at both ends, where the intermediate distributions change fastest relative
  to their width, and larger in the middle.

  Args:
    num_steps: Python int T >= 1.
    delta: Python float > 0; larger values crowd the steps towards both ends.

  Returns:
    float64 array [T + 1] from exactly 0 to exactly 1, increasing.

  Examples:
    >>> from tfpvi.evaluation.ais import sigmoidal_schedule
    >>> betas = sigmoidal_schedule(4)
    >>> [round(float(b), 3) for b in betas]
    [0.0, 0.105, 0.5, 0.895, 1.0]
  """
  num_steps = checks.check_num_samples(num_steps, "num_steps")
  if not delta > 0:
    raise ValueError(f"delta must be > 0, got {delta}.")
  s = 1.0 / (1.0 + np.exp(-delta * (2.0 * np.arange(num_steps + 1) / num_steps - 1.0)))
  betas = (s - s[0]) / (s[-1] - s[0])
  betas[0], betas[-1] = 0.0, 1.0
  return betas


def linear_schedule(num_steps: int) -> np.ndarray:
  """beta_t = t / T, the schedule of `tfp.mcmc.sample_annealed_importance_chain`; float64 [T + 1].

  Examples:
    >>> from tfpvi.evaluation.ais import linear_schedule
    >>> linear_schedule(4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
  """
  num_steps = checks.check_num_samples(num_steps, "num_steps")
  return np.linspace(0.0, 1.0, num_steps + 1)


def _check_schedule(betas) -> np.ndarray:
  betas = np.asarray(betas, np.float64)
  if betas.ndim != 1 or betas.size < 2:
    raise ValueError(
      f"schedule: expected a 1-D array of at least 2 inverse temperatures, got shape {list(betas.shape)}."
    )
  if not np.all(np.isfinite(betas)) or betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) <= 0):
    raise ValueError(
      "schedule: expected inverse temperatures increasing strictly from exactly 0 to exactly 1, got "
      f"{betas[:3].tolist()} ... {betas[-3:].tolist()}."
    )
  return betas


@dataclasses.dataclass(frozen=True)
class AIS:
  """Settings of an AIS estimate of log p(x): what `evaluate_dataset(..., estimator=AIS(...))` runs.

  Attributes:
    num_steps: annealing steps T (intermediate distributions); cost is about
      T * (num_leapfrog_steps + 2) evaluations of p(x, z) per chain.
    num_chains: chains C per example; the estimate is log mean_c w_c.
    schedule: "sigmoidal" (Wu et al.), "linear", or an explicit array of T + 1 inverse temperatures
      from 0 to 1 (which then decides num_steps).
    start: "prior" (pi_0 = p(z), as Wu et al.) or "posterior" (pi_0 = q(z|x): the chains start
      where the encoder puts the mass; with T = 1 and no transitions this is importance sampling).
    num_leapfrog_steps: leapfrog steps per HMC transition.
    step_size: initial HMC step size.
    target_accept_prob: the step size of each example is multiplied by 1.02 after a transition whose
      mean acceptance over its chains is above this, and by 0.98 otherwise.
    steps_per_call: annealing steps per compiled call (progress is reported between calls).
  """

  num_steps: int = 1000
  num_chains: int = 16
  schedule: Union[str, tuple] = "sigmoidal"
  start: str = "prior"
  num_leapfrog_steps: int = 10
  step_size: float = 0.05
  target_accept_prob: float = 0.65
  steps_per_call: int = 100

  def __post_init__(self):
    checks.check_num_samples(self.num_steps, "num_steps")
    checks.check_num_samples(self.num_chains, "num_chains")
    checks.check_num_samples(self.num_leapfrog_steps, "num_leapfrog_steps")
    checks.check_num_samples(self.steps_per_call, "steps_per_call")
    if isinstance(self.schedule, str):
      if self.schedule not in ("sigmoidal", "linear"):
        raise ValueError(
          f"schedule must be 'sigmoidal', 'linear' or an array of inverse temperatures, got {self.schedule!r}."
        )
    else:
      betas = _check_schedule(self.schedule)
      object.__setattr__(self, "schedule", tuple(float(b) for b in betas))
      object.__setattr__(self, "num_steps", len(betas) - 1)
    if self.start not in _STARTS:
      raise ValueError(f"start must be one of {_STARTS}, got {self.start!r}.")
    if not (isinstance(self.step_size, (int, float)) and math.isfinite(self.step_size) and self.step_size > 0):
      raise ValueError(f"step_size must be a positive float, got {self.step_size!r}.")
    if not 0 < self.target_accept_prob < 1:
      raise ValueError(f"target_accept_prob must be in (0, 1), got {self.target_accept_prob!r}.")

  def betas(self) -> np.ndarray:
    """The inverse temperatures, float64 [num_steps + 1]."""
    if self.schedule == "sigmoidal":
      return sigmoidal_schedule(self.num_steps)
    if self.schedule == "linear":
      return linear_schedule(self.num_steps)
    return np.asarray(self.schedule, np.float64)

  def describe(self) -> dict:
    """The settings as a JSON-able dict (recorded beside the estimates)."""
    record = dataclasses.asdict(self)
    if not isinstance(self.schedule, str):
      record["schedule"] = "explicit"
    return record


class AISResult(NamedTuple):
  """An AIS estimate per example, with what tells how far to trust it; each [B] unless said.

  Attributes:
    log_px: log mean_c w_c, nats (a stochastic lower bound on log p(x) for a forward run).
    standard_error: delta-method standard error over the chains, sqrt(1/ESS - 1/C).
    effective_sample_size: (sum_c w_c)^2 / sum_c w_c^2, in [1, C].
    log_weights: [C, B] the chains' log w_c.
    acceptance_rate: mean HMC acceptance probability over steps and chains.
    step_size: the adapted step size at the end of the run.
    final_state: the chains' last latents, [C, B, ...] (a nest for nested latents).
  """

  log_px: tf.Tensor
  standard_error: tf.Tensor
  effective_sample_size: tf.Tensor
  log_weights: tf.Tensor
  acceptance_rate: tf.Tensor
  step_size: tf.Tensor
  final_state: object


def _log_weight_stats(log_weights: tf.Tensor):
  """(log mean w, standard error, ESS) over the leading axis of log_weights [C, B]."""
  num_chains = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
  log_sum = tf.reduce_logsumexp(log_weights, axis=0)
  ess = tf.exp(2.0 * log_sum - tf.reduce_logsumexp(2.0 * log_weights, axis=0))
  log_mean = tfp.math.reduce_logmeanexp(log_weights, axis=0)
  return log_mean, tf.sqrt(tf.nn.relu(1.0 / ess - 1.0 / num_chains)), ess


def _check_continuous(z, role: str) -> None:
  for leaf in tf.nest.flatten(z):
    if not leaf.dtype.is_floating:
      raise ValueError(
        f"AIS with HMC needs continuous latents; {role} gives latents of dtype {leaf.dtype.name}. "
        "Use importance sampling (tfpvi.evaluation.evaluate_dataset) for discrete latents."
      )


def _check_real_support(distribution: tfd.Distribution, role: str) -> None:
  """Refuses a flat latent distribution whose support is constrained (HMC moves in R^d)."""
  if isinstance(distribution, tfd.JointDistribution):
    return  # each part is checked by the HMC proposal's own density: -inf outside the support is rejected
  try:
    bijector = distribution.experimental_default_event_space_bijector()
  except (NotImplementedError, AttributeError):
    return
  if bijector is not None and not isinstance(bijector, tfb.Identity):
    raise ValueError(
      f"AIS with HMC needs latents with support R^d; the {role} {type(distribution).__name__} has a "
      f"constrained support (its event-space bijector is {type(bijector).__name__}). Use importance "
      "sampling for such latents."
    )


class _Annealer:
  """One model's compiled AIS segment: `steps` annealing steps from step `first` of a schedule.

  Every batch of a data set reuses one trace. The instance itself is what is compiled (it is
  callable): TensorFlow counts traces per Python code object, so a bound method would share one
  count between the annealers of several calls and warn of "retracing".
  """

  def __init__(self, model, settings: AIS, jit_compile: bool):
    self._model = model
    self._settings = settings
    # One trace per input shape, never a shape-relaxed one: which graph a batch runs must not
    # depend on the batches before it, or a resumed evaluation would not repeat an uninterrupted one.
    self._segment = tf.function(self, jit_compile=jit_compile)

  def start_distribution(self, x):
    model = self._model
    if self._settings.start == "posterior":
      return model.posterior(x)
    return model.prior

  def initial_state(self, x, seed):
    start = self.start_distribution(x)
    num_chains = self._settings.num_chains
    if self._settings.start == "posterior":
      return start.sample(num_chains, seed=seed)
    return start.sample([num_chains, tf.shape(x)[0]], seed=seed)

  def _log_densities(self, x, z):
    """(log pi_0(z), log p(x, z)), each [C, B]."""
    terms = self._model.log_weight_terms(x, z, tf.zeros([]))
    if self._settings.start == "posterior":
      log_start = self._model.posterior(x).log_prob(z)
    else:
      log_start = terms.log_prior
    return log_start, terms.log_likelihood + terms.log_prior

  def __call__(self, x, parts, log_w, step_size, accept_sum, betas, first, steps, seed):
    structure = self.initial_state_structure
    settings = self._settings

    def unflatten(parts_):
      return tf.nest.pack_sequence_as(structure, list(parts_))

    def step_sizes(size):  # [B] -> one per state part, broadcasting over chains and event dimensions
      return [tf.reshape(size, tf.concat([tf.shape(size), tf.ones([p.shape.rank - 2], tf.int32)], 0)) for p in parts]

    def body(t, parts_, log_w_, size, accept):
      log_start, log_joint = self._log_densities(x, unflatten(parts_))
      log_w_ = log_w_ + tf.cast(betas[t] - betas[t - 1], log_w_.dtype) * (log_joint - log_start)
      beta = tf.cast(betas[t], log_w_.dtype)

      def target(*state):
        log_start_, log_joint_ = self._log_densities(x, unflatten(state))
        return log_start_ + beta * (log_joint_ - log_start_)

      kernel = tfp.mcmc.HamiltonianMonteCarlo(
        target, step_size=step_sizes(size), num_leapfrog_steps=settings.num_leapfrog_steps
      )
      new_parts, results = kernel.one_step(
        list(parts_), kernel.bootstrap_results(list(parts_)), seed=tf.random.experimental.stateless_fold_in(seed, t)
      )
      ratio = results.log_accept_ratio
      prob = tf.where(tf.math.is_nan(ratio), tf.zeros_like(ratio), tf.exp(tf.minimum(ratio, 0.0)))
      mean_prob = tf.reduce_mean(prob, axis=0)  # [B]
      size = size * tf.where(mean_prob > settings.target_accept_prob, 1.02, 0.98)
      return t + 1, new_parts, log_w_, size, accept + mean_prob

    last = first + steps
    _, parts, log_w, step_size, accept_sum = tf.while_loop(
      lambda t, *_: t <= last,
      body,
      (first + 1, list(parts), log_w, step_size, accept_sum),
      maximum_iterations=steps,
    )
    return parts, log_w, step_size, accept_sum

  def run(self, x, *, betas: np.ndarray, seed, initial_state=None, progress=None) -> AISResult:
    """Anneals along `betas` (increasing for a forward run, decreasing for a reverse one)."""
    settings = self._settings
    init_seed, run_seed = tfp.random.split_seed(seed, n=2)
    state = self.initial_state(x, init_seed) if initial_state is None else initial_state
    _check_continuous(state, "the start distribution" if initial_state is None else "initial_state")
    self.initial_state_structure = tf.nest.map_structure(lambda _: None, state)
    parts = [tf.convert_to_tensor(p, tf.float32) for p in tf.nest.flatten(state)]
    batch = tf.shape(x)[0]
    log_w = tf.zeros([settings.num_chains, batch])
    step_size = tf.fill([batch], tf.constant(settings.step_size, tf.float32))
    accept = tf.zeros([batch])
    num_steps = len(betas) - 1
    betas_tensor = tf.constant(betas, tf.float64)
    bar = _progress_bar(progress, num_steps)
    for first in range(0, num_steps, settings.steps_per_call):
      steps = min(settings.steps_per_call, num_steps - first)
      parts, log_w, step_size, accept = self._segment(
        x, parts, log_w, step_size, accept, betas_tensor, tf.constant(first), tf.constant(steps), run_seed
      )
      if bar is not None:
        bar.update(steps)
    if bar is not None:
      bar.close()
    log_px, standard_error, ess = _log_weight_stats(log_w)
    return AISResult(
      log_px,
      standard_error,
      ess,
      log_w,
      accept / num_steps,
      step_size,
      tf.nest.pack_sequence_as(self.initial_state_structure, parts),
    )


def _progress_bar(progress: Optional[bool], total: int):
  if progress is None:
    progress = sys.stderr.isatty() and total >= 1000
  if not progress:
    return None
  from tqdm.auto import tqdm

  return tqdm(total=total, unit="step", desc="AIS", dynamic_ncols=True)


def _prepare(model, x) -> tf.Tensor:

  x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
  checks.check_examples(model, x)  # the support and shape checks of every estimator of log p(x)
  _check_real_support(model.prior, "prior")
  return x


def ais_log_marginal_likelihood(
  model,
  x: tf.Tensor,
  *,
  num_steps: int = 1000,
  num_chains: int = 16,
  schedule: Union[str, np.ndarray] = "sigmoidal",
  start: str = "prior",
  num_leapfrog_steps: int = 10,
  step_size: float = 0.05,
  target_accept_prob: float = 0.65,
  steps_per_call: int = 100,
  jit_compile: "xla.JitCompile" = "auto",
  progress: Optional[bool] = None,
  seed: Seed = None,
) -> AISResult:
  """AIS estimate of log p(x) per example, with its standard error (Neal 2001; Wu et al. 2017).

  Geometric annealing from pi_0 (the prior, or q(z|x) with `start="posterior"`) to p(x, z) with
  HMC transitions; see the module docstring for the formulas and `AIS` for every option.

  Args:
    model: a `tfpvi.VAE` (or any object with `prior`, `posterior(x)` and `log_weight_terms`) with
      continuous latents, flat ([B, d]) or nested (a dict or list of them).
    x: observations [B, *event_shape of p(x|z)], in the likelihood's support.
    num_steps: as in `AIS`.
    num_chains: as in `AIS`.
    schedule: as in `AIS`.
    start: as in `AIS`.
    num_leapfrog_steps: as in `AIS`.
    step_size: as in `AIS`.
    target_accept_prob: as in `AIS`.
    steps_per_call: as in `AIS`.
    jit_compile: True, False or "auto" (XLA when a GPU is visible).
    progress: a progress bar over annealing steps (tqdm); None shows it on a terminal for runs of
      1,000 steps or more.
    seed: None, a Python int or a stateless seed; the same seed gives the same estimate (up to the
      occasional 1-ulp differences of TensorFlow's multi-threaded CPU kernels, which a chain's
      accept/reject step can amplify within the Monte Carlo error; one intra- and one inter-op
      thread make it bitwise repeatable).

  Returns:
    AISResult: `log_px` [B] nats and `standard_error` [B], with the chains' log weights and the
    sampler's acceptance rate and step sizes.

  Raises:
    ValueError: for x of the wrong shape or outside the likelihood's support, discrete or
      constrained latents, or bad settings.

  Examples:
    >>> import numpy as np, tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=5, latent_size=2, seed=0)
    >>> x = truth.sample(3, seed=[1, 2])
    >>> result = ais_log_marginal_likelihood(truth.as_vae(), x, num_steps=1000, num_chains=16, seed=0)
    >>> error = result.log_px - truth.log_marginal(x)
    >>> bool(np.all(np.abs(error) < 4 * result.standard_error + 0.05))
    True
  """
  settings = AIS(
    num_steps=num_steps,
    num_chains=num_chains,
    schedule=schedule,
    start=start,
    num_leapfrog_steps=num_leapfrog_steps,
    step_size=step_size,
    target_accept_prob=target_accept_prob,
    steps_per_call=steps_per_call,
  )
  x = _prepare(model, x)
  annealer = _Annealer(model, settings, xla.resolve(jit_compile))
  return annealer.run(x, betas=settings.betas(), seed=checks.stateless_seed(seed), progress=progress)


class BDMCResult(NamedTuple):
  """Bidirectional Monte Carlo on data simulated from the model; each [B] unless said.

  Attributes:
    lower: forward AIS estimate (a stochastic lower bound on log p(x)), nats.
    upper: reverse AIS estimate from the exact latent (a stochastic upper bound), nats.
    gap: upper - lower; the true log p(x) lies between the bounds in expectation, so the gap
      bounds the error of the forward estimate on data like this.
    x: the simulated observations [B, ...].
    forward: the forward run's AISResult.
    reverse: the reverse run's AISResult (its log_px is the estimate of -log p(x)).
  """

  lower: tf.Tensor
  upper: tf.Tensor
  gap: tf.Tensor
  x: tf.Tensor
  forward: AISResult
  reverse: AISResult


def simulate(model, num_examples: int, *, seed: Seed = None):
  """(x, z): z ~ p(z) [N, ...] and x ~ p(x|z) [N, ...]; z is an exact posterior sample given x."""
  num_examples = checks.check_num_samples(num_examples, "num_examples")
  z_seed, x_seed = tfp.random.split_seed(checks.stateless_seed(seed), n=2)
  z = model.prior.sample(num_examples, seed=z_seed)
  return model.likelihood(z).sample(seed=x_seed), z


def bdmc(
  model,
  num_examples: int,
  *,
  num_steps: int = 1000,
  num_chains: int = 16,
  schedule: Union[str, np.ndarray] = "sigmoidal",
  num_leapfrog_steps: int = 10,
  step_size: float = 0.05,
  target_accept_prob: float = 0.65,
  steps_per_call: int = 100,
  jit_compile: "xla.JitCompile" = "auto",
  progress: Optional[bool] = None,
  seed: Seed = None,
) -> BDMCResult:
  """Sandwiches log p(x) between forward and reverse AIS on data simulated from the model.

  Draws (z*, x) from p(z) p(x|z), so that z* is an exact sample of p(z|x). A forward AIS run from
  the prior gives a stochastic lower bound on log p(x); a reverse run, annealing from p(z|x) back
  to the prior with every chain starting at z*, estimates 1/p(x) without bias, so minus its log
  gives a stochastic upper bound (Grosse et al. 2015). Read `gap.mean()` as how far an AIS estimate
  with these settings can be from the truth on data like the model's own samples; it shrinks to 0
  as `num_steps` grows.

  Args:
    model: a `tfpvi.VAE` with continuous latents.
    num_examples: Python int, how many examples to simulate.
    num_steps: as in `ais_log_marginal_likelihood`; both runs use the prior as pi_0 and the same
      schedule, reversed for the reverse run.
    num_chains: as in `ais_log_marginal_likelihood`.
    schedule: as in `ais_log_marginal_likelihood`.
    num_leapfrog_steps: as in `ais_log_marginal_likelihood`.
    step_size: as in `ais_log_marginal_likelihood`.
    target_accept_prob: as in `ais_log_marginal_likelihood`.
    steps_per_call: as in `ais_log_marginal_likelihood`.
    jit_compile: as in `ais_log_marginal_likelihood`.
    progress: as in `ais_log_marginal_likelihood`.
    seed: None, a Python int or a stateless seed.

  Returns:
    BDMCResult with lower, upper and gap [B] in nats.

  Examples:
    >>> import numpy as np, tfpvi
    >>> truth = tfpvi.LinearGaussian.random(data_size=5, latent_size=2, seed=0)
    >>> result = bdmc(truth.as_vae(), 8, num_steps=1000, num_chains=8, seed=0)
    >>> bool(abs(float(np.mean(result.gap))) < 0.3)
    True
  """
  settings = AIS(
    num_steps=num_steps,
    num_chains=num_chains,
    schedule=schedule,
    start="prior",
    num_leapfrog_steps=num_leapfrog_steps,
    step_size=step_size,
    target_accept_prob=target_accept_prob,
    steps_per_call=steps_per_call,
  )
  data_seed, forward_seed, reverse_seed = tfp.random.split_seed(checks.stateless_seed(seed), n=3)
  x, z = simulate(model, num_examples, seed=data_seed)
  x = _prepare(model, x)
  annealer = _Annealer(model, settings, xla.resolve(jit_compile))
  betas = settings.betas()
  forward = annealer.run(x, betas=betas, seed=forward_seed, progress=progress)
  exact = tf.nest.map_structure(lambda part: tf.broadcast_to(part, tf.concat([[num_chains], tf.shape(part)], 0)), z)
  reverse = annealer.run(x, betas=betas[::-1].copy(), seed=reverse_seed, initial_state=exact, progress=progress)
  upper = -reverse.log_px
  return BDMCResult(forward.log_px, upper, upper - forward.log_px, x, forward, reverse)
