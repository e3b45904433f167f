"""Shared plumbing for experiment modules: flags from a frozen Config, output folder, results.

Every experiment declares its settings as a frozen dataclass `Config` whose fields are made with
`flag(default, "one-line description", ...)`; `start` turns them into command-line flags
(`--help` prints each description), validates every value before anything is written to disk,
and prepares the output folder:

- `--smoke` (a run of seconds on tiny data) writes into runs/smoke/NAME, replaced at each smoke
  run, unless --output_dir is given; it never writes into a folder that holds a real run's
  checkpoints.
- A real run refuses a folder that holds a smoke run's checkpoints.
- Each run records its experiment's module in the folder (the "experiment" section of its run.json,
  and "experiment" in
  results.json); a run of one experiment refuses a folder that holds another experiment's run.
- An experiment's own `check(config, out)` may refuse a folder (e.g. one trained with other
  settings) before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import time
from typing import Any, Callable, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfpvi  # noqa: E402

__all__ = [
  "CALIBRATION_CALLS",
  "binarized_test_set",
  "budget_steps",
  "check_plan",
  "check_spec",
  "evaluate_log_px",
  "flag",
  "folder_experiment",
  "holds_checkpoints",
  "mnist_like",
  "parse_config",
  "plan_steps",
  "pyplot",
  "save_spec",
  "recorded_plan",
  "say",
  "seconds_per_step",
  "steps_for_budget",
  "start",
  "trained_record",
  "training_seconds",
  "write_results",
]

SMOKE_ROOT = pathlib.Path("runs") / "smoke"
# Older folders marked their experiment and smoke runs with these files; run.json's "experiment" section does now.
_LEGACY_SMOKE_MARKER = ".tfpvi_smoke"
_LEGACY_EXPERIMENT_MARKER = ".tfpvi_experiment"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def flag(
  default: Any,
  help: str,  # noqa: A002 (the name argparse uses)
  *,
  minimum: Optional[float] = None,
  maximum: Optional[float] = None,
  above: Optional[float] = None,
  choices: Optional[Sequence[Any]] = None,
  allow_empty: bool = False,
):
  """A Config field that becomes a command-line flag.

  Args:
    default: the default value (int, float, bool, str, or a tuple of one of them).
    help: one line that `--help` prints.
    minimum: smallest allowed value (for a tuple, of each element).
    maximum: largest allowed value (e.g. the size of a data split).
    above: values must be strictly greater than this (for a tuple, each element).
    choices: allowed values (for a tuple, of each element).
    allow_empty: for a tuple or str, whether an empty value is allowed.

  Returns:
    A `dataclasses.field` carrying the description and the checks in its metadata.
  """
  return dataclasses.field(
    default=default,
    metadata={
      "help": help,
      "minimum": minimum,
      "maximum": maximum,
      "above": above,
      "choices": choices,
      "allow_empty": allow_empty,
    },
  )


def _parse_bool(text: str) -> bool:
  if text.lower() in _TRUE:
    return True
  if text.lower() in _FALSE:
    return False
  raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _tuple_parser(element: type):
  def parse(text: str) -> tuple:
    values = []
    for item in (v.strip() for v in text.split(",")):
      if not item:
        continue
      try:
        values.append(element(item))
      except ValueError:
        raise argparse.ArgumentTypeError(
          f"expected comma-separated {element.__name__} values, got {item!r} in {text!r}"
        ) from None
    return tuple(values)

  return parse


def _check_value(name: str, value: Any, meta: dict) -> Optional[str]:
  """The reason `value` is not allowed for flag --name, or None if it is."""
  if isinstance(value, tuple):
    if not value and not meta.get("allow_empty"):
      return f"--{name} needs at least one value, got none"
    for element in value:
      reason = _check_value(name, element, {**meta, "allow_empty": True})
      if reason:
        return reason
    return None
  if isinstance(value, str):
    if not value and not meta.get("allow_empty"):
      return f"--{name} must not be empty"
  if isinstance(value, float) and not math.isfinite(value):
    return f"--{name} must be a finite number, got {value}"
  choices = meta.get("choices")
  if choices is not None and value not in choices:
    return f"--{name} must be one of {', '.join(map(str, choices))}; got {value!r}"
  if meta.get("maximum") is not None and value > meta["maximum"]:
    return f"--{name} must be <= {meta['maximum']} (the size of the data it is drawn from), got {value}"
  if meta.get("minimum") is not None and value < meta["minimum"]:
    return f"--{name} must be >= {meta['minimum']}, got {value}"
  if meta.get("above") is not None and value <= meta["above"]:
    return f"--{name} must be > {meta['above']}, got {value}"
  return None


def _module_path(config_cls) -> str:
  """The module's import path, e.g. experiments.iwae (also when it runs as `python -m`)."""
  module = sys.modules.get(config_cls.__module__)
  spec = getattr(module, "__spec__", None)
  return spec.name if spec is not None and spec.name != "__main__" else config_cls.__module__


