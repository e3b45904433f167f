"""`python -m tfpvi.evaluate RUN_DIR --num_samples 5000`: test log p(x) of a trained model.

RUN_DIR is the output folder of one trained VAE (it holds model_spec.json and checkpoints/, as
written by the experiment modules, e.g. runs/iwae/iwae_k50, runs/flows/iaf, runs/discrete/concrete,
runs/renyi/vr_0.5_5, runs/bits_per_dim/mnist_conv_mixture). Prints log p(x) with its standard
errors, bits/dim, the effective sample size (ESS) and a Pareto k-hat summary over the first
--examples test images (default 1,000; --examples 0 for the whole test set), with a one-line
reading of whether the estimates can be trusted (k-hat >= 0.7 marks an example whose estimate a
few samples dominate), and writes them to RUN_DIR/evaluation.json. A progress bar shows on a
terminal (K = 5000 over 10,000 images takes a while on a CPU).

Discrete-latent models (tfpvi.discrete, trained with relaxed latents) are evaluated with exact
one-hot latents: q(z|x) the categorical distribution of the encoder's logits, p(z) uniform.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpvi import data, discrete, evaluation, specs
from tfpvi.vae import VAE

tfd = tfp.distributions

DEFAULT_EXAMPLES = 1000
RGB_DATASETS = tuple(data.rgb.RGB_DATASETS)


def _model_folders(folder: pathlib.Path) -> list[str]:
  """Sub-folders (two levels down at most) that hold a model_spec.json, relative to folder."""
  found = sorted({*folder.glob(f"*/{specs.SPEC_FILE}"), *folder.glob(f"*/*/{specs.SPEC_FILE}")})
  return [str(path.parent.relative_to(folder)) for path in found]


def check_folder(run_dir) -> None:
  """Raises FileNotFoundError saying what run_dir is if it is not the folder of one trained VAE."""
  folder = pathlib.Path(run_dir)
  if not folder.is_dir():
    raise FileNotFoundError(f"{folder} is not a folder; expected the output folder of one trained VAE.")
  if (folder / specs.SPEC_FILE).exists():
    return
  inside = _model_folders(folder)
  if inside:
    shown = ", ".join(str(folder / name) for name in inside[:8]) + (", ..." if len(inside) > 8 else "")
    raise FileNotFoundError(
        f"{folder} is not a VAE model folder (no {specs.SPEC_FILE}); the model folders under it are: {shown}."
    )
  if specs.has_checkpoints(folder):
    raise FileNotFoundError(
        f"{folder} holds checkpoints but no {specs.SPEC_FILE}: it is not a VAE model folder, or it was written "
        "before its experiment saved model specs (run the experiment again with the same flags to add it)."
    )
  raise FileNotFoundError(
      f"{folder} is not a VAE model folder: it has no {specs.SPEC_FILE}, nor has any sub-folder (experiments "
      "without a VAE, such as bayes_by_backprop or project_deadline, save none)."
  )


def evaluation_model(model, spec):
  """The model whose log p(x) is estimated: exact one-hot latents for a GumbelSoftmaxMLP encoder, else model."""
  if spec.get("encoder", {}).get("class") != "GumbelSoftmaxMLP":
    return model
  encoder = model.encoder
  decoder = model.decoder.decoder if isinstance(model.decoder, discrete.RelaxedInput) else model.decoder
  return VAE(lambda x: tfd.Independent(tfd.OneHotCategorical(logits=encoder.logits(x), dtype=tf.float32), 1),
             decoder, discrete.one_hot_prior(encoder.num_variables, encoder.num_classes))


def restore(run_dir) -> tuple:
  """(model, spec) with the latest checkpoint of run_dir restored (see `evaluation_model` for discrete latents)."""
  check_folder(run_dir)
  spec = specs.load(run_dir)
  model = specs.build(spec)
  latest = tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / "checkpoints"))
  if latest is None:
    raise FileNotFoundError(f"no checkpoint in {pathlib.Path(run_dir) / 'checkpoints'}.")
  evaluated = evaluation_model(model, spec)
  evaluated.log_weights(tf.zeros([1, *specs.output_shape(spec)]), 1)  # creates the variables
  tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
  return evaluated, spec


def data_description(spec, name=None, fmt=None) -> dict:
  """{"name", "format"} of the test data: the flags where given, else the spec's "data" entry.

  A spec written by `tfpvi.train.fit` alone (e.g. the README's Quick start) does not know the data
  set; the format then follows from the decoder (Bernoulli: binary, discretized: eight_bit).
  Generated images ({"name": "generated_rgb", "seed", "num_images"}, from experiments.bits_per_dim)
  are made again from their recorded seed and count.

  Raises:
    ValueError: if the data set is named neither by the spec nor by `name`.
  """
  recorded = spec.get("data") or {}
  name = name or recorded.get("name")
  if name is None:
    raise ValueError(
        "model_spec.json does not say which data set the model was trained on; pass --data "
        f"{' or --data '.join(data.DATASETS + RGB_DATASETS)}."
    )
  if name == "generated_rgb":
    if "seed" not in recorded or "num_images" not in recorded:
      raise ValueError("model_spec.json names generated_rgb test images without their 'seed' and 'num_images'; "
                       "they cannot be made again (run experiments.bits_per_dim again to record them).")
    return {"name": name, "format": "eight_bit", "seed": int(recorded["seed"]),
            "num_images": int(recorded["num_images"])}
  if fmt is None:
    fmt = recorded.get("format")
  if fmt is None:
    fmt = "binary" if spec["decoder"].get("class") == "BernoulliMLP" else "eight_bit"
  if fmt not in specs.DATA_FORMATS:
    raise ValueError(f"data format must be one of {specs.DATA_FORMATS}, got {fmt!r}.")
  return {"name": name, "format": fmt}


def test_images(spec, limit=None) -> np.ndarray:
  """The test split prepared as the model was trained: static binarization, 8-bit or grey.

  `spec["data"]` names the data set and its format (see `data_description`).
  """
  description = data_description(spec)
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
  parser = argparse.ArgumentParser(prog="python -m tfpvi.evaluate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("run_dir", help="output folder of one trained model (holds model_spec.json and checkpoints/)")
  parser.add_argument("--num_samples", type=int, default=5000, help="importance samples K per image (default 5000)")
  parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                      help=f"evaluate the first N test images (default {DEFAULT_EXAMPLES:,}; 0 for the whole test set)")
  parser.add_argument("--batch_size", type=int, default=100, help="images per compiled call (default 100)")
  parser.add_argument("--chunk_size", type=int, default=500,
                      help="samples drawn at once; memory grows with chunk_size * batch_size (default 500)")
  parser.add_argument("--seed", type=int, default=0, help="seed of the importance samples (default 0)")
  parser.add_argument("--data", choices=data.DATASETS + RGB_DATASETS, default=None,
                      help="test set, where model_spec.json does not name it (e.g. runs of tfpvi.train.fit alone)")
  parser.add_argument("--format", choices=specs.DATA_FORMATS, default=None,
                      help="how the images were prepared for training (default: from model_spec.json, else "
                      "binary for a Bernoulli decoder and eight_bit otherwise)")
  parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="show a progress bar (default: when stderr is a terminal)")
  args = parser.parse_args(argv)
  if args.examples < 0:
    parser.error(f"--examples must be >= 1, or 0 for the whole test set, got {args.examples}")
  try:
    model, spec = restore(args.run_dir)
    spec = dict(spec, data=data_description(spec, args.data, args.format))
    images = test_images(spec, args.examples or None)
    summary, _ = evaluation.evaluate_dataset(
        model, images, args.num_samples, batch_size=args.batch_size, chunk_size=args.chunk_size, seed=args.seed,
        progress=args.progress,
    )
  except (FileNotFoundError, ValueError) as error:  # data.DataNotFoundError included
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"{spec['data']['name']} test, {summary['num_examples']} examples, K = {args.num_samples}")
  print(f"  log p(x)       {summary['log_px']:.3f} nats  (+- {summary['log_px_standard_error']:.3f} over examples, "
        f"+- {summary['monte_carlo_standard_error']:.4f} Monte Carlo)")
  print(f"  bits/dim       {summary['bits_per_dim']:.4f}")
  print(f"  ESS            mean {summary['ess_mean']:.1f}, min {summary['ess_min']:.1f} of {args.num_samples}")
  if "khat_mean" in summary:
    print(f"  Pareto k-hat   mean {summary['khat_mean']:.3f}, max {summary['khat_max']:.3f}, "
          f"{100 * summary['khat_fraction_above_0_7']:.1f}% of examples >= 0.7 (not to be trusted)")
  print(f"  reading        {evaluation.reading(summary)}")
  record = dict(summary, reading=evaluation.reading(summary), data=spec["data"])
  (pathlib.Path(args.run_dir) / "evaluation.json").write_text(json.dumps(record, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
