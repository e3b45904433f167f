"""fit(): resumption after kill -9, NaN handling, schedules, steps_per_call and tf.distribute."""

import functools
import inspect
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pytest
import sonnet as snt
import tensorflow as tf

import tfpvi
from tfpvi import train

HERE = pathlib.Path(__file__).parent


def small_model(latent=2):
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([16], latent),
    tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]),
    tfpvi.standard_normal_prior(latent),
  )


def binary_data(n=256, seed=0):
  return (np.random.default_rng(seed).random([n, 4, 4, 1]) > 0.5).astype("float32")


ELBO_TERMS = functools.partial(tfpvi.objectives.elbo, return_terms=True)


class FitTest(tf.test.TestCase):
  def test_history_columns_logging_and_loss_decreases(self):
    history = train.fit(
      small_model(),
      ELBO_TERMS,
      binary_data(),
      optimizer=snt.optimizers.Adam(1e-2),
      steps=100,
      batch_size=32,
      logging=tfpvi.train.Logging(every="powers_of_two"),
      evaluation=tfpvi.train.Evaluation(data=binary_data(64, seed=1), every=50),
      loop=tfpvi.train.Loop(steps_per_call=8),
    )
    self.assertEqual(list(history["step"]), [1, 2, 4, 8, 16, 32, 50, 64, 100])
    for column in ("wall_time", "loss", "log_likelihood", "kl", "eval_objective"):
      self.assertIn(column, history.columns)
    self.assertAllClose(history["loss"], -(history["log_likelihood"] - history["kl"]), rtol=1e-5)
    self.assertLess(history["loss"].iloc[-1], history["loss"].iloc[0])
    self.assertEqual(history["eval_objective"].notna().sum(), 2)

  def test_steps_per_call_and_xla_give_the_same_training(self):
    histories = []
    for steps_per_call, jit_compile in ((1, False), (7, False), (7, True)):
      tf.random.set_seed(1)
      model = small_model()
      model.log_weights(binary_data(2), 1)  # same initial weights in every run
      histories.append(
        train.fit(
          model,
          ELBO_TERMS,
          binary_data(),
          optimizer=snt.optimizers.Adam(1e-2),
          steps=21,
          batch_size=16,
          logging=tfpvi.train.Logging(every=7),
          loop=tfpvi.train.Loop(steps_per_call=steps_per_call, jit_compile=jit_compile),
        )
      )
    self.assertAllClose(histories[0]["loss"], histories[1]["loss"], rtol=1e-4)
    # XLA draws its stateless random numbers with another algorithm: same training, other noise.
    self.assertEqual(list(histories[2]["step"]), [7, 14, 21])
    self.assertLess(abs(histories[2]["loss"].iloc[-1] - histories[1]["loss"].iloc[-1]), 2.0)

  def test_beta_schedule_is_evaluated_and_logged(self):
    history = train.fit(
      small_model(),
      ELBO_TERMS,
      binary_data(),
      optimizer=snt.optimizers.Adam(1e-3),
      steps=10,
      batch_size=16,
      objective_kwargs=dict(beta=lambda step: tf.minimum(1.0, step / 10.0)),
      logging=tfpvi.train.Logging(every=1),
    )
    self.assertAllClose(history["beta"], np.arange(1, 11) / 10.0)
    # One step per row: the interval means are that step's values.
    self.assertAllClose(history["loss"], -(history["log_likelihood"] - history["beta"] * history["kl"]), rtol=1e-5)

  def test_python_lambda_schedule_from_the_docstring_runs_in_graph_and_xla(self):
    for jit_compile in (False, True):
      history = train.fit(
        small_model(),
        ELBO_TERMS,
        binary_data(),
        optimizer=snt.optimizers.Adam(1e-3),
        steps=6,
        batch_size=16,
        objective_kwargs=dict(beta=lambda s: min(1.0, s / 4)),
        logging=tfpvi.train.Logging(every=3),
        loop=tfpvi.train.Loop(steps_per_call=3, jit_compile=jit_compile),
      )
      self.assertAllClose(history["beta"], [0.75, 1.0])

  def test_linear_warmup(self):
    schedule = train.linear_warmup(4.0, start=0.5)
    self.assertAllClose([float(schedule(tf.constant(s, tf.float32))) for s in (0, 2, 4, 10)], [0.5, 0.75, 1, 1])
    with self.assertRaisesRegex(ValueError, "steps > 0"):
      train.linear_warmup(0)

  def test_rows_log_the_mean_over_the_interval(self):
    histories = []
    for log_every in (1, 5):
      tf.random.set_seed(3)
      model = small_model()
      model.log_weights(binary_data(2), 1)
      histories.append(
        train.fit(
          model,
          ELBO_TERMS,
          binary_data(),
          optimizer=snt.optimizers.Adam(1e-2),
          steps=10,
          batch_size=16,
          logging=tfpvi.train.Logging(every=log_every),
          loop=tfpvi.train.Loop(steps_per_call=5, jit_compile=False),
        )
      )
    every, interval = histories
    self.assertEqual(list(interval["step"]), [5, 10])
    for column in ("loss", "log_likelihood", "kl"):
      expected = [every[column][:5].mean(), every[column][5:].mean()]
      self.assertAllClose(interval[column], expected, rtol=1e-5)

  def test_interval_means_resume_exactly_from_a_checkpoint_inside_an_interval(self):
    def run(output_dir, steps):
      tf.random.set_seed(4)
      model = small_model()
      model.log_weights(binary_data(2), 1)
      return train.fit(
        model,
        ELBO_TERMS,
        binary_data(),
        optimizer=snt.optimizers.Adam(1e-2),
        steps=steps,
        batch_size=16,
        output_dir=output_dir,
        logging=tfpvi.train.Logging(every=5),
        checkpoints=tfpvi.train.Checkpoints(every=3, max_to_keep=5),
        loop=tfpvi.train.Loop(jit_compile=False),
      )

    clean = run(tempfile.mkdtemp(), 10)
    resumed_dir = tempfile.mkdtemp()
    run(resumed_dir, 10)
    # As if killed just after the checkpoint of step 3: the run resumes inside the interval 1..5.
    checkpoints = os.path.join(resumed_dir, "checkpoints")
    pathlib.Path(checkpoints, "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    resumed = run(resumed_dir, 10)
    self.assertEqual(list(resumed["step"]), [5, 10])
    self.assertAllClose(resumed["loss"], clean["loss"], rtol=1e-5)

  def test_nan_stops_with_step_and_term_and_keeps_checkpoint_clean(self):
    output_dir = tempfile.mkdtemp()

    model = small_model()
    train.fit(
      model,
      ELBO_TERMS,
      binary_data(),
      optimizer=snt.optimizers.Adam(1e-3),
      steps=10,
      batch_size=16,
      output_dir=output_dir,
      checkpoints=tfpvi.train.Checkpoints(every=10),
    )
    weights_before = [v.numpy() for v in model.trainable_variables]

    def nan_kl(model, x, *, seed):
      terms = tfpvi.objectives.elbo(model, x, seed=seed, return_terms=True)
      return dict(terms, kl=terms["kl"] * np.nan)

    with self.assertRaisesRegex(FloatingPointError, r"non-finite kl at step 11"):
      train.fit(
        model,
        nan_kl,
        binary_data(),
        optimizer=snt.optimizers.Adam(1e-3),
        steps=20,
        batch_size=16,
        output_dir=output_dir,
        checkpoints=tfpvi.train.Checkpoints(every=5, resume="force"),
      )
    for before, after in zip(weights_before, model.trainable_variables):
      self.assertAllClose(before, after)  # the poisoned update was not applied
    checkpoints = tf.train.get_checkpoint_state(os.path.join(output_dir, "checkpoints"))
    self.assertTrue(checkpoints.model_checkpoint_path.endswith("ckpt-10"))

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "exactly one of steps or epochs"):
      train.fit(small_model(), ELBO_TERMS, binary_data(), optimizer=snt.optimizers.SGD(0.1), batch_size=8)
    with self.assertRaisesRegex(ValueError, "needs batch_size"):
      train.fit(small_model(), ELBO_TERMS, binary_data(), optimizer=snt.optimizers.SGD(0.1), steps=3)
    with self.assertRaisesRegex(ValueError, r"Logging.every must be"):
      train.fit(
        small_model(),
        ELBO_TERMS,
        binary_data(),
        optimizer=snt.optimizers.SGD(0.1),
        steps=3,
        batch_size=8,
        logging=tfpvi.train.Logging(every=0),
      )

  def test_dataset_input_and_epochs(self):
    dataset = tf.data.Dataset.from_tensor_slices({"image": binary_data(64)}).batch(16)
    history = train.fit(
      small_model(),
      ELBO_TERMS,
      dataset,
      optimizer=snt.optimizers.Adam(1e-2),
      epochs=2,
      logging=tfpvi.train.Logging(every=1),
    )
    self.assertEqual(list(history["step"]), list(range(1, 9)))

  def test_dataset_with_a_short_last_batch_inside_one_call(self):
    dataset = tf.data.Dataset.from_tensor_slices(binary_data(50)).batch(16)  # 16, 16, 16, 2
    history = train.fit(
      small_model(),
      ELBO_TERMS,
      dataset,
      optimizer=snt.optimizers.Adam(1e-2),
      epochs=2,
      logging=tfpvi.train.Logging(every=4),
      loop=tfpvi.train.Loop(steps_per_call=4),
    )
    self.assertEqual(list(history["step"]), [4, 8])