def _module_name(config_cls) -> str:
  return _module_path(config_cls).rpartition(".")[2]


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose errors are one line (the full usage is in --help)."""

  def error(self, message: str):
    message = message.rstrip()
    if not message.endswith((".", "?", "!")):
      message += "."  # every message is a sentence
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser(config_cls, description: str) -> argparse.ArgumentParser:
  parser = _Parser(
    prog=f"python -m {_module_path(config_cls)}",
    description=description,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    allow_abbrev=False,
  )
  name = _module_name(config_cls)
  parser.add_argument(
    "--smoke",
    action="store_true",
    help=f"a run of seconds on a tiny model and data, to check that everything works; writes into "
    f"{SMOKE_ROOT / name} (replaced each time) unless --output_dir is given",
  )
  for field in dataclasses.fields(config_cls):
    meta = field.metadata
    if "help" not in meta:
      raise TypeError(f"{config_cls.__module__}.Config.{field.name} needs a description: declare it with common.flag.")
    default = field.default
    text = f"{meta['help']} (default: %(default)s)"
    if meta.get("choices") is not None:
      text = f"{meta['help']}; one of {', '.join(map(str, meta['choices']))} (default: %(default)s)"
    if isinstance(default, bool):
      parser.add_argument(
        f"--{field.name}",
        nargs="?",
        const=True,
        type=_parse_bool,
        default=None,
        metavar="true|false",
        help=text.replace("%(default)s", str(default).lower()),
      )
    elif isinstance(default, tuple):
      element = type(default[0]) if default else str
      shown = ",".join(map(str, default)) or "none"
      parser.add_argument(
        f"--{field.name}",
        type=_tuple_parser(element),
        default=None,
        metavar="A,B,...",
        help=text.replace("%(default)s", shown),
      )
    else:
      parser.add_argument(
        f"--{field.name}",
        type=type(default),
        default=None,
        metavar=type(default).__name__.upper(),
        help=text.replace("%(default)s", str(default) if default != "" else "none"),
      )
  return parser


def parse_config(config_cls, argv: Optional[Sequence[str]], description: str):
  """Builds a validated Config from command-line flags: one flag per field, plus --smoke.

  `--smoke` applies `config_cls.SMOKE` (a dict of overrides) first; explicit flags win over it.
  `config_cls.EXCLUSIVE` (optional) lists groups of fields that replace each other (e.g. steps and
  epochs): giving two flags of one group is refused rather than one of them silently ignored.
  Every value is checked against its field's constraints and the Config's own `check()` (if it
  has one); a bad value ends the program with a one-line usage error (SystemExit 2).

  Returns:
    (config, smoke, output_dir_given, parser).
  """
  parser = _parser(config_cls, description)
  args = parser.parse_args(argv)
  overrides = dict(getattr(config_cls, "SMOKE", {})) if args.smoke else {}
  for field in dataclasses.fields(config_cls):
    value = getattr(args, field.name)
    if value is not None:
      overrides[field.name] = value
  given = [field.name for field in dataclasses.fields(config_cls) if getattr(args, field.name) is not None]
  for group in getattr(config_cls, "EXCLUSIVE", ()):
    clash = [name for name in group if name in given and getattr(args, name)]  # 0 / false: "not this one"
    if len(clash) > 1:
      parser.error(
        f"{' and '.join('--' + name for name in clash)} were both given, but they replace each other; give one of them"
      )
  config = dataclasses.replace(config_cls(), **overrides)
  for field in dataclasses.fields(config_cls):
    reason = _check_value(field.name, getattr(config, field.name), field.metadata)
    if reason:
      parser.error(reason)
  batch_sizes, train_examples = getattr(config, "batch_size", None), getattr(config, "train_examples", None)
  batch_sizes = batch_sizes if isinstance(batch_sizes, tuple) else (batch_sizes,)  # one per model, or one for all
  too_large = [
    size for size in batch_sizes if isinstance(size, int) and isinstance(train_examples, int) and size > train_examples
  ]
  if too_large:
    parser.error(
      f"--batch_size {max(too_large)} is larger than --train_examples {train_examples}; give --batch_size "
      f"<= {train_examples}"
    )
  if hasattr(config, "check"):
    try:
      config.check()
    except ValueError as error:
      parser.error(str(error))
  return config, args.smoke, args.output_dir is not None, parser


def resume_flag():
  """The `resume` field every training experiment's Config declares (`--resume force`)."""
  return flag(
    "auto",
    "how to treat a folder trained with other settings: auto refuses it with the differences, "
    "force continues it with these settings (the change is recorded in run.json)",
    choices=("auto", "force"),
  )


