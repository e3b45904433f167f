"""The compiled part of `tfpvi.train.fit`: schedules, one optimizer step, and a loop of steps.

- Randomness is stateless: step s uses seeds folded from (seed, s), so the RNG state is the step
  counter and a resumed run draws exactly what an uninterrupted one would.
- `TrainingLoop.run(num, ...)` runs `num` steps inside one `tf.while_loop` (XLA-compiled when
  asked). A step whose loss, a term or a gradient is not finite is not applied and ends the loop.
- The loop sums the loss and every term over steps in variables (`interval_sum`,
  `interval_count`) that the checkpoint holds, so the logged interval means are the same whether
  or not the run was interrupted in between.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Mapping, Optional

import numpy as np
import tensorflow as tf

from tfpvi import precision as precision_lib
from tfpvi import xla
from tfpvi.train.data import TrainData

__all__ = ["Schedules", "TrainingLoop", "split_objective"]


def split_objective(output) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
  """Returns ([B] objective, {name: [B] term}) from a Tensor or a dict with "objective"."""
  if isinstance(output, Mapping):
    if "objective" not in output:
      raise ValueError(f"an objective returning a dict must include 'objective'; got {sorted(output)}.")
    terms = {k: v for k, v in output.items() if k != "objective"}
    return output["objective"], terms
  return output, {}


def _traces_in_graph(fn: Callable) -> bool:
  """Whether `fn(step)` works on a float32 Tensor inside a graph (else it is called in Python)."""
  try:
    tf.function(lambda step: tf.cast(fn(step), tf.float32), autograph=False).get_concrete_function(
      tf.TensorSpec([], tf.float32)
    )
  except Exception:  # noqa: BLE001 -- any failure means "evaluate it in Python"; real bugs resurface there
    return False
  return True


class Schedules:
  """Values that change with the step: `name -> fn(step)`, step a float (1 at the first step).

  A schedule written with TensorFlow ops (`lambda s: tf.minimum(1., s / 1e4)`) is evaluated
  inside the compiled loop. One that only works on Python numbers (`lambda s: min(1., s / 1e4)`)
  is evaluated on the host for every step of a call and fed to the loop as a table.
  """

  def __init__(self, schedules: Mapping[str, Callable]):
    self.names = list(schedules)
    self._fns = dict(schedules)
    self._host = [name for name, fn in self._fns.items() if not _traces_in_graph(fn)]

  def host_table(self, first_step: int, num: int, rows: Optional[int] = None) -> tf.Tensor:
    """[rows, number of host schedules] float32 values at steps first_step, first_step + 1, ...

    Rows past `num` are zeros: a fixed `rows` keeps the compiled loop from retracing.
    """
    table = np.zeros([max(rows or num, num), len(self._host)], np.float32)
    for i in range(num if self._host else 0):
      table[i] = [float(self._fns[name](float(first_step + i))) for name in self._host]
    return tf.constant(table)

  def values(self, step: tf.Tensor, host_row: tf.Tensor) -> dict[str, tf.Tensor]:
    """{name: float32 scalar} at `step` (int64 Tensor); host_row is this step's host_table row."""
    out = {}
    for name in self.names:
      if name in self._host:
        out[name] = host_row[self._host.index(name)]
      else:
        out[name] = tf.cast(self._fns[name](tf.cast(step, tf.float32)), tf.float32)
    return out

  def values_at(self, step: int) -> dict[str, tf.Tensor]:
    """Eager values at one step (for evaluation and the first call)."""
    return self.values(tf.constant(step, tf.int64), self.host_table(step, 1)[0])


def _has_variables(model) -> bool:
  try:
    return bool(list(model.variables))
  except ValueError:  # Sonnet raises for a module without variables
    return False