class ResumeTest(tf.test.TestCase):
  def test_kill_minus_nine_then_resume_gives_every_step_once(self):
    killed_dir = tempfile.mkdtemp()
    steps = 120
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    process = subprocess.Popen([sys.executable, str(HERE / "train_script.py"), killed_dir, str(steps)], env=env)
    checkpoints = pathlib.Path(killed_dir, "checkpoints")
    deadline = time.time() + 120
    while time.time() < deadline and not list(checkpoints.glob("ckpt-4*.index")):
      time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = pd.read_csv(pathlib.Path(killed_dir, "history.csv"))
    self.assertLess(partial["step"].max(), steps)
    subprocess.run([sys.executable, str(HERE / "train_script.py"), killed_dir, str(steps)], env=env, check=True)
    resumed = pd.read_csv(pathlib.Path(killed_dir, "history.csv"))
    self.assertEqual(list(resumed["step"]), list(range(1, steps + 1)))

    # An uninterrupted run logs the same values: the resumed run lost and repeated nothing.
    clean_dir = tempfile.mkdtemp()
    subprocess.run([sys.executable, str(HERE / "train_script.py"), clean_dir, str(steps)], env=env, check=True)
    clean = pd.read_csv(pathlib.Path(clean_dir, "history.csv"))
    self.assertAllClose(resumed["loss"], clean["loss"], rtol=1e-4)


