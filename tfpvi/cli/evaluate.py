"""`python -m tfpvi.cli.evaluate RUN_DIR --num_samples 5000`: test log p(x) of a trained model.

RUN_DIR is the output folder of one trained VAE (it holds run.json and checkpoints/, as written by
`tfpvi.train.fit` and the experiment modules, e.g. runs/iwae/iwae_k50, runs/flows/iaf, runs/discrete/concrete,
runs/renyi/vr_0.5_5, runs/bits_per_dim/mnist_conv_mixture). Prints log p(x) with its standard
errors, bits/dim, the effective sample size (ESS) and a Pareto k-hat summary over the first
--examples test images (default 1,000; --examples 0 for the whole test set), with a one-line
reading of whether the estimates can be trusted (k-hat >= 0.7 marks an example whose estimate a
few samples dominate), and writes them to RUN_DIR/evaluation.json. A progress bar shows on a
terminal (K = 5000 over 10,000 images takes a while on a CPU).

With --estimator ais, log p(x) is estimated by annealed importance sampling with HMC transitions
(Wu et al. 2017: --ais_steps annealing steps from the prior, --ais_chains chains per image) and
written to RUN_DIR/evaluation_ais.json; where evaluation.json (importance sampling, same images)
exists, one sentence compares the two. --bdmc N runs bidirectional Monte Carlo on N images simulated
from the model: forward AIS gives a lower and reverse AIS an upper bound on their log p(x), and the
gap says how far AIS with these settings can be from the truth (RUN_DIR/evaluation_bdmc.json).

The checkpoint evaluated is the latest when the evaluation starts; it is named in the output and
the JSON file. Each finished batch is saved in RUN_DIR as it completes, so a killed evaluation,
started again with the same flags, resumes where it stopped: the batches already done are kept, the
others run with the same seeds as in an uninterrupted evaluation.

The model is rebuilt from the classes run.json names, the user's own modules included (their module
must be importable: run from the folder that holds it, or put it on PYTHONPATH).

Discrete-latent models (tfpvi.discrete, trained with relaxed latents) are evaluated with exact
one-hot latents: q(z|x) the categorical distribution of the encoder's logits, p(z) uniform.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import sys

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import config, data, run_record
from tfpvi.evaluation import marginal as evaluation
from tfpvi.files import atomic_write
from tfpvi.models import decoders, discrete, specs
from tfpvi.models.vae import VAE
from tfpvi.train import run_folder

tfd = tfp.distributions

DEFAULT_EXAMPLES = 1000
RGB_DATASETS = tuple(data.rgb.RGB_DATASETS)


def _model_folders(folder: pathlib.Path) -> list[str]:
  """Sub-folders (two levels down at most) that hold a run record, relative to folder."""
  names = (run_record.RECORD_FILE, *run_record.LEGACY_FILES)
  found = sorted({path.parent for name in names for path in (*folder.glob(f"*/{name}"), *folder.glob(f"*/*/{name}"))})
  return [str(path.relative_to(folder)) for path in found if run_record.holds_model(path)]


def check_folder(run_dir) -> None:
  """Raises FileNotFoundError saying what run_dir is if it is not the folder of one trained model."""
  folder = pathlib.Path(run_dir)
  if not folder.is_dir():
    raise FileNotFoundError(f"{folder} is not a folder; expected the output folder of one trained VAE.")
  if run_record.holds_model(folder):
    return
  record = run_record.RECORD_FILE
  inside = _model_folders(folder)
  if inside:
    shown = ", ".join(str(folder / name) for name in inside[:8]) + (", ..." if len(inside) > 8 else "")
    raise FileNotFoundError(
      f"{folder} is not a VAE model folder (no {record}); the model folders under it are: {shown}."
    )
  if tf.train.latest_checkpoint(str(folder / "checkpoints")) is not None:
    raise FileNotFoundError(
      f"{folder} holds checkpoints but no {record}: it was not written by tfpvi.train.fit, or its record was "
      "lost (restore it from a copy; the model cannot be rebuilt without it)."
    )
  raise FileNotFoundError(
    f"{folder} is not a VAE model folder: it has no {record}, nor has any sub-folder (experiments without a "
    "VAE, such as bayes_by_backprop or project_deadline, save none)."
  )


def evaluation_model(model):
  """The model whose log p(x) is estimated: exact one-hot latents for a GumbelSoftmaxMLP encoder, else model."""
  if not isinstance(model.encoder, discrete.GumbelSoftmaxMLP):
    return model
  encoder = model.encoder
  decoder = model.decoder.decoder if isinstance(model.decoder, discrete.RelaxedInput) else model.decoder
  return VAE(
    lambda x: tfd.Independent(tfd.OneHotCategorical(logits=encoder.logits(x), dtype=tf.float32), 1),
    decoder,
    discrete.one_hot_prior(encoder.num_variables, encoder.num_classes),
  )


def restore(run_dir) -> tuple:
  """(model, record) with the latest checkpoint of run_dir restored (see `evaluation_model` for discrete latents)."""
  model, record, _ = restore_pinned(run_dir)
  return model, record


def restore_pinned(run_dir) -> tuple:
  """(model, record, checkpoint): as `restore`, and the path of the checkpoint that was restored.

  Raises:
    FileNotFoundError: if run_dir is not a model folder or has no checkpoint.
    ValueError: if its model cannot be rebuilt (the record says why), or is not a `tfpvi.VAE`.
  """
  check_folder(run_dir)
  record = run_record.read(run_dir)
  model = specs.rebuild_model(run_dir)
  for _ in range(20):  # a training process may replace the checkpoint between finding and pinning it
    latest = _latest_checkpoint(pathlib.Path(run_dir))
    try:
      specs.restore_weights(model, latest)  # pinned: a checkpoint saved later is not mixed in
      break
    except FileNotFoundError:  # deleted before it could be pinned: the next latest one is tried
      continue
    except (tf.errors.NotFoundError, RuntimeError) as error:
      if pathlib.Path(latest + ".index").exists():
        raise ValueError(
          f"{latest} cannot be read ({type(error).__name__}: {str(error).splitlines()[0]}); it was "
          "cut or damaged: move its files out of checkpoints/ to evaluate the one before it."
        ) from None
  else:
    raise FileNotFoundError(
      f"the checkpoints in {run_dir} were replaced faster than one could be read; evaluate a "
      "copy of the folder, or wait for the training to finish."
    )
  if not isinstance(model, VAE):
    raise ValueError(f"{run_dir} holds a {type(model).__name__}, not a tfpvi.VAE: there is no log p(x) to estimate.")
  return evaluation_model(model), record, latest


def _latest_checkpoint(folder: pathlib.Path) -> str:
  """The latest checkpoint, or the latest readable one on disk where the state file names a lost one."""
  latest = tf.train.latest_checkpoint(str(folder / "checkpoints"))
  if latest is not None and pathlib.Path(latest + ".index").exists():
    return latest
  on_disk = run_folder.checkpoints_on_disk(folder)
  if not on_disk:
    raise FileNotFoundError(f"no checkpoint in {folder / 'checkpoints'} (no ckpt-N.index with its data files).")
  try:
    named = tf.train.get_checkpoint_state(str(folder / "checkpoints")).model_checkpoint_path
  except Exception:  # noqa: BLE001 -- a missing or garbled state file
    named = ""
  state = f"names {os.path.basename(named)}, whose index file is gone" if named else "is missing or unreadable"
  chosen = on_disk[-1][1]
  print(
    f"note: {folder / 'checkpoints' / 'checkpoint'} {state}; evaluating {os.path.basename(chosen)}, the latest "
    "checkpoint on disk.",
    file=sys.stderr,
  )
  return chosen


def _progress_file(run_dir, name: str, flags: dict) -> pathlib.Path:
  """RUN_DIR/.{name}-{digest}.partial.jsonl: one file per set of flags, so another evaluation never collides."""
  digest = hashlib.sha256(json.dumps(flags, sort_keys=True).encode()).hexdigest()[:12]
  return pathlib.Path(run_dir) / f".{name}-{digest}.partial.jsonl"


class _Parser(argparse.ArgumentParser):
  """Errors in one line (the usage is in --help)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message.rstrip('.')}. (see {self.prog} --help)\n")


