"""`fit`: a compiled, resumable training loop for any tfpvi objective.

`fit` checks its arguments and drives three parts, each in its own module:

- `tfpvi.train.data.TrainData`: arrays, nests of arrays (labelled data) or `tf.data` Datasets,
  as batches of one structure;
- `tfpvi.train.step.TrainingLoop`: the compiled steps (stateless seeds, schedules, the NaN
  stop before the update, sums of the logged terms, `tf.distribute`);
- `tfpvi.train.run_folder.RunFolder`: history.csv, checkpoints, the run record run.json, and the
  checks before a resume.

Design:
- Randomness is stateless: step s uses seeds folded from (seed, s), so the RNG state is the step
  counter and a resumed run draws exactly what an uninterrupted one would.
- Several steps run inside one compiled `tf.while_loop` (`steps_per_call`); in-memory data stay
  on the device and batches are gathered inside the loop (indices drawn with replacement).
- Checkpoints are written after history.csv (atomically), so a run killed at any moment resumes
  from its last checkpoint and history.csv ends with every logged step once, in order.
- A non-finite loss or term stops training with an error naming the step and the term; that
  step's update is not applied and no checkpoint is written after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import numbers
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Mapping, NamedTuple, Optional, Union

import pandas as pd
import sonnet as snt
import tensorflow as tf

from tfpvi import precision as precision_lib
from tfpvi import run_record, xla
from tfpvi.train.data import DEFAULT_INPUTS, TrainData
from tfpvi.train.run_folder import (
  FolderWriteError,
  RunFolder,
  describe_callable,
  jsonable,
  optimizer_settings,
  schedule_fingerprint,
)
from tfpvi.train.step import Schedules, TrainingLoop

__all__ = ["Checkpoints", "Evaluation", "Logging", "Loop", "fit", "linear_warmup", "powers_of_two"]

LogSchedule = Union[int, str, Callable[[int], bool]]


def powers_of_two(step: int) -> bool:
  """True at steps 1, 2, 4, 8, ... (the logging of the Kingma & Welling revisited blog post)."""
  return step > 0 and step & (step - 1) == 0


def linear_warmup(steps: float, start: float = 0.0, end: float = 1.0) -> Callable[[tf.Tensor], tf.Tensor]:
  """A schedule rising linearly from `start` at step 0 to `end` at `steps`, then constant.

  For KL warm-up: `objective_kwargs=dict(beta=tfpvi.train.linear_warmup(10000))`. Written with
  TensorFlow ops, so it runs inside the compiled loop (any Python callable also works; see `fit`).

  Examples:
    >>> schedule = linear_warmup(100, start=0.5)
    >>> [round(float(schedule(s)), 3) for s in (0.0, 50.0, 100.0, 1000.0)]
    [0.5, 0.75, 1.0, 1.0]
  """
  if steps <= 0:
    raise ValueError(f"linear_warmup needs steps > 0, got {steps}.")

  def schedule(step):
    fraction = tf.clip_by_value(tf.cast(step, tf.float32) / float(steps), 0.0, 1.0)
    return start + (end - start) * fraction

  return schedule


def _log_predicate(log_every: Optional[LogSchedule], total_steps: int) -> Callable[[int], bool]:
  if log_every is None:
    log_every = max(1, total_steps // 200)
  if log_every == "powers_of_two":
    return powers_of_two
  if callable(log_every):
    return log_every
  if isinstance(log_every, int) and not isinstance(log_every, bool) and log_every >= 1:
    return lambda step: step % log_every == 0
  raise ValueError(f"Logging.every must be an int >= 1, 'powers_of_two' or a callable, got {log_every!r}.")


def _check_arguments(objective, optimizer, steps_per_call, learning_rate, steps, epochs) -> None:
  if objective is None or not callable(objective):
    raise TypeError(
      f"objective must be a callable objective(model, batch, *, seed, **kwargs), e.g. tfpvi.objectives.elbo; "
      f"got {type(objective).__name__}."
    )
  if not isinstance(optimizer, snt.Optimizer) and not hasattr(optimizer, "apply"):
    raise TypeError(f"optimizer must be a Sonnet optimizer, e.g. snt.optimizers.Adam(1e-3); got {optimizer!r}.")
  rate = getattr(optimizer, "learning_rate", None)
  if callable(rate) and not isinstance(rate, (tf.Variable, tf.Tensor)):
    raise TypeError(
      f"the optimizer's learning_rate is a {type(rate).__name__} (a schedule); Sonnet optimizers take a float or a "
      "tf.Variable. Give the schedule to fit instead: fit(..., optimizer=snt.optimizers.Adam(tf.Variable(1e-3)), "
      "loop=tfpvi.train.Loop(learning_rate=schedule)), where schedule(step) returns the rate (a Keras "
      "LearningRateSchedule works)."
    )
  if isinstance(steps_per_call, bool) or not isinstance(steps_per_call, int) or steps_per_call < 1:
    raise ValueError(f"steps_per_call must be an int >= 1, got {steps_per_call!r}.")
  if learning_rate is not None and not isinstance(getattr(optimizer, "learning_rate", None), tf.Variable):
    raise ValueError(
      "a learning_rate schedule needs an optimizer whose learning_rate is a tf.Variable, e.g. "
      f"snt.optimizers.Adam(tf.Variable(1e-3)); got {type(getattr(optimizer, 'learning_rate', None)).__name__}."
    )
  if (steps is None) == (epochs is None):
    raise ValueError(f"give exactly one of steps or epochs, got steps={steps}, epochs={epochs}.")


def _total_steps(steps, epochs, data: TrainData) -> int:
  if steps is None:
    if data.steps_per_epoch is None:
      raise ValueError("epochs needs a Dataset of known, finite cardinality; give steps instead.")
    steps = int(round(epochs * data.steps_per_epoch))
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise ValueError(f"steps must be an int >= 1, got {steps!r}.")
  return int(steps)


@dataclasses.dataclass(frozen=True)
class Logging:
  """What `fit` logs: history rows and the progress bar.

  Attributes:
    every: int (every n steps), "powers_of_two", or a callable `step -> bool`; the final step is
      always logged. None: about 200 rows in all.
    progress: show a tqdm progress bar (None: when stderr is a terminal).
  """

  every: Optional[LogSchedule] = None
  progress: Optional[bool] = None


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What `fit` evaluates while it trains, logged in the history at evaluation steps.

  Attributes:
    data: data (same rules as train_data, in-memory in slices of 500 rows, a Dataset in one pass)
      on which the objective is evaluated (logged as eval_objective); None for `metrics` only.
    every: steps between evaluations (also at the last step; None: at the last step only).
    metrics: `metrics(model) -> {name: float}`, extra metrics logged at evaluation steps.
  """

  data: Any = None
  every: Optional[int] = None
  metrics: Optional[Callable[[Any], Mapping[str, float]]] = None


