"""`python -m tfpvi.evaluate RUN_DIR --num_samples 5000`: test log p(x) of a trained model.

RUN_DIR is the output folder of one trained model (it holds model_spec.json and checkpoints/, as
written by the experiment modules, e.g. runs/iwae/iwae_k50). Prints log p(x) with its standard
errors, bits/dim, the effective sample size and a Pareto k-hat summary over the test set, and
writes them to RUN_DIR/evaluation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfpvi import data, evaluation, specs  # noqa: E402


def restore(run_dir) -> tuple:
  """(model, spec) with the latest checkpoint of run_dir restored."""
  spec = specs.load(run_dir)
  model = specs.build(spec)
  latest = tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / "checkpoints"))
  if latest is None:
    raise FileNotFoundError(f"no checkpoint in {pathlib.Path(run_dir) / 'checkpoints'}.")
  model.log_weights(tf.zeros([1, *spec["decoder"]["output_shape"]]), 1)  # creates the variables
  tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
  return model, spec


def test_images(spec, limit=None) -> np.ndarray:
  """The test split prepared as the model was trained: static binarization, 8-bit or grey."""
  arrays = data.load_arrays(spec["data"]["name"], "test")
  images = arrays.images.astype(np.float32)
  fmt = spec["data"]["format"]
  if fmt == "binary":
    images = data.binarize_static(images / 255.0)
  elif fmt == "grey":
    images = images / 255.0
  elif fmt != "eight_bit":
    raise ValueError(f"data format must be one of {specs.DATA_FORMATS}, got {fmt!r}.")
  return images[:limit]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m tfpvi.evaluate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("run_dir")
  parser.add_argument("--num_samples", type=int, default=5000)
  parser.add_argument("--examples", type=int, default=None, help="first N test examples (default all)")
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--chunk_size", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  try:
    model, spec = restore(args.run_dir)
  except (FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  images = test_images(spec, args.examples)
  summary, _ = evaluation.evaluate_dataset(
      model, images, args.num_samples, batch_size=args.batch_size, chunk_size=args.chunk_size, seed=args.seed
  )
  print(f"{spec['data']['name']} test, {summary['num_examples']} examples, K = {args.num_samples}")
  print(f"  log p(x)       {summary['log_px']:.3f} nats  (+- {summary['log_px_standard_error']:.3f} over examples, "
        f"+- {summary['monte_carlo_standard_error']:.4f} Monte Carlo)")
  print(f"  bits/dim       {summary['bits_per_dim']:.4f}")
  print(f"  ESS            mean {summary['ess_mean']:.1f}, min {summary['ess_min']:.1f} of {args.num_samples}")
  if "khat_mean" in summary:
    print(f"  Pareto k-hat   mean {summary['khat_mean']:.3f}, max {summary['khat_max']:.3f}, "
          f"{100 * summary['khat_fraction_above_0_7']:.1f}% of examples >= 0.7 (not to be trusted)")
  (pathlib.Path(args.run_dir) / "evaluation.json").write_text(json.dumps(summary, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