def fit_resume(config) -> Any:
  """`fit`'s resume argument for the Config's --resume: True (refuse other settings) or "force"."""
  return "force" if getattr(config, "resume", "auto") == "force" else True


def run(main: Callable[[Sequence[str]], Any], argv: Optional[Sequence[str]] = None) -> None:
  """Runs an experiment's main: a refused folder or missing data end in one line on stderr, exit status 2.

  What the user can act on (a ValueError from tfpvi, e.g. a folder trained with other settings, and
  missing data) is printed as one sentence, without a traceback; anything else propagates as it is.
  Ctrl-C ends in one line too, with exit status 130: training has already said what it saved.
  """
  from tfpvi import _startup  # noqa: PLC0415

  _startup.filter_runtime_noise()  # a command line: TensorFlow's runtime notes about its kernels are dropped
  spec = getattr(sys.modules.get(main.__module__), "__spec__", None)
  program = f"python -m {spec.name}" if spec is not None else main.__module__
  try:
    main(sys.argv[1:] if argv is None else argv)
  except (ValueError, FileNotFoundError) as error:  # tfpvi.data.DataNotFoundError is a FileNotFoundError
    message = " ".join(str(error).split())
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print(
      f"{program}: stopped by Ctrl-C; run the same command again to go on from what was saved.",
      file=sys.stderr,
      flush=True,
    )
    sys.exit(130)


def holds_checkpoints(folder) -> bool:
  """True if folder (or a sub-folder) holds TensorFlow checkpoints of a trained model."""
  folder = pathlib.Path(folder)
  return folder.is_dir() and any(folder.rglob("checkpoint"))


def _experiment_record(folder: pathlib.Path) -> dict:
  """The "experiment" section of the folder's run.json ({} where there is none)."""
  if not (folder / tfpvi.run_record.RECORD_FILE).is_file():
    return {}
  return tfpvi.run_record.read(folder).get("experiment") or {}


def folder_experiment(folder) -> Optional[str]:
  """The experiment module (e.g. experiments.iwae) whose run `folder` holds, or None if it holds none.

  Read from the "experiment" section of its run.json, else (older folders) from a .tfpvi_experiment
  file or results.json ("experiment"; a results.json written before that key existed: None).
  """
  folder = pathlib.Path(folder)
  recorded = _experiment_record(folder).get("module")
  if recorded:
    return recorded
  marker = folder / _LEGACY_EXPERIMENT_MARKER
  if marker.is_file():
    return marker.read_text().strip() or None
  results = folder / "results.json"
  if results.is_file():
    try:
      return json.loads(results.read_text()).get("experiment")
    except (ValueError, AttributeError):
      return None
  return None


def _holds_smoke_run(folder: pathlib.Path) -> bool:
  return bool(_experiment_record(folder).get("smoke")) or (folder / _LEGACY_SMOKE_MARKER).exists()