@dataclasses.dataclass(frozen=True)
class Checkpoints:
  """How `fit` checkpoints into its output_dir, and whether it may resume a folder that has some.

  Attributes:
    every: steps between checkpoints; else every `seconds`.
    seconds: seconds between checkpoints when `every` is None.
    max_to_keep: checkpoints kept.
    resume: with an output_dir holding checkpoints: True continues it when its run.json records
      the same model and settings (objective and its kwargs, optimizer class and hyperparameters,
      batch size, preprocess, seed, data layout) and refuses otherwise, naming what differs;
      "force" continues with the new settings (recorded under "changes" in run.json); False
      refuses to touch a folder with checkpoints. Variables of other shapes are always refused.
  """

  every: Optional[int] = None
  seconds: float = 60.0
  max_to_keep: int = 2
  resume: Union[bool, str] = True


@dataclasses.dataclass(frozen=True)
class Loop:
  """How each training step is computed and run.

  Attributes:
    steps_per_call: optimizer steps per compiled call (the loop runs inside the graph or XLA);
      calls end at log, evaluation and checkpoint steps.
    jit_compile: compile the training loop with XLA: True, False, or "auto": XLA when a GPU is
      visible; on a CPU, for in-memory data and runs of at least 200 steps, the faster of the two,
      timed on real steps before training (the state is put back, so nothing changes but the
      speed); else the graph. The choice and its timings are recorded in run.json ("run":
      "jit_compile_choice"), and a resumed run keeps it. XLA draws other (equally distributed)
      random numbers than the graph for one seed, so a run that must repeat bit for bit on another
      machine should say True or False.
    strategy: a `tf.distribute.Strategy`; the model's variables must have been created under its
      scope. Each step splits the global batch over the replicas and averages gradients.
    learning_rate: a schedule `step -> learning rate` (the rules of `fit`'s objective_kwargs
      schedules), assigned before every step to the optimizer's `learning_rate`, which must then
      be a `tf.Variable` (e.g. `snt.optimizers.Adam(tf.Variable(1e-3))`); logged as learning_rate.
    inputs: when a batch is a dict holding this key, the objective (and preprocess) receives that
      entry alone: the default "image" gives VAE objectives the images of `tfpvi.data` datasets of
      {"image", "label"} dicts. None passes whole dicts; tuples are always passed whole.
    precision: "float32", or "mixed_bfloat16": the networks' layers compute in bfloat16 while the
      log-probabilities, bounds, gradients as applied, optimizer state and checkpoints stay
      float32 (`tfpvi.precision`). Recorded in run.json ("run": "precision").
  """

  steps_per_call: int = 1
  jit_compile: xla.JitCompile = "auto"
  strategy: Optional[tf.distribute.Strategy] = None
  learning_rate: Optional[Callable[[tf.Tensor], tf.Tensor]] = None
  inputs: Optional[str] = DEFAULT_INPUTS
  precision: precision_lib.Precision = "float32"

  def __post_init__(self):
    precision_lib.check(self.precision, "Loop.precision")


