"""Training: `fit` (a compiled, resumable loop for any objective) and the run folder it writes.

- `fitting`: `fit` and its option groups `Logging`, `Evaluation`, `Checkpoints` and `Loop`;
- `data`: arrays, nests of arrays or `tf.data` Datasets as batches of one structure;
- `step`: the compiled steps (stateless seeds, schedules, the NaN stop, `tf.distribute`);
- `run_folder`: history.csv, checkpoints, TensorBoard and the checks before a resume, writing
  run.json through `tfpvi.run_record` (the record, a foundation module that models read too).

The trainer knows no model family: it sees a `tf.Module`, an objective and data.
"""

from tfpvi.train import data, run_folder, step
from tfpvi.train.fitting import Checkpoints, Evaluation, Logging, Loop, fit, linear_warmup, powers_of_two

__all__ = [
  "Checkpoints",
  "Evaluation",
  "Logging",
  "Loop",
  "data",
  "fit",
  "linear_warmup",
  "powers_of_two",
  "run_folder",
  "step",
]