def start(
  config_cls,
  argv: Optional[Sequence[str]],
  description: str,
  check: Optional[Callable[[Any, pathlib.Path], None]] = None,
):
  """Starts an experiment run: (config from the flags, the created output folder, start time).

  Everything is validated before the folder is created or written: the flags, whether the folder
  may be used (smoke and real runs never share a folder with checkpoints), and `check(config,
  out)`, which raises ValueError to refuse (e.g. a folder trained with other settings).
  """
  started = time.time()
  config, smoke, output_dir_given, parser = parse_config(config_cls, argv, description)
  default_smoke_folder = smoke and not output_dir_given
  if default_smoke_folder:
    config = dataclasses.replace(config, output_dir=str(SMOKE_ROOT / _module_name(config_cls)))
  try:
    out = tfpvi.checks.check_output_dir(config.output_dir, "--output_dir")
  except ValueError as error:
    parser.error(str(error))
  marked = _holds_smoke_run(out)
  experiment = _module_path(config_cls)
  owner = folder_experiment(out)
  if owner is not None and owner != experiment and not default_smoke_folder:
    parser.error(f"{out} holds a run of {owner}, not of {experiment}; give another --output_dir, or delete {out}.")
  if smoke and not marked and holds_checkpoints(out):
    parser.error(
      f"--smoke will not write into {out}: it holds a real run's checkpoints. Leave out --output_dir "
      f"(smoke runs go to {SMOKE_ROOT}/) or give an empty folder."
    )
  if not smoke and marked and holds_checkpoints(out):
    parser.error(
      f"{out} holds a --smoke run (a tiny model); give another --output_dir for a real run, or delete {out}."
    )
  if default_smoke_folder and out.exists():
    if not marked and any(out.iterdir()):
      parser.error(f"{out} is not a smoke run's folder; move it away or give --output_dir.")
    shutil.rmtree(out)  # a smoke run starts fresh in its own folder
  if check is not None and not default_smoke_folder:
    try:
      check(config, out)
    except ValueError as error:
      parser.error(str(error))
  out.mkdir(parents=True, exist_ok=True)
  # A smoke run is "a tiny model on tiny data, not a result"; a real run of another experiment refuses the folder.
  tfpvi.run_record.update(out, experiment={"module": experiment, "smoke": bool(smoke)})
  if smoke:
    say(f"smoke run (tiny model and data) into {out}/")
  return config, out, started


def check_spec(run_dir, spec: dict) -> None:
  """Raises ValueError if run_dir holds checkpoints of another model, or of other data, than `spec` describes."""
  if not holds_checkpoints(run_dir):
    return
  record = tfpvi.run_record.read(run_dir)
  if record.get("model") is not None:
    found = tfpvi.config.differences(record["model"], tfpvi.config.to_config(tfpvi.specs.build(spec)))
  elif record.get("legacy_spec"):
    found = tfpvi.specs.differences(record["legacy_spec"], spec)
  else:
    found = []
  if record.get("data") and spec.get("data") and record["data"] != spec["data"]:
    found.append(f"data: {record['data']!r} vs {spec['data']!r}")
  if found:
    raise ValueError(
      f"{run_dir} holds checkpoints of another model (its {tfpvi.run_record.RECORD_FILE} differs: "
      f"{'; '.join(found[:4])}{' ...' if len(found) > 4 else ''}); give another --output_dir, or delete {run_dir} "
      "to start over."
    )


def save_spec(run_dir, spec: dict) -> None:
  """Checks the folder (`check_spec`) and records the spec's data part in its run.json (fit records the model)."""
  check_spec(run_dir, spec)
  if spec.get("data"):
    tfpvi.run_record.update(run_dir, data=spec["data"])


def recorded_plan(run_dir) -> Optional[dict]:
  """The plan ({"steps", "requested"}) of a model folder that holds checkpoints, from its run.json.

  Older folders kept it in plan.json (and the flows-family experiments their settings in
  settings.json); those are read too.
  """
  run_dir = pathlib.Path(run_dir)
  if not holds_checkpoints(run_dir):
    return None
  record = tfpvi.run_record.read(run_dir)
  if "plan" in record:
    return record["plan"]
  legacy = run_dir / "plan.json"
  if not legacy.exists():
    return None
  plan = tfpvi.run_record.read_json(legacy, remedy=f"delete {run_dir} to start over")
  settings = run_dir / "settings.json"
  if "requested" not in plan and settings.exists():
    plan["requested"] = tfpvi.run_record.read_json(settings, remedy=f"delete {run_dir} to start over")
  return plan


def check_plan(run_dir, requested: dict) -> None:
  """Raises ValueError if run_dir was trained under a plan requested with other settings."""
  plan = recorded_plan(run_dir)
  before = (plan or {}).get("requested")
  if before is None:
    return
  requested = json.loads(json.dumps(requested))
  differs = [name for name in sorted(set(before) | set(requested)) if before.get(name) != requested.get(name)]
  if differs:
    raise ValueError(
      f"{run_dir} was trained with {', '.join(f'{n}={before.get(n)}' for n in differs)} ({plan['steps']} steps "
      f"planned) but this run asks for {', '.join(f'{n}={requested.get(n)}' for n in differs)}; give another "
      f"--output_dir, or delete {run_dir} to start over."
    )