def _check_group(value, kind, name):
  if value is None:
    return kind()
  if not isinstance(value, kind):
    raise TypeError(f"{name} must be a tfpvi.train.{kind.__name__}(...), got {type(value).__name__} {value!r}.")
  return value


# fit's options that moved into groups -> how to spell them now (a TypeError says so).
_MOVED_OPTIONS = {
  "log_every": "logging=tfpvi.train.Logging(every=...)",
  "progress": "logging=tfpvi.train.Logging(progress=...)",
  "eval_data": "evaluation=tfpvi.train.Evaluation(data=...)",
  "eval_every": "evaluation=tfpvi.train.Evaluation(every=...)",
  "eval_fn": "evaluation=tfpvi.train.Evaluation(metrics=...)",
  "checkpoint_every": "checkpoints=tfpvi.train.Checkpoints(every=...)",
  "checkpoint_seconds": "checkpoints=tfpvi.train.Checkpoints(seconds=...)",
  "max_to_keep": "checkpoints=tfpvi.train.Checkpoints(max_to_keep=...)",
  "resume": "checkpoints=tfpvi.train.Checkpoints(resume=...)",
  "steps_per_call": "loop=tfpvi.train.Loop(steps_per_call=...)",
  "jit_compile": "loop=tfpvi.train.Loop(jit_compile=...)",
  "strategy": "loop=tfpvi.train.Loop(strategy=...)",
  "learning_rate": "loop=tfpvi.train.Loop(learning_rate=...)",
  "inputs": "loop=tfpvi.train.Loop(inputs=...)",
}


def _explain_moved_options(fit_fn):
  """Makes a call with one of fit's former keywords fail with the new spelling, not only "unexpected keyword"."""

  @functools.wraps(fit_fn)
  def checked(*args, **kwargs):
    moved = [name for name in kwargs if name in _MOVED_OPTIONS]
    if moved:
      raise TypeError(
        f"fit() takes {', '.join(moved)} in an option group now: "
        + "; ".join(f"{name} -> {_MOVED_OPTIONS[name]}" for name in moved)
        + "."
      )
    return fit_fn(*args, **kwargs)

  return checked