def _ais_settings(args):
  return evaluation.AIS(num_steps=args.ais_steps, num_chains=args.ais_chains, start=args.ais_start)


def _print_summary(summary: dict, spec: dict, label: str) -> None:
  print(f"{spec['data']['name']} test, {summary['num_examples']} examples, {label}")
  print(
    f"  log p(x)       {summary['log_px']:.3f} nats  (+- {summary['log_px_standard_error']:.3f} over examples, "
    f"+- {summary['monte_carlo_standard_error']:.4f} Monte Carlo)"
  )
  print(f"  bits/dim       {summary['bits_per_dim']:.4f}")
  of = summary.get("num_chains", summary.get("num_samples"))
  print(f"  ESS            mean {summary['ess_mean']:.1f}, min {summary['ess_min']:.1f} of {of}")
  if "khat_mean" in summary:
    print(
      f"  Pareto k-hat   mean {summary['khat_mean']:.3f}, max {summary['khat_max']:.3f}, "
      f"{100 * summary['khat_fraction_above_0_7']:.1f}% of examples >= 0.7 (not to be trusted)"
    )
  print(f"  reading        {evaluation.reading(summary)}")


def _run_bdmc(args, model, spec, checkpoint) -> int:
  settings = _ais_settings(args)
  result = evaluation.bdmc(
    model,
    args.bdmc,
    num_steps=settings.num_steps,
    num_chains=settings.num_chains,
    seed=args.seed,
    progress=args.progress,
  )
  lower, upper, gap = (float(tf.reduce_mean(t)) for t in (result.lower, result.upper, result.gap))
  print(
    f"BDMC on {args.bdmc} images simulated from the model, AIS with {settings.num_steps} steps and "
    f"{settings.num_chains} chains"
  )
  print(f"  lower bound    {lower:.3f} nats  (forward AIS from the prior)")
  print(f"  upper bound    {upper:.3f} nats  (reverse AIS from the exact latent)")
  gaps = result.gap.numpy()
  gap_se = float(gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else float("nan")
  print(f"  gap            {gap:.3f} +- {gap_se:.3f} nats  (max {float(gaps.max()):.3f})")
  print(
    f"  reading        On data like the model's own samples, AIS with these settings is within {gap:.2f} nats "
    "of log p(x) on average; more --ais_steps narrow the gap."
  )
  record = {
    "lower": lower,
    "upper": upper,
    "gap": gap,
    "gap_standard_error": gap_se,
    "num_examples": args.bdmc,
    "seed": args.seed,
    "ais": settings.describe(),
    "checkpoint": os.path.basename(checkpoint),
    "per_example": {"lower": result.lower.numpy().tolist(), "upper": result.upper.numpy().tolist()},
  }
  atomic_write(pathlib.Path(args.run_dir) / "evaluation_bdmc.json", json.dumps(record, indent=2))
  return 0


def data_description(record, name=None, fmt=None, model=None) -> dict:
  """{"name", "format"} of the test data: the flags where given, else the record's "data" section.

  A folder written by `tfpvi.train.fit` alone (e.g. the README's Quick start) does not know the
  data set; the format then follows from the decoder (Bernoulli: binary, else eight_bit).
  Generated images ({"name": "generated_rgb", "seed", "num_images"}, from experiments.bits_per_dim)
  are made again from their recorded seed and count.

  Raises:
    ValueError: if the data set is named neither by the record nor by `name`.
  """
  recorded = record.get("data") or {}
  name = name or recorded.get("name")
  if name is None:
    raise ValueError(
      "the run record does not say which data set the model was trained on; pass --data "
      f"{' or --data '.join(data.DATASETS + RGB_DATASETS)}."
    )
  if name == "generated_rgb":
    if "seed" not in recorded or "num_images" not in recorded:
      raise ValueError(
        "the run record names generated_rgb test images without their 'seed' and 'num_images'; "
        "they cannot be made again (run experiments.bits_per_dim again to record them)."
      )
    return {
      "name": name,
      "format": "eight_bit",
      "seed": int(recorded["seed"]),
      "num_images": int(recorded["num_images"]),
    }
  if fmt is None:
    fmt = recorded.get("format")
  if fmt is None:
    decoder = getattr(model, "decoder", None)
    decoder = decoder.decoder if isinstance(decoder, discrete.RelaxedInput) else decoder
    fmt = "binary" if isinstance(decoder, decoders.BernoulliMLP) else "eight_bit"
  if fmt not in specs.DATA_FORMATS:
    raise ValueError(f"data format must be one of {specs.DATA_FORMATS}, got {fmt!r}.")
  return {"name": name, "format": fmt}


def test_images(record, limit=None) -> np.ndarray:
  """The test split prepared as the model was trained: static binarization, 8-bit or grey.

  `record["data"]` names the data set and its format (see `data_description`).
  """
  description = data_description(record)
  if description["name"] == "generated_rgb":
    return data.rgb.generated_rgb(description["num_images"], seed=description["seed"])[:limit]
  if description["name"] in RGB_DATASETS:
    images = data.rgb.load_rgb(description["name"], "test").images.astype(np.float32)
  else:
    images = data.load_arrays(description["name"], "test").images.astype(np.float32)
  fmt = description["format"]
  if fmt == "binary":
    images = data.binarize_static(images / 255.0)
  elif fmt == "grey":
    images = images / 255.0
  return images[:limit]


def main(argv=None) -> int:
  parser = _Parser(
    prog="python -m tfpvi.cli.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("run_dir", help="output folder of one trained model (holds run.json and checkpoints/)")
  parser.add_argument(
    "--estimator",
    choices=("importance", "ais"),
    default="importance",
    help="importance sampling with q(z|x) (default) or annealed importance sampling with HMC",
  )
  parser.add_argument("--num_samples", type=int, default=5000, help="importance samples K per image (default 5000)")
  parser.add_argument("--ais_steps", type=int, default=1000, help="AIS annealing steps (default 1000)")
  parser.add_argument("--ais_chains", type=int, default=16, help="AIS chains per image (default 16)")
  parser.add_argument(
    "--ais_start",
    choices=("prior", "posterior"),
    default="prior",
    help="AIS start distribution: the prior (default, as Wu et al.) or q(z|x)",
  )
  parser.add_argument(
    "--bdmc",
    type=int,
    default=0,
    metavar="N",
    help="instead of test images: bidirectional Monte Carlo bounds on N images simulated from the model",
  )
  parser.add_argument(
    "--examples",
    type=int,
    default=DEFAULT_EXAMPLES,
    help=f"evaluate the first N test images (default {DEFAULT_EXAMPLES:,}; 0 for the whole test set)",
  )
  parser.add_argument("--batch_size", type=int, default=100, help="images per compiled call (default 100)")
  parser.add_argument(
    "--chunk_size",
    type=int,
    default=500,
    help="samples drawn at once; memory grows with chunk_size * batch_size (default 500)",
  )
  parser.add_argument("--seed", type=int, default=0, help="seed of the importance samples (default 0)")
  parser.add_argument(
    "--data",
    choices=data.DATASETS + RGB_DATASETS,
    default=None,
    help="test set, where run.json does not name it (e.g. runs of tfpvi.train.fit alone)",
  )
  parser.add_argument(
    "--format",
    choices=specs.DATA_FORMATS,
    default=None,
    help="how the images were prepared for training (default: from run.json, else "
    "binary for a Bernoulli decoder and eight_bit otherwise)",
  )
  parser.add_argument(
    "--progress",
    action=argparse.BooleanOptionalAction,
    default=None,
    help="show a progress bar (default: when stderr is a terminal)",
  )
  args = parser.parse_args(argv)
  if args.examples < 0:
    parser.error(f"--examples must be >= 1, or 0 for the whole test set, got {args.examples}")
  for name in ("ais_steps", "ais_chains"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
  if args.bdmc < 0:
    parser.error(f"--bdmc must be >= 1 (images to simulate), got {args.bdmc}")
  if args.seed < 0:
    parser.error(f"--seed must be >= 0, got {args.seed}")
  try:
    model, spec, checkpoint = restore_pinned(args.run_dir)
    if args.bdmc:
      return _run_bdmc(args, model, spec, checkpoint)
    spec = dict(spec, data=data_description(spec, args.data, args.format, model))
    images = test_images(spec, args.examples or None)
    if args.examples and len(images) < args.examples:
      raise ValueError(
        f"--examples {args.examples} asks for more images than the {spec['data']['name']} test set "
        f"has ({len(images)}); give --examples {len(images)}, or 0 for all of them"
      )
    if args.estimator == "ais":
      estimator, output, label = (
        _ais_settings(args),
        "evaluation_ais.json",
        (f"AIS, {args.ais_steps} steps, {args.ais_chains} chains"),
      )
      flags = {"estimator": "ais", **estimator.describe()}
    else:
      estimator, output, label = "importance", "evaluation.json", f"K = {args.num_samples}"
      flags = {"estimator": "importance", "num_samples": args.num_samples, "chunk_size": args.chunk_size}
    flags.update(
      checkpoint=os.path.basename(checkpoint),
      data=spec["data"],
      examples=len(images),
      batch_size=args.batch_size,
      seed=args.seed,
    )
    progress_file = _progress_file(args.run_dir, output.removesuffix(".json"), flags)
    if progress_file.exists():
      done = max(0, len(progress_file.read_text().splitlines()) - 1)
      print(
        f"resuming from {progress_file}: {done} of {-(-len(images) // args.batch_size)} batches already done",
        file=sys.stderr,
      )
    summary, per_example = evaluation.evaluate_dataset(
      model,
      images,
      args.num_samples,
      estimator=estimator,
      batch_size=args.batch_size,
      chunk_size=args.chunk_size,
      seed=args.seed,
      progress=args.progress,
      progress_file=str(progress_file),
    )
    _print_summary(summary, spec, label)
    print(f"  checkpoint     {checkpoint}")
    record = dict(
      summary,
      reading=evaluation.reading(summary),
      data=spec["data"],
      checkpoint=os.path.basename(checkpoint),
      seed=args.seed,
      per_example={"log_px": [float(v) for v in per_example["log_px"]]},
    )
    other = pathlib.Path(args.run_dir) / ("evaluation.json" if args.estimator == "ais" else "evaluation_ais.json")
    if other.exists():
      compared = _compare(json.loads(other.read_text()), record)
      print(f"  compared       {compared}")
      record["comparison"] = compared
    atomic_write(pathlib.Path(args.run_dir) / output, json.dumps(record, indent=2))
    print(f"  written to     {pathlib.Path(args.run_dir) / output}")
    progress_file.unlink(missing_ok=True)
  except (FileNotFoundError, ValueError, config.ConfigError, tf.errors.InvalidArgumentError) as error:
    message = error.message if isinstance(error, tf.errors.OpError) else str(error)
    message = message.splitlines()[0] if message else type(error).__name__
    if isinstance(error, tf.errors.InvalidArgumentError) and args.format is not None:
      message += f" Here the images come from --format {args.format}: give the format the model was trained on."
    print(f"error: {message}", file=sys.stderr)
    return 2
  except PermissionError as error:
    print(
      f"error: cannot write in {args.run_dir} ({error.strerror}: {error.filename}); evaluate a copy of the "
      "folder, or make it writable.",
      file=sys.stderr,
    )
    return 2
  return 0


def _compare(other: dict, record: dict) -> str:
  """The sentence comparing IS and AIS on the same images of the same checkpoint, or why there is none."""
  differing = [k for k in ("num_examples", "data", "checkpoint") if other.get(k) != record.get(k)]
  name = "evaluation_ais.json" if record.get("estimator") != "ais" else "evaluation.json"
  if differing:
    return (
      f"none: {name} measured other images or another checkpoint ("
      + ", ".join(f"{k} {other.get(k)!r} there, {record.get(k)!r} here" for k in differing)
      + ")."
    )
  importance, annealed = (other, record) if record.get("estimator") == "ais" else (record, other)
  return evaluation.comparison(
    importance,
    annealed,
    (importance.get("per_example") or {}).get("log_px"),
    (annealed.get("per_example") or {}).get("log_px"),
  )


if __name__ == "__main__":
  from tfpvi import _startup

  _startup.filter_runtime_noise()  # a command line: TensorFlow's runtime notes about its kernels are dropped
  sys.exit(main())