def plan_steps(run_dir, requested: dict, choose: Callable[[], int]) -> int:
  """The steps of one model folder: `choose()` at its first run, recorded in run.json and reused on resume.

  `requested` are the settings the count comes from; a later run with other ones is refused
  (`check_plan`). `choose` may train (e.g. time a few steps, which the full run then resumes).
  """
  check_plan(run_dir, requested)
  plan = recorded_plan(run_dir)
  if plan is not None:
    return int(plan["steps"])
  steps = int(choose())
  tfpvi.run_record.update(run_dir, plan={"steps": steps, "requested": requested})
  return steps


def steps_for_budget(config, fit: Callable, minimum: int = 20) -> int:
  """config.steps, or with config.time_budget > 0 as many steps as fit one budget (`budget_steps`)."""
  if config.time_budget <= 0:
    return config.steps
  return budget_steps(config.time_budget, fit, config.steps_per_call, minimum)


def budget_steps(time_budget: float, fit: Callable, steps_per_call: int, minimum: int = 0) -> int:
  """As many steps as fit time_budget seconds, a step timed by `seconds_per_step`.

  At least `minimum`, and never fewer than the calibration run has already trained: the real run
  resumes from it, and a plan below its step would be refused as a folder past its steps.
  """
  seconds = seconds_per_step(fit, steps_per_call)
  return max(minimum, CALIBRATION_CALLS * steps_per_call, int(time_budget / seconds))


# Compiled calls of a calibration run (`seconds_per_step`): the first includes the compilation and
# the second is left out as warm-up; the median of the rest is the step's time.
CALIBRATION_CALLS = 6


def seconds_per_step(fit: Callable, steps_per_call: int) -> float:
  """Seconds per training step on this machine, from a short run that the real one resumes.

  The run takes CALIBRATION_CALLS compiled calls of steps_per_call steps, logging after each. The
  first two calls are left out (compilation and warm-up), and the median of the others is taken,
  so one call slowed by another process does not fix a budget's step count.
  """
  calibration = fit(
    steps=CALIBRATION_CALLS * steps_per_call, logging=tfpvi.train.Logging(every=steps_per_call, progress=False)
  )
  durations = np.diff(calibration["wall_time"].to_numpy())[1:]  # the calls after the first two
  return float(np.median(durations)) / steps_per_call


def training_seconds(history) -> np.ndarray:
  """wall_time minus the evaluation time spent before each row (eval_seconds of earlier rows)."""
  spent = history["eval_seconds"].fillna(0.0).to_numpy() if "eval_seconds" in history else np.zeros(len(history))
  return history["wall_time"].to_numpy() - np.concatenate([[0.0], np.cumsum(spent)[:-1]])


def evaluate_log_px(model, x: np.ndarray, num_samples: int, batch: int, chunk: int, seed: int) -> dict:
  """Test log p(x) by importance sampling, as the experiments' metrics (log p(x), its SE, ESS, k-hat share)."""
  summary, _ = tfpvi.evaluation.evaluate_dataset(
    model, x, num_samples, batch_size=batch, chunk_size=chunk, seed=seed, progress=False
  )
  return {
    "test_log_px": summary["log_px"],
    "test_log_px_standard_error": summary["log_px_standard_error"],
    "ess_mean": summary["ess_mean"],
    "khat_fraction_above_0_7": summary.get("khat_fraction_above_0_7"),
  }


def command_line(config) -> str:
  """The command that runs `config`: `python -m experiments.NAME` and a flag per non-default field."""
  defaults = type(config)()
  flags = []
  for field in dataclasses.fields(config):
    value, default = getattr(config, field.name), getattr(defaults, field.name)
    if value == default or _implied(config, field.name, default):
      continue
    if isinstance(value, bool):
      shown = "" if value else " false"
    elif isinstance(value, tuple):
      shown = " " + ",".join(map(str, value))
    else:
      shown = f" {value}"
    flags.append(f"--{field.name}{shown}")
  return " ".join([f"python -m {_module_path(type(config))}", *flags])