@_explain_moved_options
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
  preprocess: Optional[Callable[[Any, tf.Tensor], Any]] = None,
  output_dir: Optional[str] = None,
  seed: int = 0,
  logging: Optional[Logging] = None,
  evaluation: Optional[Evaluation] = None,
  checkpoints: Optional[Checkpoints] = None,
  loop: Optional[Loop] = None,
) -> pd.DataFrame:
  """Trains `model` by maximizing the batch mean of `objective`, and returns the history.

  Args:
    model: a `tfpvi.VAE`, or any `snt.Module` the objective accepts (e.g. a classifier); every
      variable the objective trains must be held by it (`model.trainable_variables`).
    objective: `objective(model, batch, *, seed, **objective_kwargs)` returning per-example values
      [B] (nats; higher is better) or a dict with "objective" and other [B] terms, e.g.
      `tfpvi.objectives.iwae` or `tfpvi.objectives.elbo` with `return_terms=True`. `batch` has
      the structure of one element of train_data (see `Loop.inputs`).
    train_data: in-memory examples: an array or Tensor [N, ...], or a tuple or dict nest of arrays
      sharing the leading dimension N (e.g. `(images, labels)`), kept on the device and sampled
      in batches of `batch_size` (rows drawn with replacement); or a `tf.data.Dataset` of batches
      (Tensors or nests), repeated as needed. A batch that is one Tensor is float32; in a nest,
      floating leaves become float32 and integer leaves (labels) keep their dtype.
    optimizer: a Sonnet optimizer, e.g. `snt.optimizers.Adam(1e-3)`.
    steps: number of optimizer steps in total (a resumed run continues up to it); or give `epochs`.
    epochs: passes over the data (in-memory: N / batch_size steps each; Dataset: its cardinality).
    batch_size: batch size for in-memory data (at most N).
    objective_kwargs: keyword arguments for the objective; a callable value is a schedule
      `step -> value` evaluated at every step (step is a float, 1 at the first step), e.g. KL
      warm-up `beta=lambda s: min(1., s / 1e4)` or `beta=tfpvi.train.linear_warmup(1e4)`.
      Schedules written with TensorFlow ops run inside the compiled loop; any other Python
      callable is evaluated on the host for each step and fed in. Scheduled values are logged.
    preprocess: `preprocess(batch, seed) -> batch` applied to each batch inside the compiled step,
      with the batch's structure, e.g. `tfpvi.data.binarize_dynamic` on images.
    output_dir: the run folder (`tfpvi.train.run_folder`): history.csv, checkpoints/, tensorboard/ and
      run.json, the record of the model (class paths and constructor arguments, `tfpvi.config`;
      a model of the user's own modules describes itself by `@tfpvi.config.configurable` or a
      `get_config()`, else the record says why it cannot) and of what it was trained with. A run
      with an output_dir that holds checkpoints resumes from the last one; see `Checkpoints`.
    seed: seed of every random draw (batches, samples, dynamic binarization) and of the model's
      initial values when fit creates them (it seeds TensorFlow's global generator before the first
      forward pass; a model whose variables exist already keeps them). Draws are stateless
      (seed, step), so a run repeats exactly and a resumed run continues as an uninterrupted one
      would. XLA implements the stateless generators with another algorithm: the same seed gives
      other (equally distributed) numbers with jit_compile=True than without.
    logging: a `Logging`: history rows (`every`) and the progress bar.
    evaluation: an `Evaluation`: data to evaluate the objective on, and metrics, every n steps.
    checkpoints: a `Checkpoints`: how often to checkpoint, how many to keep, and `resume`.
    loop: a `Loop`: steps per compiled call, XLA, a distribution strategy, a learning-rate
      schedule, and which entry of dict batches the objective sees.
  Returns:
    pandas DataFrame with one row per logged step: step, wall_time (seconds of training), loss
    (the negative batch-mean objective) and each term's batch mean, each averaged over the steps
    since the previous row (the interval mean, so curves are not one minibatch's noise);
    scheduled values and learning_rate at the row's step; eval metrics at evaluation steps.
    Also written to output_dir/history.csv. A run whose output_dir already reached `steps`
    returns the folder's history without training.

  Raises:
    FloatingPointError: on a NaN or Inf loss or term, naming the step and the term.
    ValueError: on bad arguments or data (no examples, fewer than batch_size, ...), on a folder
      trained with other settings or further than `steps` (see `Checkpoints.resume`).
    TypeError: on an objective that is not callable.

  Examples:
    Twenty IWAE steps on random binary images, logged every ten.

    >>> import functools, numpy as np, sonnet as snt, tfpvi
    >>> model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([16], 2), tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]),
    ...                   tfpvi.standard_normal_prior(2))
    >>> images = (np.random.default_rng(0).random([64, 4, 4, 1]) > 0.5).astype("float32")
    >>> history = fit(model, functools.partial(tfpvi.objectives.iwae, num_samples=5, return_terms=True), images,
    ...               optimizer=snt.optimizers.Adam(1e-2), steps=20, batch_size=16,
    ...               logging=Logging(every=10, progress=False))
    >>> list(history["step"]), sorted(c for c in history.columns if c not in ("step", "wall_time"))
    ([10, 20], ['kl', 'log_likelihood', 'loss'])
  """
  logging = _check_group(logging, Logging, "logging")
  evaluation = _check_group(evaluation, Evaluation, "evaluation")
  checkpoints = _check_group(checkpoints, Checkpoints, "checkpoints")
  loop_options = _check_group(loop, Loop, "loop")
  learning_rate, inputs = loop_options.learning_rate, loop_options.inputs
  steps_per_call = loop_options.steps_per_call
  _check_arguments(objective, optimizer, steps_per_call, learning_rate, steps, epochs)
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**62:
    raise ValueError(f"seed must be an int in [0, 2**62), got {seed!r}.")
  seed = int(seed)
  data = TrainData(train_data, batch_size=batch_size, inputs=inputs)
  strategy_given = loop_options.strategy is not None
  strategy = loop_options.strategy or tf.distribute.get_strategy()
  if data.in_memory and data.batch_size % strategy.num_replicas_in_sync != 0:
    raise ValueError(f"batch_size {data.batch_size} must be divisible by the {strategy.num_replicas_in_sync} replicas.")
  steps = _total_steps(steps, epochs, data)
  should_log = _log_predicate(logging.every, steps)
  evaluates = evaluation.data is not None or evaluation.metrics is not None
  eval_every = (evaluation.every or steps) if evaluates else None
  objective_kwargs = dict(objective_kwargs or {})
  schedules = {k: v for k, v in objective_kwargs.items() if callable(v)}
  training = TrainingLoop(
    model,
    objective,
    optimizer,
    data,
    static_kwargs={k: v for k, v in objective_kwargs.items() if k not in schedules},
    schedules=Schedules(schedules),
    learning_rate=Schedules({"learning_rate": learning_rate}) if learning_rate is not None else None,
    preprocess=preprocess,
    strategy=strategy,
    seed=seed,
    precision=loop_options.precision,
  )
  training.build()
  jit, jit_choice = _choose_jit(loop_options.jit_compile, training, data, strategy, steps, steps_per_call, output_dir)
  training.compile(jit, steps_per_call)
  evaluate = _make_evaluator(training, evaluation.data, inputs, jit)

  folder = RunFolder(output_dir, max_to_keep=checkpoints.max_to_keep) if output_dir else None
  try:
    start_step = 0
    if folder is not None:
      tracked = dict(optimizer=optimizer, **training.tracked())
      if data.iterator is not None:
        tracked["data"] = data.iterator
      settings = _settings(objective, objective_kwargs, optimizer, learning_rate, data, preprocess, seed, inputs)
      info = {
        "steps": steps,
        "jit_compile": jit,
        "jit_compile_choice": jit_choice,
        "precision": loop_options.precision,
        "steps_per_call": steps_per_call,
        "learning_rate": describe_callable(learning_rate) if learning_rate is not None else None,
        "replicas": strategy.num_replicas_in_sync if strategy_given else 1,
      }
      start_step = folder.open(
        model=model, tracked=tracked, settings=settings, info=info, resume=checkpoints.resume, steps=steps
      )
    return _drive(
      training,
      data,
      folder,
      _Plan(steps, start_step, should_log, steps_per_call, eval_every, checkpoints.every, checkpoints.seconds),
      evaluate=evaluate,
      eval_fn=evaluation.metrics,
      progress=logging.progress,
    )
  finally:
    if folder is not None:
      folder.close()  # the next writer may open the folder


