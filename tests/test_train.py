"""fit(): resumption after kill -9, NaN handling, schedules, steps_per_call and tf.distribute."""

import functools
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
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
        small_model(), ELBO_TERMS, binary_data(), optimizer=snt.optimizers.Adam(1e-2),
        steps=100, batch_size=32, log_every="powers_of_two", steps_per_call=8,
        eval_data=binary_data(64, seed=1), eval_every=50,
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
      histories.append(train.fit(
          model, ELBO_TERMS, binary_data(), optimizer=snt.optimizers.Adam(1e-2),
          steps=21, batch_size=16, log_every=7, steps_per_call=steps_per_call, jit_compile=jit_compile,
      ))
    self.assertAllClose(histories[0]["loss"], histories[1]["loss"], rtol=1e-4)
    # XLA draws its stateless random numbers with another algorithm: same training, other noise.
    self.assertEqual(list(histories[2]["step"]), [7, 14, 21])
    self.assertLess(abs(histories[2]["loss"].iloc[-1] - histories[1]["loss"].iloc[-1]), 2.0)

  def test_beta_schedule_is_evaluated_and_logged(self):
    history = train.fit(
        small_model(), ELBO_TERMS, binary_data(), optimizer=snt.optimizers.Adam(1e-3),
        steps=10, batch_size=16, log_every=5,
        objective_kwargs=dict(beta=lambda step: tf.minimum(1.0, step / 10.0)),
    )
    self.assertAllClose(history["beta"], [0.5, 1.0])
    self.assertAllClose(history["loss"], -(history["log_likelihood"] - history["beta"] * history["kl"]), rtol=1e-5)

  def test_nan_stops_with_step_and_term_and_keeps_checkpoint_clean(self):
    output_dir = tempfile.mkdtemp()

    model = small_model()
    train.fit(model, ELBO_TERMS, binary_data(), optimizer=snt.optimizers.Adam(1e-3), steps=10,
              batch_size=16, output_dir=output_dir, checkpoint_every=10)
    weights_before = [v.numpy() for v in model.trainable_variables]

    def nan_kl(model, x, *, seed):
      terms = tfpvi.objectives.elbo(model, x, seed=seed, return_terms=True)
      return dict(terms, kl=terms["kl"] * np.nan)

    with self.assertRaisesRegex(FloatingPointError, r"non-finite kl at step 11"):
      train.fit(model, nan_kl, binary_data(), optimizer=snt.optimizers.Adam(1e-3),
                steps=20, batch_size=16, output_dir=output_dir, checkpoint_every=5)
    for before, after in zip(weights_before, model.trainable_variables):
      self.assertAllClose(before, after)  # the poisoned update was not applied
    checkpoints = tf.train.get_checkpoint_state(os.path.join(output_dir, "checkpoints"))
    self.assertTrue(checkpoints.model_checkpoint_path.endswith("ckpt-10"))

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "exactly one of steps or epochs"):
      train.fit(small_model(), ELBO_TERMS, binary_data(), optimizer=snt.optimizers.SGD(0.1), batch_size=8)
    with self.assertRaisesRegex(ValueError, "needs batch_size"):
      train.fit(small_model(), ELBO_TERMS, binary_data(), optimizer=snt.optimizers.SGD(0.1), steps=3)
    with self.assertRaisesRegex(ValueError, "log_every must be"):
      train.fit(small_model(), ELBO_TERMS, binary_data(), optimizer=snt.optimizers.SGD(0.1), steps=3,
                batch_size=8, log_every=0)

  def test_dataset_input_and_epochs(self):
    dataset = tf.data.Dataset.from_tensor_slices({"image": binary_data(64)}).batch(16)
    history = train.fit(small_model(), ELBO_TERMS, dataset, optimizer=snt.optimizers.Adam(1e-2),
                        epochs=2, log_every=1)
    self.assertEqual(list(history["step"]), list(range(1, 9)))


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
      train.fit(model, reconstruction, x, optimizer=snt.optimizers.SGD(0.5), steps=2,
                batch_size=32, strategy=strat)
    for a, b in zip(mirrored.trainable_variables, single.trainable_variables):
      self.assertAllClose(a, b, atol=1e-6)