def _implied(config, name: str, default) -> bool:
  """Whether `config`'s value of `name` is what the other flags make of its default.

  E.g. an output folder resolved from the models, or settings another flag forces: such a value
  is not a flag the user gave, and the recorded command leaves it out.
  """
  try:
    resolved = dataclasses.replace(config, **{name: default})  # __post_init__ reapplies forced values
    if hasattr(resolved, "check"):
      resolved.check()  # resolves defaults that depend on other flags
  except ValueError:
    return False
  return getattr(resolved, name) == getattr(config, name)


def write_results(
  out: pathlib.Path,
  config,
  metrics: dict[str, Any],
  started: float,
  *,
  trained: Optional[dict[str, Any]] = None,
  published: Optional[dict[str, Any]] = None,
) -> dict:
  """Writes results.json: final metrics, the requested config, what actually ran, versions, run time.

  Also the command that ran, the machine and the date, which the documentation's experiment pages
  show beside the numbers (`docs/experiment_pages.py`).

  Args:
    out: the output folder.
    config: the Config the run was started with (the requested settings).
    metrics: final numbers.
    started: `time.time()` at the start.
    trained: what actually ran, e.g. {run name: {"requested_steps": n, "trained_steps": m}}; a
      run whose trained steps differ from the requested ones is reported on stdout too.
    published: the papers' numbers to compare with: {"source": citation, "values": {row: {column:
      value}}, "note": how they compare (e.g. another model or budget)}.
  """
  results = {
    "experiment": _module_path(type(config)),
    "command": command_line(config),
    "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "machine": tfpvi.run_record.machine(),
    "metrics": metrics,
    "published": published,
    "config": dataclasses.asdict(config),
    "trained": trained or {},
    "seconds": round(time.time() - started, 1),
    "versions": {
      "tfpvi": tfpvi.__version__,
      "tensorflow": tf.__version__,
      "python": platform.python_version(),
      "devices": [d.device_type for d in tf.config.list_physical_devices()],
    },
  }
  for name, record in (trained or {}).items():
    if record.get("requested_steps") is not None and record["requested_steps"] != record.get("trained_steps"):
      say(
        f"note: {name} trained {record.get('trained_steps')} steps, not the {record['requested_steps']} requested "
        "(see its history.csv)."
      )
  (out / "results.json").write_text(json.dumps(results, indent=2, default=_jsonable))
  return results


def trained_record(history, requested_steps: Optional[int]) -> dict[str, Any]:
  """{"requested_steps", "trained_steps", "train_seconds"} from a training history."""
  last = history.iloc[-1] if len(history) else None
  return {
    "requested_steps": requested_steps,
    "trained_steps": int(last["step"]) if last is not None else 0,
    "train_seconds": float(last["wall_time"]) if last is not None and "wall_time" in history else 0.0,
  }


def _jsonable(value):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return str(value)


def mnist_like(name: str, split: str, limit: Optional[int] = None, *, eight_bit: bool = False):
  """(images float32 [N, 28, 28, 1] in [0, 1] (or 0..255 if eight_bit), labels int64 [N])."""
  arrays = tfpvi.data.load_arrays(name, split)
  images, labels = arrays.images[:limit], arrays.labels[:limit]
  images = images.astype(np.float32) if eight_bit else images.astype(np.float32) / 255.0
  return images, labels


def binarized_test_set(name: str = "mnist", limit: Optional[int] = None):
  """The statically binarized test split (as tfpvi.data.load(..., binarize='static')), first `limit`."""
  images, labels = mnist_like(name, "test")
  return tfpvi.data.binarize_static(images)[:limit], labels[:limit]


def metrics_table(metrics: dict[str, Any]) -> str:
  """Metrics as an aligned text table: one row per run for {run: {metric: value}}, else one row per metric."""
  import pandas as pd  # noqa: PLC0415

  if metrics and all(isinstance(v, dict) for v in metrics.values()):
    frame = pd.DataFrame.from_dict(metrics, orient="index")
    frame.index.name = "run"
    return frame.reset_index().to_string(index=False, float_format=lambda v: f"{v:.4g}")
  frame = pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())})
  return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def say(message: str) -> None:
  print(message, flush=True)