# A measured choice of jit_compile="auto" is made once per process for each (objective, variable
# shapes, batch, steps_per_call): an experiment training several models of one shape measures once.
_MEASURED: dict = {}
MEASURE_MIN_STEPS = 200  # shorter runs are not worth two compilations: the rule decides
_MEASURE_STEPS = 20  # steps timed for each candidate


def _choose_jit(requested, training, data, strategy, steps, steps_per_call, output_dir) -> tuple[bool, dict]:
  """jit_compile for the loop, and how it was chosen (recorded in run.json's "run" section).

  An explicit True or False is used as given. "auto" reuses the choice recorded in output_dir's
  run.json (so a resumed run draws exactly what it drew before: XLA's stateless generators give
  other numbers; only a first leg too short to be measured, such as an experiment's timing run,
  is decided anew once the run is long enough), else XLA where a GPU is visible, else, for
  in-memory data and runs of at least `MEASURE_MIN_STEPS` steps, the faster of the graph and the
  XLA loop, timed on real steps (`TrainingLoop.measure`, which restores the state it changed);
  else the graph loop.
  """
  if requested != "auto":
    return xla.resolve(requested), {"requested": requested}
  recorded = run_record.read(output_dir).get("run", {}) if output_dir and run_record.exists(output_dir) else {}
  previous = recorded.get("jit_compile_choice") or {}
  too_short_before = previous.get("by") == "rule" and str(previous.get("reason", "")).startswith("fewer than")
  if previous.get("requested") == "auto" and isinstance(recorded.get("jit_compile"), bool):
    if not (too_short_before and steps >= MEASURE_MIN_STEPS):  # a short first leg (e.g. a timing run) decides anew
      return recorded["jit_compile"], {**previous, "reused": "recorded in run.json when the run started"}
  if xla.resolve("auto"):
    return True, {"requested": "auto", "by": "rule", "reason": "a GPU is visible"}
  if strategy.num_replicas_in_sync > 1:
    return False, {"requested": "auto", "by": "rule", "reason": "several replicas (the loop is not compiled with XLA)"}
  if not data.in_memory:
    return False, {"requested": "auto", "by": "rule", "reason": "a tf.data Dataset (its iterator cannot be rewound)"}
  if steps < MEASURE_MIN_STEPS:
    return False, {"requested": "auto", "by": "rule", "reason": f"fewer than {MEASURE_MIN_STEPS} steps: not measured"}
  key = (
    describe_callable(training.objective),
    tuple(tuple(v.shape.as_list()) for v in training.variables),
    data.batch_size,
    steps_per_call,
    training.precision,
  )
  if key not in _MEASURED:
    seconds = training.measure(steps_per_call, _MEASURE_STEPS)
    _MEASURED[key] = seconds
    print(
      f"tfpvi: jit_compile='auto' timed the training loop: graph {seconds['graph'] * 1e3:.2f} ms/step, XLA "
      f"{seconds['xla'] * 1e3:.2f} ms/step; using {'XLA' if seconds['xla'] < seconds['graph'] else 'the graph'}.",
      file=sys.stderr,
    )
  seconds = _MEASURED[key]
  return seconds["xla"] < seconds["graph"], {
    "requested": "auto",
    "by": "measurement",
    "seconds_per_step": {name: round(value, 6) for name, value in seconds.items()},
  }