class TrainingLoop:
  """Compiled optimizer steps for `fit`; see the module docstring.

  Attributes:
    step: int64 variable, the number of steps applied.
    metric_names: ["loss", term names..., scheduled names..., ("learning_rate")].
    num_averaged: how many leading metrics (loss and terms) are averaged over the log interval.
  """

  def __init__(
    self,
    model,
    objective: Callable,
    optimizer,
    data: TrainData,
    *,
    static_kwargs: Mapping[str, Any],
    schedules: Schedules,
    learning_rate: Optional[Schedules],
    preprocess: Optional[Callable],
    strategy: tf.distribute.Strategy,
    seed: int,
    precision: str = "float32",
  ):
    self.model = model
    self.precision = precision_lib.check(precision)
    self.objective = objective
    self.optimizer = optimizer
    self.data = data
    self.static_kwargs = dict(static_kwargs)
    self.schedules = schedules
    self.learning_rate = learning_rate
    self.preprocess = preprocess
    self.strategy = strategy
    self.seed = seed
    self.base_seed = tf.constant([seed, 0x5EED], tf.int64)
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

  def step_seed(self, step, stream: int) -> tf.Tensor:
    """A stateless int32 [2] seed for (step, stream): the same draw on every run and resume."""
    return tf.cast(tf.random.experimental.stateless_fold_in(self.base_seed, step * 4 + stream), tf.int32)

  def eval_seed(self, index) -> tf.Tensor:
    return tf.cast(tf.random.experimental.stateless_fold_in(self.base_seed, -1 - index), tf.int32)

  def call_objective(self, batch, seed, scheduled: Mapping[str, tf.Tensor]):
    with precision_lib.policy(self.precision):  # read by the networks as the step is traced
      output = self.objective(self.model, batch, seed=seed, **self.static_kwargs, **scheduled)
    return split_objective(output)

  # -- building --------------------------------------------------------------------------------

  def build(self) -> None:
    """One eager step's forward pass: creates variables, names the terms and checks gradients.

    Raises:
      ValueError: if the objective uses trainable variables the model does not hold (they would
        silently never train). Model variables that get no gradient are reported as a warning.
    """
    if not _has_variables(self.model):
      # Sonnet draws initial values from TensorFlow's global generator when a module is first
      # called (here): seeding it makes `seed` decide the initialisation too, so two fresh runs
      # with one seed are the same run. A model built before fit keeps the values it has.
      tf.random.set_seed(self.seed)
    batch = self.data.first_batch()
    if self.preprocess is not None:
      batch = self.preprocess(batch, tf.constant([0, 0], tf.int32))
    scheduled = self.schedules.values_at(1)
    with self.strategy.scope():
      with tf.GradientTape() as tape:
        value, terms = self.call_objective(batch, tf.constant([0, 0], tf.int32), scheduled)
        loss = -tf.reduce_mean(value)
      variables = self.model.trainable_variables
      self._check_variables(tape, loss, variables)
    self._create_optimizer_state(variables)  # outside the strategy's scope, where the training step applies
    self.variables = variables
    self.metric_names = ["loss", *terms, *scheduled] + (["learning_rate"] if self.learning_rate else [])
    self.num_averaged = 1 + len(terms)
    self.interval_sum = tf.Variable(tf.zeros([self.num_averaged], tf.float64), trainable=False, name="interval_sum")
    self.interval_count = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="interval_count")

  def _create_optimizer_state(self, variables) -> None:
    """Creates the optimizer's slots now, before a checkpoint restore and outside the compiled step.

    Sonnet optimizers create their slots at their first `apply`: one update with zero gradients
    creates them through the public API. It leaves every slot at its initial value (moments and
    accumulators of zero gradients are zero) and the model's values as they were (they are put
    back, whatever the optimizer does with a zero gradient); step counters go back to 0.
    """
    before = [tf.identity(v) for v in variables]
    zeros = [tf.zeros_like(v) for v in variables]
    self.optimizer.apply(zeros, variables)
    for variable, value in zip(variables, before):
      variable.assign(value)
    try:
      state = self.optimizer.variables
    except ValueError:  # a Sonnet module without variables (plain SGD) says so by raising
      state = ()
    for variable in state:
      if variable.dtype.is_integer:  # e.g. Adam's step, which sets its bias correction
        variable.assign(tf.zeros_like(variable))

  def _check_variables(self, tape: tf.GradientTape, loss: tf.Tensor, variables) -> None:
    held = {v.ref() for v in variables}
    held_names = {v.name for v in variables}
    outside = [
      v.name for v in tape.watched_variables() if v.trainable and v.ref() not in held and v.name not in held_names
    ]
    if outside:
      raise ValueError(
        f"the objective uses {len(outside)} trainable variables that the model does not hold, so fit "
        f"would never train them: {', '.join(sorted(set(outside)))}; make the modules that own them "
        "attributes of the model (e.g. pass the Sonnet module itself as the encoder, not a function "
        "that calls it), or create them with trainable=False if they are meant to stay fixed."
      )
    if self.strategy.num_replicas_in_sync > 1:  # mirrored variables: gradients only in a replica context
      return
    grads = tape.gradient(loss, variables)
    unused = [v.name for v, g in zip(variables, grads) if g is None]
    if unused:
      warnings.warn(
        f"{len(unused)} of the model's {len(variables)} trainable variables get no gradient from the "
        f"objective and will not change: {', '.join(unused)}. Connect them to the objective at every "
        "step (e.g. pass a VampPrior's pseudo-inputs through the encoder inside the prior's call, not "
        "once at construction) or create them with trainable=False.",
        stacklevel=4,
      )

  def tracked(self) -> dict[str, Any]:
    """Objects for the checkpoint besides model, optimizer and the data iterator."""
    return dict(step=self.step, interval_sum=self.interval_sum, interval_count=self.interval_count)

  # -- one step --------------------------------------------------------------------------------

  def _replica_step(self, batch, step, scheduled, replica_id=0):
    sample_seed = self.step_seed(step, 1)
    if self.strategy.num_replicas_in_sync > 1:  # distinct noise on each replica's slice
      sample_seed = tf.random.experimental.stateless_fold_in(sample_seed, replica_id)
    with tf.GradientTape() as tape:
      value, terms = self.call_objective(batch, sample_seed, scheduled)
      loss = -tf.reduce_mean(value)
    grads = tape.gradient(loss, self.variables)
    metrics = [loss] + [tf.reduce_mean(t) for t in terms.values()]
    replica = tf.distribute.get_replica_context()
    if replica is not None and self.strategy.num_replicas_in_sync > 1:
      grads = replica.all_reduce(tf.distribute.ReduceOp.MEAN, grads)
      metrics = replica.all_reduce(tf.distribute.ReduceOp.MEAN, metrics)
    checked = metrics + [g for g in grads if g is not None]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in checked])
    return grads, metrics, finite

  def _replica_slice_step(self, batch, step, scheduled):
    replica = tf.distribute.get_replica_context()
    replica_id = replica.replica_id_in_sync_group
    size = tf.shape(tf.nest.flatten(batch)[0])[0] // self.strategy.num_replicas_in_sync
    part = tf.nest.map_structure(lambda t: t[replica_id * size : (replica_id + 1) * size], batch)
    return self._replica_step(part, step, scheduled, replica_id)

  def _one_step(self, step, batches, host_row, lr_row):
    batch = self.data.draw(self.step_seed(step, 0)) if self.data.in_memory else batches
    if self.preprocess is not None:  # on the global batch, before any split over replicas
      batch = self.preprocess(batch, self.step_seed(step, 2))
    scheduled = self.schedules.values(step, host_row)
    if self.strategy.num_replicas_in_sync > 1:
      # Each replica takes its slice of the global batch; gradients and metrics are all-reduced
      # (means), so the first replica's copy is the global value, applied once to the mirrored
      # variables from the cross-replica context.
      per_replica = self.strategy.run(self._replica_slice_step, args=(batch, step, scheduled))
      grads, metrics, finite = tf.nest.map_structure(
        lambda v: self.strategy.experimental_local_results(v)[0], per_replica
      )
    else:
      grads, metrics, finite = self._replica_step(batch, step, scheduled)
    metrics = list(metrics) + list(scheduled.values())
    if self.learning_rate is not None:
      rate = self.learning_rate.values(step, lr_row)["learning_rate"]
      self.optimizer.learning_rate.assign(tf.cast(rate, self.optimizer.learning_rate.dtype))
      metrics.append(rate)

    def apply():
      self.optimizer.apply(grads, self.variables)
      return tf.constant(True)

    tf.cond(finite, apply, lambda: tf.constant(False))
    return metrics, finite

  def _loop(self, num_steps, batches, host_table, lr_table):
    def cond(i, metrics, finite):
      return tf.logical_and(i < num_steps, finite)

    def body(i, metrics, finite):
      step = self.step + 1
      batch = tf.nest.map_structure(lambda t: t[i], batches) if not self.data.in_memory else batches
      new_metrics, finite = self._one_step(step, batch, host_table[i], lr_table[i])
      self.step.assign_add(tf.cast(finite, tf.int64))
      averaged = tf.cast(tf.stack(new_metrics[: self.num_averaged]), tf.float64)
      self.interval_sum.assign_add(tf.where(finite, averaged, tf.zeros_like(averaged)))
      self.interval_count.assign_add(tf.cast(finite, tf.int64))
      return i + 1, new_metrics, finite

    zeros = [tf.constant(0.0)] * len(self.metric_names)
    _, metrics, finite = tf.while_loop(cond, body, (tf.constant(0), zeros, tf.constant(True)))
    return metrics, finite

  def compile(self, jit_compile: bool, steps_per_call: int) -> None:
    self._rows = steps_per_call
    self._compiled = self._compile(jit_compile)

  def _compile(self, jit_compile: bool):
    # xla.function: each compiled loop counts its own traces (TensorFlow would count every
    # TrainingLoop's `_loop` together and warn of "retracing" after an experiment's fifth model).
    return xla.function(self._loop, jit_compile=jit_compile and self.strategy.num_replicas_in_sync == 1)

  def measure(self, steps_per_call: int, num_steps: int) -> dict[str, float]:
    """Seconds per step of the graph and the XLA loop, each timed on about `num_steps` real steps; state restored.

    Each candidate is compiled and called once (its compilation is not timed), then timed on calls
    of `steps_per_call` steps, as the run will make them. Every variable the loop changes (model,
    optimizer, step counter, interval sums) is put back afterwards, and draws are stateless in the
    step, so the run continues exactly as if nothing had been measured. In-memory data only (a
    Dataset's iterator cannot be put back).
    """
    self._rows = steps_per_call
    state = self._state_variables()
    saved = [tf.identity(v) for v in state]
    calls = max(1, -(-num_steps // steps_per_call))
    timings = {}
    for name, jit in (("graph", False), ("xla", True)):
      self._compiled = self._compile(jit)
      self.run(steps_per_call)  # traces and compiles
      started = time.perf_counter()
      for _ in range(calls):
        self.run(steps_per_call)
      timings[name] = (time.perf_counter() - started) / (calls * steps_per_call)
      for variable, value in zip(state, saved):
        variable.assign(value)
    return timings

  def _state_variables(self) -> list:
    optimizer_variables = list(getattr(self.optimizer, "variables", ()) or ())
    unique = {id(v): v for v in [*self.model.variables, *optimizer_variables]}
    return [*unique.values(), self.step, self.interval_sum, self.interval_count]

  def run(self, num: int, batches=None) -> tuple[dict[str, float], bool]:
    """Runs `num` steps (stopping early at a non-finite one); returns (last step's metrics, finite).

    Args:
      num: steps in this call.
      batches: for a Dataset, a nest of [num, batch, ...] stacked batches; else None.
    """
    first = int(self.step.numpy()) + 1
    host_table = self.schedules.host_table(first, num, self._rows)
    lr_table = (
      self.learning_rate.host_table(first, num, self._rows) if self.learning_rate else tf.zeros([self._rows, 0])
    )
    if batches is None:
      batches = tf.zeros([0])
    metrics, finite = self._compiled(tf.constant(num), batches, host_table, lr_table)
    return dict(zip(self.metric_names, (float(m) for m in metrics))), bool(finite)

  def take_interval_means(self) -> dict[str, float]:
    """Means of the loss and terms over the steps since the last call; resets the sums."""
    count = int(self.interval_count.numpy())
    sums = self.interval_sum.numpy()
    self.interval_sum.assign(tf.zeros_like(self.interval_sum))
    self.interval_count.assign(0)
    names = self.metric_names[: self.num_averaged]
    return {name: float(s / count) if count else float("nan") for name, s in zip(names, sums)}