def pyplot():
  """matplotlib.pyplot on the file-only Agg backend (figures are saved, never shown), imported on first use."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  return plt


# ---------------------------------------------------------------------------------------------
# Models that several experiments train (each experiment imports them from here, never another experiment).


def burda_mlp_spec(hidden_sizes, latent_size: int, prior: Optional[dict] = None) -> dict:
  """Burda et al.'s one-stochastic-layer MNIST model as a `tfpvi.specs` dict: tanh MLPs, Bernoulli pixels.

  The default prior is N(0, I); `prior` replaces it with another `tfpvi.specs` prior entry.
  """
  hidden = list(hidden_sizes)
  return {
    "encoder": {"class": "GaussianMLP", "hidden_sizes": hidden, "latent_size": latent_size, "activation": "tanh"},
    "decoder": {"class": "BernoulliMLP", "hidden_sizes": hidden, "output_shape": [28, 28, 1], "activation": "tanh"},
    "prior": prior or {"class": "standard_normal", "latent_size": latent_size},
    "data": {"name": "mnist", "format": "binary"},
  }


@dataclasses.dataclass(frozen=True)
class Latent2DConfig:
  """The flags of the latent_2d model (Keras VAE tutorial: 2 latents, [256] ReLU MLPs, RMSprop, batch 100)."""

  output_dir: str = flag("runs/latent_2d", "folder for checkpoints, history, results and figures")
  hidden_size: int = flag(256, "hidden layer size of the encoder and decoder MLPs", minimum=1)
  latent_size: int = flag(2, "number of latent dimensions: 2 (the scatter and the manifold are 2-D)")
  learning_rate: float = flag(1e-3, "RMSprop learning rate", above=0)
  batch_size: int = flag(100, "training batch size", minimum=1)
  epochs: float = flag(50.0, "passes over the training set (used when --steps is 0)", minimum=0)
  steps: int = flag(0, "if > 0, training steps, replacing --epochs", minimum=0)
  train_examples: int = flag(60000, "number of MNIST training images used", minimum=1, maximum=60000)
  eval_examples: int = flag(10000, "number of test images for the ELBO and the scatter", minimum=1, maximum=10000)
  resume: str = resume_flag()
  seed: int = flag(0, "random seed (initialisation, minibatches, evaluation)")

  EXCLUSIVE = (("steps", "epochs"),)

  SMOKE = dict(hidden_size=16, epochs=0.0, steps=20, train_examples=500, eval_examples=200)

  def check(self) -> None:
    if self.latent_size != 2:
      raise ValueError(
        f"--latent_size must be 2 (the latent scatter and the manifold are 2-D plots), got {self.latent_size}."
      )
    if self.steps == 0 and self.epochs == 0:
      raise ValueError("give --steps > 0 or --epochs > 0 (both are 0).")


def latent_2d_spec(config) -> dict:
  """The model as a `tfpvi.specs` dict (saved beside the checkpoints for `python -m tfpvi.cli.evaluate`)."""
  return {
    "encoder": {
      "class": "GaussianMLP",
      "hidden_sizes": [config.hidden_size],
      "latent_size": config.latent_size,
      "activation": "relu",
    },
    "decoder": {
      "class": "BernoulliMLP",
      "hidden_sizes": [config.hidden_size],
      "output_shape": [28, 28, 1],
      "activation": "relu",
    },
    "prior": {"class": "standard_normal", "latent_size": config.latent_size},
    "data": {"name": "mnist", "format": "binary"},
  }


def build_latent_2d(config) -> tfpvi.VAE:
  return tfpvi.specs.build(latent_2d_spec(config))


def latent_2d_steps(config, num_examples: int) -> int:
  return config.steps or max(1, int(config.epochs * np.ceil(num_examples / config.batch_size)))


def train_latent_2d(config, x_train, run_dir, num_samples: int):
  """Trains one model with `num_samples` Monte Carlo samples of the ELBO; returns (model, history)."""
  tf.random.set_seed(config.seed)
  save_spec(run_dir, latent_2d_spec(config))
  model = build_latent_2d(config)
  steps = latent_2d_steps(config, len(x_train))
  history = tfpvi.train.fit(
    model,
    functools.partial(tfpvi.objectives.elbo, num_samples=num_samples, return_terms=True),
    x_train,
    optimizer=snt.optimizers.RMSProp(config.learning_rate),
    steps=steps,
    batch_size=config.batch_size,
    preprocess=tfpvi.data.binarize_dynamic,
    output_dir=str(run_dir),
    seed=config.seed,
    logging=tfpvi.train.Logging(every=max(1, steps // 200)),
    checkpoints=tfpvi.train.Checkpoints(resume=fit_resume(config)),
    loop=tfpvi.train.Loop(steps_per_call=100),
  )
  return model, history


def check_latent_2d_folder(config, out) -> None:
  check_spec(out, latent_2d_spec(config))