def _settings(objective, objective_kwargs, optimizer, learning_rate, data, preprocess, seed, inputs) -> dict:
  """What a resumed run must share with the folder's record (`tfpvi.train.run_folder`)."""
  return {
    "objective": describe_callable(objective),
    "objective_kwargs": {
      k: schedule_fingerprint(v) if callable(v) else jsonable(v) for k, v in objective_kwargs.items()
    },
    "optimizer": optimizer_settings(optimizer, with_learning_rate=learning_rate is None),
    "batch_size": data.batch_size if data.in_memory else None,
    "preprocess": describe_callable(preprocess) if preprocess is not None else None,
    "seed": seed,
    "inputs": inputs,
    "data": data.record(),
  }


class _Plan(NamedTuple):
  """Where a run starts and ends, and at which steps a compiled call must return."""

  steps: int
  start_step: int
  should_log: Callable[[int], bool]
  steps_per_call: int
  eval_every: Optional[int]
  checkpoint_every: Optional[int]
  checkpoint_seconds: float

  def next_boundary(self, step: int) -> int:
    """The first step after `step` at which a call must return (log, eval, checkpoint or the end)."""
    limit = min(self.steps, step + self.steps_per_call)
    for candidate in range(step + 1, limit):
      if (
        self.should_log(candidate)
        or (self.eval_every and candidate % self.eval_every == 0)
        or (self.checkpoint_every and candidate % self.checkpoint_every == 0)
      ):
        return candidate
    return limit


