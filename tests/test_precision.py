"""Mixed precision (tfpvi.precision): bfloat16 networks, float32 probabilities, on a trained model.

The truths: a trained Burda et al. model's float32 log p(x) (the bfloat16 estimate must stay within
0.1 nats of it), the graph TensorFlow actually traced (its matmuls must be bfloat16, its log-sum-exps
float32), the variables' and checkpoints' dtypes, and an uninterrupted run (a resumed mixed run must
repeat it exactly).
"""

import functools
import tempfile

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

import tfpvi
from tfpvi import precision

MIXED = "mixed_bfloat16"


def burda_model():
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([200, 200], 50, activation=tf.nn.tanh),
    tfpvi.decoders.BernoulliMLP([200, 200], [28, 28, 1], activation=tf.nn.tanh),
    tfpvi.standard_normal_prior(50),
  )


def small_model():
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([32], 4),
    tfpvi.decoders.BernoulliMLP([32], [4, 4, 1]),
    tfpvi.standard_normal_prior(4),
  )


def binary_data(n=256, seed=0):
  """Four random 4x4 binary prototypes with 5% of the pixels flipped: something to learn."""
  rng = np.random.default_rng(seed)
  prototypes = rng.random([4, 4, 4, 1]) > 0.5
  flips = rng.random([n, 4, 4, 1]) < 0.05
  return (prototypes[rng.integers(0, 4, n)] ^ flips).astype("float32")


def fit(model, data, *, steps, precision_name, output_dir=None, batch_size=16, **kwargs):
  return tfpvi.train.fit(
    model,
    functools.partial(tfpvi.objectives.iwae, num_samples=5, return_terms=True),
    data,
    optimizer=snt.optimizers.Adam(1e-3),
    steps=steps,
    batch_size=batch_size,
    output_dir=output_dir,
    logging=tfpvi.train.Logging(every=kwargs.pop("log_every", 10), progress=False),
    loop=tfpvi.train.Loop(jit_compile=False, steps_per_call=10, precision=precision_name),
    **kwargs,
  )


@pytest.fixture(scope="module")
def trained_burda():
  """A Burda et al. model after 1,000 steps of k = 1 on 10,000 MNIST images (float32 training)."""
  tf.random.set_seed(0)
  model = burda_model()
  train = tfpvi.data.load_arrays("mnist", "train").images[:10_000] / 255.0
  tfpvi.train.fit(
    model,
    tfpvi.objectives.elbo,
    train.astype("float32"),
    optimizer=snt.optimizers.Adam(1e-3),
    steps=1000,
    batch_size=100,
    preprocess=tfpvi.data.binarize_dynamic,
    logging=tfpvi.train.Logging(progress=False),
    loop=tfpvi.train.Loop(jit_compile=False, steps_per_call=50),
  )
  test = tfpvi.data.binarize_static(tfpvi.data.load_arrays("mnist", "test").images[:100] / 255.0)
  return model, test


def test_log_px_of_a_trained_model_is_within_a_tenth_of_a_nat_of_float32(trained_burda):
  model, x = trained_burda
  estimates = {}
  for name in ("float32", MIXED):
    summary, per_example = tfpvi.evaluation.evaluate_dataset(
      model, x, 1000, batch_size=50, chunk_size=250, seed=3, jit_compile=False, precision=name, progress=False
    )
    estimates[name] = per_example["log_px"]
  difference = estimates[MIXED] - estimates["float32"]
  print(f"bfloat16 - float32 log p(x): mean {difference.mean():+.4f} nats, max |.| {np.abs(difference).max():.4f}")
  assert abs(difference.mean()) < 0.1
  assert np.abs(difference).max() < 0.5  # no example far off either
  assert np.all(np.isfinite(estimates[MIXED]))
  # log_marginal_likelihood takes the same option.
  direct = tfpvi.evaluation.log_marginal_likelihood(model, x[:10], 200, seed=[0, 1], precision=MIXED)
  reference = tfpvi.evaluation.log_marginal_likelihood(model, x[:10], 200, seed=[0, 1])
  assert abs(float(tf.reduce_mean(direct - reference))) < 0.1


