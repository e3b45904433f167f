"""`fit`: a compiled, resumable training loop for any tfpvi objective.

Design:
- Randomness is stateless: step s uses seeds folded from (seed, s), so the RNG state is the step
  counter and a resumed run draws exactly what an uninterrupted one would.
- Several steps run inside one XLA-compiled `tf.while_loop` (`steps_per_call`); in-memory data
  stay on the device and batches are gathered inside the loop (indices drawn with replacement).
- Checkpoints (`tf.train.CheckpointManager`: model, optimizer, step, data iterator) are written
  after history.csv (atomically), so a run killed at any moment resumes from its last checkpoint
  and history.csv ends with every logged step once, in order.
- A non-finite loss or term stops training with an error naming the step and the term; that
  step's update is not applied and no checkpoint is written after it.
"""

from __future__ import annotations

import math
import os
import pathlib
import sys
import time
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import pandas as pd
import sonnet as snt
import tensorflow as tf

from tfpvi import xla

__all__ = ["fit", "powers_of_two"]

LogSchedule = Union[int, str, Callable[[int], bool]]


def powers_of_two(step: int) -> bool:
  """True at steps 1, 2, 4, 8, ... (seed 001's logging)."""
  return step > 0 and step & (step - 1) == 0


def _log_predicate(log_every: Optional[LogSchedule], total_steps: int) -> Callable[[int], bool]:
  if log_every is None:
    log_every = max(1, total_steps // 200)
  if log_every == "powers_of_two":
    return powers_of_two
  if callable(log_every):
    return log_every
  if isinstance(log_every, int) and log_every >= 1:
    return lambda step: step % log_every == 0
  raise ValueError(f"log_every must be an int >= 1, 'powers_of_two' or a callable, got {log_every!r}.")


def _split_objective(output) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
  """Returns ([B] objective, {name: [B] term}) from a Tensor or a dict with "objective"."""
  if isinstance(output, Mapping):
    if "objective" not in output:
      raise ValueError(f"an objective returning a dict must include 'objective'; got {sorted(output)}.")
    terms = {k: v for k, v in output.items() if k != "objective"}
    return output["objective"], terms
  return output, {}


def _as_examples(data) -> Optional[tf.Tensor]:
  """In-memory examples [N, ...] as a float32 Tensor, or None for a tf.data.Dataset."""
  if isinstance(data, tf.data.Dataset):
    return None
  if isinstance(data, Mapping):
    data = data["image"]
  return tf.convert_to_tensor(np.asarray(data, dtype=np.float32) if not tf.is_tensor(data) else data, tf.float32)


def _batch_images(batch) -> tf.Tensor:
  return tf.cast(batch["image"] if isinstance(batch, Mapping) else batch, tf.float32)


class _History:
  """Rows of the training history, written atomically as CSV."""

  def __init__(self, path: Optional[pathlib.Path]):
    self.path = path
    self.rows: list[dict[str, Any]] = []

  def restore(self, last_step: int) -> None:
    if self.path is not None and self.path.exists() and last_step > 0:
      frame = pd.read_csv(self.path)
      self.rows = frame[frame["step"] <= last_step].to_dict("records")

  def append(self, row: dict[str, Any]) -> None:
    if self.rows and self.rows[-1]["step"] == row["step"]:
      self.rows[-1].update(row)
    else:
      self.rows.append(row)

  @property
  def wall_time(self) -> float:
    return float(self.rows[-1]["wall_time"]) if self.rows else 0.0

  def frame(self) -> pd.DataFrame:
    return pd.DataFrame(self.rows)

  def write(self) -> None:
    if self.path is None:
      return
    tmp = self.path.with_suffix(".csv.tmp")
    self.frame().to_csv(tmp, index=False)
    os.replace(tmp, self.path)


def fit(
    model,
    objective: Callable[..., Any],
    train_data,
    *,
    optimizer: snt.Optimizer,
    steps: Optional[int] = None,
    epochs: Optional[float] = None,
    batch_size: Optional[int] = None,
    objective_kwargs: Optional[Mapping[str, Any]] = None,
    learning_rate: Optional[Callable[[tf.Tensor], tf.Tensor]] = None,
    preprocess: Optional[Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = None,
    eval_data=None,
    eval_every: Optional[int] = None,
    eval_fn: Optional[Callable[[Any], Mapping[str, float]]] = None,
    log_every: Optional[LogSchedule] = None,
    output_dir: Optional[str] = None,
    checkpoint_every: Optional[int] = None,
    checkpoint_seconds: float = 60.0,
    max_to_keep: int = 2,
    steps_per_call: int = 1,
    strategy: Optional[tf.distribute.Strategy] = None,
    jit_compile: xla.JitCompile = "auto",
    seed: int = 0,
    progress: Optional[bool] = None,
) -> pd.DataFrame:
  """Trains `model` by maximizing the batch mean of `objective`, and returns the history.

  Args:
    model: a `tfpvi.VAE` (any `snt.Module` the objective accepts).
    objective: `objective(model, x, *, seed, **objective_kwargs)` returning per-example values [B]
      (nats; higher is better) or a dict with "objective" and other [B] terms, e.g.
      `tfpvi.objectives.iwae` or `tfpvi.objectives.elbo` with `return_terms=True`.
    train_data: in-memory examples [N, ...] (array, Tensor, or dict with "image"), kept on the
      device and sampled in batches of `batch_size`; or a `tf.data.Dataset` of batches (Tensors or
      dicts with "image"), repeated as needed.
    optimizer: a Sonnet optimizer, e.g. `snt.optimizers.Adam(1e-3)`.
    steps: number of optimizer steps; or give `epochs`.
    epochs: passes over the data (in-memory: N / batch_size steps each; Dataset: its cardinality).
    batch_size: batch size for in-memory data.
    objective_kwargs: keyword arguments for the objective; a callable value is a schedule
      `step -> value` evaluated at every step (KL warm-up: `beta=lambda s: min(1., s / 1e4)`);
      scheduled values are logged.
    learning_rate: a schedule `step -> learning rate`, assigned before every step to the
      optimizer's `learning_rate`, which must then be a `tf.Variable` (e.g.
      `snt.optimizers.Adam(tf.Variable(1e-3))`); logged as learning_rate.
    preprocess: `preprocess(x, seed) -> x` applied to each batch inside the compiled step, e.g.
      `tfpvi.data.binarize_dynamic`.
    eval_data: examples or a Dataset to evaluate the objective on every `eval_every` steps
      (logged as eval_objective).
    eval_every: steps between evaluations (also at the last step).
    eval_fn: `eval_fn(model) -> {name: float}`, extra metrics logged at evaluation steps.
    log_every: int (every n steps), "powers_of_two", or a callable `step -> bool`; the final
      step is always logged.
    output_dir: where history.csv, checkpoints/ and tensorboard/ go; a run with the same
      output_dir resumes from its last checkpoint.
    checkpoint_every: steps between checkpoints; else every `checkpoint_seconds`.
    checkpoint_seconds: seconds between checkpoints when checkpoint_every is None.
    max_to_keep: checkpoints kept.
    steps_per_call: optimizer steps per compiled call (the loop runs inside XLA); calls end at
      log, evaluation and checkpoint steps.
    strategy: a `tf.distribute.Strategy`; the model's variables must have been created under its
      scope. Each step splits the global batch over the replicas and averages gradients.
    jit_compile: compile the training loop with XLA: True, False, or "auto" (XLA when a GPU is
      visible; on CPUs TensorFlow's graph kernels are faster, see benchmarks/).
    seed: seed of every random draw (batches, samples, dynamic binarization).
    progress: show a tqdm progress bar (default: when stderr is a terminal).

  Returns:
    pandas DataFrame with one row per logged step: step, wall_time (seconds of training), loss
    (the negative batch-mean objective), each term's batch mean, scheduled values, and eval
    metrics at evaluation steps. Also written to output_dir/history.csv.

  Raises:
    FloatingPointError: on a NaN or Inf loss or term, naming the step and the term.
  """
  objective_kwargs = dict(objective_kwargs or {})
  schedules = {k: v for k, v in objective_kwargs.items() if callable(v)}
  static_kwargs = {k: v for k, v in objective_kwargs.items() if k not in schedules}
  if steps_per_call < 1:
    raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}.")
  examples = _as_examples(train_data)
  if examples is not None:
    if batch_size is None or batch_size < 1:
      raise ValueError("in-memory train_data needs batch_size >= 1.")
    steps_per_epoch = math.ceil(int(examples.shape[0]) / batch_size)
    dataset_iterator = None
  else:
    cardinality = int(train_data.cardinality())
    steps_per_epoch = cardinality if cardinality > 0 else None
    dataset_iterator = iter(train_data.repeat())
  if examples is not None and batch_size % strategy_replicas(strategy) != 0:
    raise ValueError(
        f"batch_size {batch_size} must be divisible by the {strategy_replicas(strategy)} replicas."
    )
  if (steps is None) == (epochs is None):
    raise ValueError(f"give exactly one of steps or epochs, got steps={steps}, epochs={epochs}.")
  if steps is None:
    if steps_per_epoch is None:
      raise ValueError("epochs needs a Dataset of known, finite cardinality; give steps instead.")
    steps = int(round(epochs * steps_per_epoch))
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}.")
  should_log = _log_predicate(log_every, steps)
  if learning_rate is not None and not isinstance(getattr(optimizer, "learning_rate", None), tf.Variable):
    raise ValueError(
        "a learning_rate schedule needs an optimizer whose learning_rate is a tf.Variable, e.g. "
        f"snt.optimizers.Adam(tf.Variable(1e-3)); got {type(getattr(optimizer, 'learning_rate', None)).__name__}."
    )
  strategy = strategy or tf.distribute.get_strategy()
  base_seed = tf.constant([seed, 0x5EED], tf.int64)

  def step_seed(step, stream):
    """A stateless int32 [2] seed for (step, stream): the same draw on every run and resume."""
    return tf.cast(tf.random.experimental.stateless_fold_in(base_seed, step * 4 + stream), tf.int32)

  def draw_batch(step, batches, index):
    if examples is None:
      return batches[index]
    data_seed = step_seed(step, 0)
    rows = tf.random.stateless_uniform(
        [batch_size], data_seed, maxval=int(examples.shape[0]), dtype=tf.int64
    )
    return tf.gather(examples, rows)

  def objective_at(x, step, sample_seed):
    kwargs = dict(static_kwargs)
    scheduled = {k: tf.cast(fn(tf.cast(step, tf.float32)), tf.float32) for k, fn in schedules.items()}
    kwargs.update(scheduled)
    value, terms = _split_objective(objective(model, x, seed=sample_seed, **kwargs))
    return value, terms, scheduled

  # Build the model's variables and learn the objective's terms with one eager call.
  first = _batch_images(next(dataset_iterator)) if examples is None else examples[: batch_size or 1]
  if preprocess is not None:
    first = preprocess(first, tf.constant([0, 0], tf.int32))
  with strategy.scope():
    value, terms, scheduled = objective_at(first, tf.constant(1, tf.int64), tf.constant([0, 0]))
  term_names = ["loss"] + [f"{k}" for k in terms] + list(scheduled)
  if learning_rate is not None:
    term_names.append("learning_rate")
  variables = model.trainable_variables
  if hasattr(optimizer, "_initialize"):  # Sonnet optimizers create their slots lazily.
    with strategy.scope():
      optimizer._initialize(variables)
  step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

  def replica_step(x, step, replica_id=0):
    sample_seed = step_seed(step, 1)
    if strategy.num_replicas_in_sync > 1:
      # Distinct noise on each replica's slice of the batch.
      sample_seed = tf.random.experimental.stateless_fold_in(sample_seed, replica_id)
    with tf.GradientTape() as tape:
      value, terms, scheduled = objective_at(x, step, sample_seed)
      loss = -tf.reduce_mean(value)
    grads = tape.gradient(loss, variables)
    metrics = [loss] + [tf.reduce_mean(t) for t in terms.values()] + list(scheduled.values())
    replica = tf.distribute.get_replica_context()
    if replica is not None and strategy.num_replicas_in_sync > 1:
      grads = replica.all_reduce(tf.distribute.ReduceOp.MEAN, grads)
      metrics = replica.all_reduce(tf.distribute.ReduceOp.MEAN, metrics)
    checked = metrics + [g for g in grads if g is not None]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in checked])
    return grads, metrics, finite

  def replica_slice_step(x, step):
    replica = tf.distribute.get_replica_context()
    size = tf.shape(x)[0] // strategy.num_replicas_in_sync
    start = replica.replica_id_in_sync_group * size
    return replica_step(x[start : start + size], step, replica.replica_id_in_sync_group)

  def one_step(step, batches, index):
    x = draw_batch(step, batches, index)
    if preprocess is not None:  # on the global batch, before any split over replicas
      x = preprocess(x, step_seed(step, 2))
    if strategy.num_replicas_in_sync > 1:
      # Each replica takes its slice of the global batch; gradients and metrics are all-reduced
      # (means), so the first replica's copy is the global value, applied once to the mirrored
      # variables from the cross-replica context.
      per_replica = strategy.run(replica_slice_step, args=(x, step))
      grads, metrics, finite = tf.nest.map_structure(
          lambda v: strategy.experimental_local_results(v)[0], per_replica
      )
    else:
      grads, metrics, finite = replica_step(x, step)

    if learning_rate is not None:
      rate = tf.cast(learning_rate(tf.cast(step, tf.float32)), optimizer.learning_rate.dtype)
      optimizer.learning_rate.assign(rate)
      metrics = list(metrics) + [tf.cast(rate, tf.float32)]

    def apply():
      optimizer.apply(grads, variables)
      return tf.constant(True)

    tf.cond(finite, apply, lambda: tf.constant(False))
    return metrics, finite

  def train_loop(num_steps, batches):
    def cond(i, metrics, finite):
      return tf.logical_and(i < num_steps, finite)

    def body(i, metrics, finite):
      step = step_var + 1
      new_metrics, finite = one_step(step, batches, i)
      step_var.assign_add(tf.cast(finite, tf.int64))
      return i + 1, new_metrics, finite

    zeros = [tf.constant(0.0)] * len(term_names)
    _, metrics, finite = tf.while_loop(cond, body, (tf.constant(0), zeros, tf.constant(True)))
    return metrics, finite

  jit_compile = xla.resolve(jit_compile)
  compiled_loop = tf.function(train_loop, jit_compile=jit_compile and strategy.num_replicas_in_sync == 1)

  evaluate = _make_evaluator(model, objective, static_kwargs, schedules, eval_data, jit_compile, base_seed)

  # Checkpointing and resumption.
  out = pathlib.Path(output_dir) if output_dir else None
  history = _History(out / "history.csv" if out else None)
  manager = None
  if out is not None:
    out.mkdir(parents=True, exist_ok=True)
    tracked = dict(model=model, optimizer=optimizer, step=step_var)
    if dataset_iterator is not None:
      tracked["data"] = dataset_iterator
    checkpoint = tf.train.Checkpoint(**tracked)
    manager = tf.train.CheckpointManager(checkpoint, out / "checkpoints", max_to_keep=max_to_keep)
    if manager.latest_checkpoint:
      checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
      history.restore(int(step_var.numpy()))
  writer = tf.summary.create_file_writer(str(out / "tensorboard")) if out else None

  start_step = int(step_var.numpy())
  wall_offset = history.wall_time
  started = time.perf_counter()
  last_checkpoint_time = started
  bar = _progress_bar(progress, steps, start_step)
  step = start_step
  while step < steps:
    boundary = _next_boundary(step, steps, steps_per_call, should_log, eval_every, checkpoint_every)
    num = boundary - step
    batches = (
        tf.stack([_batch_images(next(dataset_iterator)) for _ in range(num)])
        if examples is None
        else tf.zeros([0])
    )
    metrics, finite = compiled_loop(tf.constant(num), batches)
    if not bool(finite):
      bad_step = int(step_var.numpy()) + 1
      values = dict(zip(term_names, (float(m) for m in metrics)))
      bad = [k for k, v in values.items() if not math.isfinite(v)] or ["gradient"]
      raise FloatingPointError(
          f"non-finite {', '.join(bad)} at step {bad_step} ({values}); training stopped, the "
          f"update of step {bad_step} was not applied and no checkpoint was written after it."
      )
    step = boundary
    if bar is not None:
      bar.update(num)
    wall_time = wall_offset + time.perf_counter() - started
    is_eval = bool(eval_every) and (step % eval_every == 0 or step == steps)
    if should_log(step) or step == steps or is_eval:
      row = {"step": step, "wall_time": wall_time}
      row.update({k: float(v) for k, v in zip(term_names, metrics)})
      if is_eval:
        row.update(evaluate(step))
        if eval_fn is not None:
          row.update({k: float(v) for k, v in eval_fn(model).items()})
      history.append(row)
      _write_summaries(writer, row)
      if bar is not None:
        bar.set_postfix(loss=f"{row['loss']:.2f}")
    due = (
        step % checkpoint_every == 0
        if checkpoint_every
        else time.perf_counter() - last_checkpoint_time >= checkpoint_seconds
    )
    if manager is not None and (due or step == steps):
      history.write()
      manager.save(checkpoint_number=step)
      last_checkpoint_time = time.perf_counter()
  if bar is not None:
    bar.close()
  if manager is not None and not history.path.exists():
    history.write()
  return history.frame()