def _drive(
  loop: TrainingLoop, data: TrainData, folder: Optional[RunFolder], plan: _Plan, *, evaluate, eval_fn, progress
):
  """The loop driver: compiled calls between boundaries, then log, evaluate and checkpoint."""
  history = folder.history if folder is not None else _MemoryHistory()
  wall_offset = history.wall_time
  started = time.perf_counter()
  bar = _progress_bar(progress, plan.steps, plan.start_step)
  with _terminate_as_interrupt() as terminated:
    try:
      _run_steps(loop, data, folder, history, bar, plan, evaluate, eval_fn, wall_offset, started)
    except FloatingPointError:
      raise  # a non-finite step: by design, no checkpoint after it
    except (KeyboardInterrupt, Exception) as error:
      if bar is not None:
        bar.close()
      _save_on_the_way_out(loop, folder, error, terminated)
      if terminated:
        _exit_by_signal(signal.SIGTERM)
      raise
  if bar is not None:
    bar.close()
  if folder is not None and not history.path.exists():
    history.write()
  return history.frame()


def _run_steps(loop, data, folder, history, bar, plan: _Plan, evaluate, eval_fn, wall_offset, started) -> int:
  """Compiled calls between boundaries, then log, evaluate and checkpoint; returns the step reached."""
  steps, step, eval_every = plan.steps, plan.start_step, plan.eval_every
  last_checkpoint_time = started
  while step < steps:
    boundary = plan.next_boundary(step)
    groups = [(None, boundary - step)] if data.in_memory else data.next_batches(boundary - step)
    for batches, num in groups:
      metrics, finite = loop.run(num, batches)
      if not finite:
        _raise_non_finite(int(loop.step.numpy()) + 1, metrics)
    if bar is not None:
      bar.update(boundary - step)
    step = boundary
    is_eval = bool(eval_every) and (step % eval_every == 0 or step == steps)
    if plan.should_log(step) or step == steps or is_eval:
      row = {"step": step, "wall_time": wall_offset + time.perf_counter() - started}
      row.update(metrics)
      row.update(loop.take_interval_means())
      if is_eval:
        row.update(evaluate(step))
        if eval_fn is not None:
          row.update({k: float(v) for k, v in eval_fn(loop.model).items()})
      if folder is None:
        history.append(row)
      else:
        folder.log(row)
      if bar is not None:
        bar.set_postfix(loss=f"{row['loss']:.2f}")
    due = (
      step % plan.checkpoint_every == 0
      if plan.checkpoint_every
      else time.perf_counter() - last_checkpoint_time >= plan.checkpoint_seconds
    )
    if folder is not None and (due or step == steps):
      folder.save(step)
      last_checkpoint_time = time.perf_counter()
  return step