class DistributeTest(tf.test.TestCase):
  def test_two_replicas_match_single_device_step(self):
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
      self.skipTest("needs two logical CPU devices (configured in conftest.py)")
    strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
    x = binary_data(64)

    def reconstruction(model, x, *, seed):  # deterministic, so both runs see the same numbers
      return -tf.reduce_sum(tf.square(model.reconstruct(x) - x), [1, 2, 3])

    single = small_model()
    single.log_weights(x[:2], 1)
    with strategy.scope():
      mirrored = small_model()
      mirrored.log_weights(x[:2], 1)
    for a, b in zip(mirrored.trainable_variables, single.trainable_variables):
      a.assign(b)
    for model, strat in ((single, None), (mirrored, strategy)):
      train.fit(
        model,
        reconstruction,
        x,
        optimizer=snt.optimizers.SGD(0.5),
        steps=2,
        batch_size=32,
        loop=tfpvi.train.Loop(strategy=strat),
      )
    for a, b in zip(mirrored.trainable_variables, single.trainable_variables):
      self.assertAllClose(a, b, atol=1e-6)


class DataAndArgumentTest(tf.test.TestCase):
  def fit(self, data, **kwargs):
    kwargs = dict(dict(optimizer=snt.optimizers.SGD(0.1), steps=2, batch_size=8), **kwargs)
    return train.fit(small_model(), kwargs.pop("objective", ELBO_TERMS), data, **kwargs)

  def test_fewer_examples_than_batch_size_zero_examples_and_empty_dataset(self):
    with self.assertRaisesRegex(ValueError, "holds 50 examples, fewer than batch_size 100"):
      self.fit(binary_data(50), batch_size=100)
    with self.assertRaisesRegex(ValueError, "holds 0 examples"):
      self.fit(binary_data(0))
    with self.assertRaisesRegex(ValueError, "empty Dataset"):
      self.fit(tf.data.Dataset.from_tensor_slices(binary_data(8)).batch(4).take(0), batch_size=None)
    with self.assertRaisesRegex(ValueError, "yielded no batches"):
      self.fit(tf.data.Dataset.from_tensor_slices(binary_data(8)).filter(lambda x: False).batch(4), batch_size=None)
    with self.assertRaisesRegex(ValueError, r"share the leading dimension N.*\[0\] 64, train_data\[1\] 10"):
      self.fit((binary_data(64), np.zeros(10)))

  def test_objective_none_not_callable_and_boolean_num_samples(self):
    with self.assertRaisesRegex(TypeError, "objective must be a callable.*got NoneType"):
      self.fit(binary_data(), objective=None)
    with self.assertRaisesRegex(TypeError, "objective must be a callable.*got str"):
      self.fit(binary_data(), objective="elbo")
    with self.assertRaisesRegex(ValueError, "num_samples must be .*True"):
      self.fit(binary_data(), objective=tfpvi.objectives.iwae, objective_kwargs=dict(num_samples=True))

  def test_variables_outside_the_model_are_refused_by_name(self):
    encoder = tfpvi.encoders.GaussianMLP([8], 2, name="hidden_encoder")
    model = tfpvi.VAE(lambda x: encoder(x), tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]), tfpvi.standard_normal_prior(2))
    with self.assertRaisesRegex(ValueError, r"does not hold, so fit would never train them: hidden_encoder/"):
      train.fit(model, ELBO_TERMS, binary_data(), optimizer=snt.optimizers.SGD(0.1), steps=1, batch_size=8)

  def test_model_variables_without_gradient_are_named_in_a_warning(self):
    model = small_model()
    model.pseudo_inputs = tf.Variable(tf.zeros([3, 4, 4, 1]), name="pseudo_inputs")  # never used
    with self.assertWarnsRegex(UserWarning, r"1 of the model's 9 trainable variables get no gradient.*pseudo_inputs"):
      train.fit(model, ELBO_TERMS, binary_data(), optimizer=snt.optimizers.SGD(0.1), steps=1, batch_size=8)