def _op_dtypes(concrete, op_type: str) -> set:
  return {op.get_attr("T").name for op in concrete.graph.get_operations() if op.type == op_type}


def test_the_traced_graph_has_bfloat16_matmuls_and_float32_probabilities(trained_burda):
  model, x = trained_burda

  def log_weights(x):
    return model.log_weights(x, 5, seed=[0, 1])

  for name, matmul in (("float32", {"float32"}), (MIXED, {"bfloat16"})):
    with precision.policy(name):
      concrete = tf.function(log_weights).get_concrete_function(tf.TensorSpec([None, 28, 28, 1], tf.float32))
    assert _op_dtypes(concrete, "MatMul") | _op_dtypes(concrete, "BatchMatMulV2") == matmul, name
    assert concrete.outputs[0].dtype == tf.float32
  # What comes out of the networks is float32 before it becomes a distribution.
  with precision.policy(MIXED):
    q = model.posterior(x[:2])
    likelihood = model.likelihood(q.sample(seed=[0, 2]))
  assert q.dtype == tf.float32 and likelihood.distribution.logits.dtype == tf.float32
  assert {v.dtype for v in model.variables} == {tf.float32}


def test_mixed_training_keeps_float32_state_and_checkpoints_and_follows_the_float32_curve():
  data = binary_data()
  curves, folders = {}, {}
  for name in ("float32", MIXED):
    tf.random.set_seed(1)
    model = small_model()
    folders[name] = tempfile.mkdtemp()
    curves[name] = fit(model, data, steps=600, precision_name=name, output_dir=folders[name], log_every=100)
    assert {v.dtype for v in model.variables} == {tf.float32}
  reader = tf.train.load_checkpoint(folders[MIXED] + "/checkpoints")
  dtypes = {reader.get_variable_to_dtype_map()[key] for key in reader.get_variable_to_shape_map()}
  assert tf.bfloat16 not in dtypes and tf.float32 in dtypes
  record = tfpvi.run_record.read(folders[MIXED])
  assert record["run"]["precision"] == MIXED
  loss32, loss16 = curves["float32"]["loss"].to_numpy(), curves[MIXED]["loss"].to_numpy()
  assert np.all(np.isfinite(loss16))
  assert loss16[-1] < loss16[0] - 0.5  # it trains
  # Interval means over 100 steps of 16 images: the curves agree within their noise (~0.2 nats).
  np.testing.assert_allclose(loss16, loss32, atol=0.3)


def test_a_resumed_mixed_run_repeats_the_uninterrupted_one():
  data = binary_data()

  def run(folder, steps):
    tf.random.set_seed(2)
    return fit(small_model(), data, steps=steps, precision_name=MIXED, output_dir=folder)

  whole = run(tempfile.mkdtemp(), 60)
  folder = tempfile.mkdtemp()
  run(folder, 30)
  resumed = run(folder, 60)
  assert list(resumed["step"]) == list(whole["step"])
  np.testing.assert_allclose(resumed["loss"], whole["loss"], rtol=1e-6)