def strategy_replicas(strategy: Optional[tf.distribute.Strategy]) -> int:
  return strategy.num_replicas_in_sync if strategy is not None else 1


def _next_boundary(step, steps, steps_per_call, should_log, eval_every, checkpoint_every) -> int:
  """The first step after `step` at which a call must return (log, eval, checkpoint or the end)."""
  limit = min(steps, step + steps_per_call)
  for candidate in range(step + 1, limit):
    if (
        should_log(candidate)
        or (eval_every and candidate % eval_every == 0)
        or (checkpoint_every and candidate % checkpoint_every == 0)
    ):
      return candidate
  return limit


def _make_evaluator(model, objective, static_kwargs, schedules, eval_data, jit_compile, base_seed):
  if eval_data is None:
    return lambda step: {}
  examples = _as_examples(eval_data)
  batches = (
      [examples[i : i + 500] for i in range(0, int(examples.shape[0]), 500)]
      if examples is not None
      else None
  )

  @tf.function(jit_compile=jit_compile, reduce_retracing=True)
  def batch_sum(x, step, index):
    kwargs = dict(static_kwargs)
    kwargs.update({k: tf.cast(fn(tf.cast(step, tf.float32)), tf.float32) for k, fn in schedules.items()})
    seed = tf.cast(tf.random.experimental.stateless_fold_in(base_seed, -1 - index), tf.int32)
    value, _ = _split_objective(objective(model, x, seed=seed, **kwargs))
    return tf.reduce_sum(value), tf.cast(tf.shape(value)[0], tf.float32)

  def evaluate(step):
    total, count = 0.0, 0.0
    source = batches if batches is not None else (_batch_images(b) for b in eval_data)
    for index, x in enumerate(source):
      s, n = batch_sum(x, tf.constant(step, tf.int64), tf.constant(index, tf.int64))
      total, count = total + float(s), count + float(n)
    return {"eval_objective": total / max(count, 1.0)}

  return evaluate


def _write_summaries(writer, row) -> None:
  if writer is None:
    return
  with writer.as_default(step=int(row["step"])):
    for key, value in row.items():
      if key != "step":
        tf.summary.scalar(key, value)


def _progress_bar(progress, steps, start_step):
  if progress is None:
    progress = sys.stderr.isatty()
  if not progress:
    return None
  from tqdm.auto import tqdm

  return tqdm(total=steps, initial=start_step, unit="step", dynamic_ncols=True)