@contextlib.contextmanager
def _terminate_as_interrupt():
  """Within the block, SIGTERM raises KeyboardInterrupt (so the run is saved); yields a list that is
  non-empty once SIGTERM came. Only from the main thread, and only where SIGTERM has its default action."""
  came: list = []
  installed = False
  if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

    def handler(signum, frame):
      came.append(signum)
      raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    installed = True
  try:
    yield came
  finally:
    if installed:
      signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _save_on_the_way_out(loop, folder, error, terminated) -> None:
  """Saves history and a checkpoint at the step the model is at, and says where the run stopped."""
  reached = int(loop.step.numpy())
  what = (
    "SIGTERM"
    if terminated
    else ("Ctrl-C (SIGINT)" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}")
  )
  if folder is None:
    print(f"tfpvi: training stopped by {what} at step {reached} (no output_dir: nothing saved).", file=sys.stderr)
    return
  if isinstance(error, FolderWriteError):  # saving is what failed: its message says what is kept
    return
  try:
    folder.save(reached)
  except Exception as save_error:  # noqa: BLE001 -- the original error is the one to raise
    print(f"tfpvi: training stopped by {what} at step {reached}; saving it failed too ({save_error}).", file=sys.stderr)
    return
  print(
    f"tfpvi: training stopped by {what} at step {reached}; saved history.csv and checkpoint ckpt-{reached} in "
    f"{folder.path}: run the same call (or command) again to resume.",
    file=sys.stderr,
    flush=True,
  )


def _exit_by_signal(signum) -> None:
  """Ends the process with the status of `signum` (as if it had never been caught)."""
  sys.stderr.flush()
  signal.signal(signum, signal.SIG_DFL)
  os.kill(os.getpid(), signum)


class _MemoryHistory:
  """History rows of a run without output_dir."""

  def __init__(self):
    self.rows: list[dict[str, Any]] = []
    self.wall_time = 0.0

  def append(self, row):
    self.rows.append(row)

  def frame(self) -> pd.DataFrame:
    return pd.DataFrame(self.rows)


def _raise_non_finite(bad_step: int, values: dict[str, float]) -> None:
  bad = [k for k, v in values.items() if not math.isfinite(v)] or ["gradient"]
  raise FloatingPointError(
    f"non-finite {', '.join(bad)} at step {bad_step} ({values}); training stopped, the "
    f"update of step {bad_step} was not applied and no checkpoint was written after it."
  )


def _make_evaluator(loop: TrainingLoop, eval_data, inputs, jit_compile: bool):
  """`evaluate(step) -> {"eval_objective": mean}` over eval_data (same data rules as training)."""
  if eval_data is None:
    return lambda step: {}
  data = TrainData(eval_data, batch_size=None, inputs=inputs, role="eval_data", repeat=False)

  @tf.function(jit_compile=jit_compile, reduce_retracing=True)
  def batch_sum(batch, scheduled, index):
    value, _ = loop.call_objective(batch, loop.eval_seed(index), scheduled)
    return tf.reduce_sum(value), tf.cast(tf.shape(value)[0], tf.float32)

  def evaluate(step):
    scheduled = loop.schedules.values_at(step)
    total, count = 0.0, 0.0
    for index, batch in enumerate(data.eval_batches()):
      s, n = batch_sum(batch, scheduled, tf.constant(index, tf.int64))
      total, count = total + float(s), count + float(n)
    return {"eval_objective": total / max(count, 1.0)}

  return evaluate


def _progress_bar(progress, steps, start_step):
  if progress is None:
    progress = sys.stderr.isatty()
  if not progress:
    return None
  from tqdm.auto import tqdm

  return tqdm(total=steps, initial=start_step, unit="step", dynamic_ncols=True)