def test_gradients_under_mixed_precision_are_finite_and_reach_every_variable():
  model = small_model()
  x = binary_data(8)
  model.log_weights(x, 1)
  with precision.policy(MIXED), tf.GradientTape() as tape:
    loss = -tf.reduce_mean(tfpvi.objectives.iwae(model, x, num_samples=5, gradient_estimator="dreg", seed=[0, 1]))
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None and g.dtype == tf.float32 for g in grads)
  assert all(bool(tf.reduce_all(tf.math.is_finite(g))) and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_compiled_functions_are_cached_per_policy():
  class Owner:
    pass

  owner, made = Owner(), []

  def build():
    made.append(precision.current())
    return lambda: None

  first = tfpvi.xla.cached(owner, "f", build)
  with precision.policy(MIXED):
    mixed = tfpvi.xla.cached(owner, "f", build)
    assert tfpvi.xla.cached(owner, "f", build) is mixed
  assert tfpvi.xla.cached(owner, "f", build) is first and mixed is not first
  assert made == ["float32", MIXED]


def test_unknown_or_float16_precision_is_refused_with_the_choices():
  with pytest.raises(ValueError, match="Loop.precision must be one of 'float32', 'mixed_bfloat16'.*loss scaling"):
    tfpvi.train.Loop(precision="mixed_float16")
  with pytest.raises(ValueError, match="precision must be one of"):
    tfpvi.evaluation.log_marginal_likelihood(small_model(), binary_data(2), 10, precision="bf16")
  with pytest.raises(ValueError, match="applies to importance sampling"):
    tfpvi.evaluation.evaluate_dataset(
      small_model(), binary_data(2), estimator=tfpvi.ais.AIS(num_steps=2, num_chains=1), precision=MIXED
    )


MIXED_RUN = """
import functools, sys, numpy as np, sonnet as snt, tensorflow as tf, tfpvi
rng = np.random.default_rng(0)
prototypes = rng.random([4, 4, 4, 1]) > 0.5
x = (prototypes[rng.integers(0, 4, 256)] ^ (rng.random([256, 4, 4, 1]) < 0.05)).astype("float32")
tf.random.set_seed(2)
model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([32], 4), tfpvi.decoders.BernoulliMLP([32], [4, 4, 1]),
                  tfpvi.standard_normal_prior(4))
tfpvi.train.fit(model, functools.partial(tfpvi.objectives.iwae, num_samples=5, return_terms=True), x,
                optimizer=snt.optimizers.Adam(1e-3), steps=int(sys.argv[2]), batch_size=16, seed=5,
                output_dir=sys.argv[1], checkpoints=tfpvi.train.Checkpoints(every=20),
                logging=tfpvi.train.Logging(every=10, progress=False),
                loop=tfpvi.train.Loop(jit_compile=False, steps_per_call=10, precision="mixed_bfloat16"))
"""


def test_a_mixed_run_killed_at_a_random_moment_resumes_to_the_uninterrupted_run(tmp_path):
  """kill -9 of a bfloat16 run, then a resume: the history is the uninterrupted run's, row for row."""
  import subprocess
  import sys
  import time

  import pandas as pd

  killed = tmp_path / "killed"
  process = subprocess.Popen(
    [sys.executable, "-c", MIXED_RUN, str(killed), str(10**7)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
  )
  deadline = time.time() + 240  # a loaded machine takes long to import and compile
  while tf.train.latest_checkpoint(str(killed / "checkpoints")) is None and time.time() < deadline:
    assert process.poll() is None, process.stderr.read()[-2000:]
    time.sleep(0.02)
  time.sleep(0.17)  # mid-interval, after a checkpoint
  process.kill()
  process.wait()
  reached = int(tf.train.latest_checkpoint(str(killed / "checkpoints")).rsplit("-", 1)[1])
  steps = reached + 40
  for folder in (killed, tmp_path / "whole"):
    result = subprocess.run(
      [sys.executable, "-c", MIXED_RUN, str(folder), str(steps)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
  resumed, whole = (pd.read_csv(folder / "history.csv") for folder in (killed, tmp_path / "whole"))
  assert resumed["step"].tolist() == list(range(10, steps + 1, 10))  # every logged step once, in order
  np.testing.assert_allclose(resumed["loss"], whole["loss"], rtol=1e-6)
  assert tfpvi.run_record.read(killed)["run"]["precision"] == MIXED
  (killed / "run.json").unlink()  # a lost record: the resume is refused, naming the remedy
  result = subprocess.run(
    [sys.executable, "-c", MIXED_RUN, str(killed), str(steps + 20)], capture_output=True, text=True, timeout=300
  )
  assert result.returncode != 0 and "no run.json" in result.stderr and "resume='force'" in result.stderr