def classification_data(n=384, seed=0):
  """Three well separated Gaussian clusters in 2-D with int32 labels."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, n).astype("int32")
  centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]], "float32")
  return (centers[labels] + rng.normal(size=[n, 2])).astype("float32"), labels


def log_likelihood(model, batch, *, seed):
  """Per-example log p(y|x) of a softmax classifier; batch is the tuple (x, y)."""
  del seed
  x, y = batch
  return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x))


class LabelledDataTest(tf.test.TestCase):
  def train(self, data, steps, output_dir=None, **kwargs):
    tf.random.set_seed(5)
    model = snt.Linear(3)
    model(tf.zeros([1, 2]))
    history = train.fit(
      model,
      log_likelihood,
      data,
      optimizer=snt.optimizers.Adam(0.05),
      steps=steps,
      output_dir=output_dir,
      **kwargs,
      logging=tfpvi.train.Logging(every=10),
      checkpoints=tfpvi.train.Checkpoints(every=10),
    )
    return model, history

  def check_trains_and_resumes_exactly(self, make_data, **kwargs):
    model, history = self.train(make_data(), 60, tempfile.mkdtemp(), **kwargs)
    self.assertLess(history["loss"].iloc[-1], 0.15)
    resumed_dir = tempfile.mkdtemp()
    self.train(make_data(), 30, resumed_dir, **kwargs)
    resumed_model, resumed = self.train(make_data(), 60, resumed_dir, **kwargs)
    self.assertEqual(list(resumed["step"]), list(range(10, 61, 10)))
    self.assertAllClose(resumed["loss"], history["loss"], rtol=1e-5)
    self.assertAllClose(resumed_model.w, model.w, rtol=1e-5)

  def test_tuples_in_memory(self):
    self.check_trains_and_resumes_exactly(classification_data, batch_size=32)

  def test_tuples_from_tf_data(self):
    def dataset():
      tf.random.set_seed(1)  # the shuffle order depends on the global seed too
      return tf.data.Dataset.from_tensor_slices(classification_data()).shuffle(384, seed=1).batch(32)

    self.check_trains_and_resumes_exactly(dataset, evaluation=tfpvi.train.Evaluation(dataset(), every=30))

  def test_dicts_pass_whole_with_inputs_none_and_under_xla(self):
    x, y = classification_data()

    def dict_likelihood(model, batch, *, seed):
      return log_likelihood(model, (batch["image"], batch["label"]), seed=seed)

    history = train.fit(
      snt.Linear(3),
      dict_likelihood,
      {"image": x, "label": y},
      optimizer=snt.optimizers.Adam(0.05),
      steps=20,
      batch_size=32,
      logging=tfpvi.train.Logging(every=10),
      loop=tfpvi.train.Loop(inputs=None, jit_compile=True, steps_per_call=10),
    )
    self.assertLess(history["loss"].iloc[-1], history["loss"].iloc[0])


@pytest.mark.parametrize(
  "make_optimizer",
  [lambda: snt.optimizers.Adam(0.05), lambda: snt.optimizers.RMSProp(0.05), lambda: snt.optimizers.Momentum(0.05, 0.9)],
  ids=["adam", "rmsprop", "momentum"],
)
def test_fits_first_update_is_the_optimizers_first_step(make_optimizer):
  """fit creates the optimizer's slots before training; its first update is still the optimizer's first step."""
  from tests.helpers import small_bernoulli_vae

  x = (np.random.default_rng(0).uniform(size=[4, 4, 4, 1]) > 0.5).astype(np.float32)
  tf.random.set_seed(0)
  model = small_bernoulli_vae()
  model.log_weights(x, 1)  # variables exist: fit keeps their values
  copy = small_bernoulli_vae()
  copy.log_weights(x, 1)
  for a, b in zip(copy.variables, model.variables):
    a.assign(b)
  tfpvi.train.fit(
    model,
    tfpvi.objectives.elbo,
    x,
    optimizer=make_optimizer(),
    steps=1,
    batch_size=4,
    logging=tfpvi.train.Logging(progress=False),
    loop=tfpvi.train.Loop(jit_compile=False),
  )
  moved = [
    not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(copy.trainable_variables, model.trainable_variables)
  ]
  assert all(moved)  # every variable took a step
  steps = [
    float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(copy.trainable_variables, model.trainable_variables)
  ]
  if "Adam" in type(make_optimizer()).__name__:
    # Adam's first step moves each weight by lr * g / (|g| + eps): almost exactly lr wherever g != 0. A step
    # counter left at 1 by the slot creation would make it the second step, with other bias corrections.
    assert max(steps) == pytest.approx(0.05, rel=1e-3)


class MeasuredJitTest(tf.test.TestCase):
  """jit_compile="auto" on a CPU times both loops on real steps, puts the state back and records the choice."""

  def fit(self, jit_compile, folder, steps=200):
    tf.random.set_seed(3)
    model = small_model()
    history = train.fit(
      model,
      ELBO_TERMS,
      binary_data(64),
      optimizer=snt.optimizers.Adam(1e-2),
      steps=steps,
      batch_size=16,
      output_dir=folder,
      logging=train.Logging(every=50, progress=False),
      loop=train.Loop(steps_per_call=10, jit_compile=jit_compile),
    )
    return model, history

  def test_the_measured_choice_changes_nothing_but_the_speed_and_is_kept_on_resume(self):
    folder = tempfile.mkdtemp()
    model, history = self.fit("auto", folder)
    run = tfpvi.run_record.read(folder)["run"]
    choice = run["jit_compile_choice"]
    self.assertEqual(choice["by"], "measurement")
    seconds = choice["seconds_per_step"]
    self.assertEqual(set(seconds), {"graph", "xla"})
    self.assertTrue(all(s > 0 for s in seconds.values()))
    self.assertEqual(run["jit_compile"], seconds["xla"] < seconds["graph"])
    # The same run with the chosen mode given explicitly: the timed steps left no trace.
    explicit_model, explicit = self.fit(run["jit_compile"], tempfile.mkdtemp())
    self.assertEqual(list(history["step"]), [50, 100, 150, 200])
    self.assertAllClose(history["loss"], explicit["loss"], rtol=1e-5)
    self.assertAllClose(model.trainable_variables, explicit_model.trainable_variables, rtol=1e-5, atol=1e-6)
    # A resumed "auto" run keeps the recorded choice rather than timing again.
    self.fit("auto", folder, steps=250)
    resumed = tfpvi.run_record.read(folder)["run"]
    self.assertEqual(resumed["jit_compile"], run["jit_compile"])
    self.assertIn("reused", resumed["jit_compile_choice"])

  def test_short_runs_and_explicit_choices_are_not_measured(self):
    folder = tempfile.mkdtemp()
    self.fit("auto", folder, steps=20)
    choice = tfpvi.run_record.read(folder)["run"]["jit_compile_choice"]
    self.assertEqual(choice["by"], "rule")
    self.assertIn("fewer than", choice["reason"])
    self.fit("auto", folder, steps=200)  # a short first leg does not decide for the whole run
    self.assertEqual(tfpvi.run_record.read(folder)["run"]["jit_compile_choice"]["by"], "measurement")
    other = tempfile.mkdtemp()
    self.fit(False, other, steps=20)
    self.assertEqual(tfpvi.run_record.read(other)["run"]["jit_compile_choice"], {"requested": False})


def test_former_fit_keywords_name_their_new_spelling():
  with pytest.raises(
    TypeError, match=r"log_every -> logging=tfpvi.train.Logging\(every=...\); steps_per_call -> loop="
  ):
    train.fit(
      small_model(),
      ELBO_TERMS,
      binary_data(),
      optimizer=snt.optimizers.SGD(0.1),
      steps=3,
      log_every=1,
      steps_per_call=2,
    )
  assert "logging" in str(inspect.signature(train.fit))  # the signature is fit's own


def test_training_many_models_in_one_process_warns_of_no_retracing():
  """An experiment trains several models (each timed, graph against XLA) in one process, silently."""
  import textwrap

  script = textwrap.dedent("""
      import functools
      import numpy as np
      import sonnet as snt
      import tfpvi
      x = (np.random.RandomState(0).rand(64, 4, 4, 1) > 0.5).astype("float32")
      for i in range(6):
        model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([4], 2), tfpvi.decoders.BernoulliMLP([4], [4, 4, 1]),
                          tfpvi.standard_normal_prior(2))
        tfpvi.train.fit(model, functools.partial(tfpvi.objectives.iwae, num_samples=2), x,
                        optimizer=snt.optimizers.Adam(1e-3), steps=4, batch_size=8,
                        logging=tfpvi.train.Logging(every=2, progress=False),
                        loop=tfpvi.train.Loop(steps_per_call=2, jit_compile=i % 2 == 0))
      print("trained")
  """)
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
  assert result.returncode == 0 and "trained" in result.stdout, result.stderr[-3000:]
  assert "retracing" not in result.stderr, result.stderr[-3000:]
