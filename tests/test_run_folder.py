"""The run folder of fit: what a folder was trained with (run.json), refused resumes, the model's record."""

import functools
import json
import logging
import pathlib
import tempfile

import numpy as np
import sonnet as snt
import tensorflow as tf
from helpers import fit_kwargs

import tfpvi
from tfpvi import train
from tfpvi.cli import evaluate
from tfpvi.train import run_folder

ELBO_TERMS = functools.partial(tfpvi.objectives.elbo, return_terms=True)
IWAE_2 = functools.partial(tfpvi.objectives.iwae, num_samples=2)


def small_model(hidden=16, activation=tf.nn.relu):
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([hidden], 2, activation=activation),
    tfpvi.decoders.BernoulliMLP([hidden], [4, 4, 1], activation=activation),
    tfpvi.standard_normal_prior(2),
  )


def binary_data(n=128):
  return (np.random.default_rng(0).random([n, 4, 4, 1]) > 0.5).astype("float32")


def fit(output_dir, model=None, objective=ELBO_TERMS, steps=4, **kwargs):
  defaults = dict(optimizer=snt.optimizers.Adam(1e-2), batch_size=16, checkpoints=train.Checkpoints(every=2))
  kwargs = fit_kwargs(defaults, kwargs)
  return train.fit(model or small_model(), objective, binary_data(), steps=steps, output_dir=output_dir, **kwargs)


class ResumeChecksTest(tf.test.TestCase):
  def setUp(self):
    super().setUp()
    self.folder = tempfile.mkdtemp()
    fit(self.folder)

  def test_another_model_size_is_refused_before_tensorflow_restores(self):
    with self.assertNoLogs("tensorflow", level=logging.WARNING):
      with self.assertRaisesRegex(
        ValueError,
        r"holds checkpoints of another model \(decoder/_mlp/_layers/0/b is "
        r"\[16\] in the checkpoint but \[32\] here; .* and 3 more\); use a new output_dir",
      ):
        fit(self.folder, model=small_model(hidden=32), steps=8)

  def test_another_objective_or_optimizer_is_refused_in_one_sentence(self):
    with self.assertRaisesRegex(
      ValueError,
      r"trained \(step 4\) with other settings \(objective "
      r"'tfpvi.objectives.elbo\(return_terms=True\)' before, "
      r"'tfpvi.objectives.iwae\(num_samples=2\)' now\); "
      r"use a new output_dir or delete .* or continue it with these "
      r"settings: tfpvi.train.fit\(\.\.\., checkpoints=tfpvi.train.Checkpoints\(resume='force'\)\)",
    ):
      fit(self.folder, objective=IWAE_2, steps=8)
    with self.assertRaisesRegex(ValueError, r"optimizer class 'sonnet.*Adam' before, 'sonnet.*SGD' now"):
      fit(self.folder, optimizer=snt.optimizers.SGD(0.1), steps=8)
    with self.assertRaisesRegex(ValueError, r"batch_size 16 before, 32 now"):
      fit(self.folder, batch_size=32, steps=8)
    history = fit(self.folder, objective=IWAE_2, steps=8, checkpoints=tfpvi.train.Checkpoints(resume="force"))
    self.assertEqual(list(history["step"])[-1], 8)
    record = json.loads(pathlib.Path(self.folder, run_folder.RECORD_FILE).read_text())
    self.assertEqual(record["changes"][0]["at_step"], 4)
    self.assertIn("tfpvi.objectives.iwae", record["settings"]["objective"])

  def test_fewer_steps_than_the_folder_reached_is_refused_and_equal_steps_returns_the_history(self):
    with self.assertRaisesRegex(ValueError, r"already at step 4, past the 2 steps asked for; ask for steps >= 4"):
      fit(self.folder, steps=2)
    again = fit(self.folder, steps=4)
    self.assertEqual(list(again["step"]), [1, 2, 3, 4])
    with self.assertRaisesRegex(ValueError, r"already holds checkpoints \(step 4\) and resume=False"):
      fit(self.folder, steps=8, checkpoints=tfpvi.train.Checkpoints(resume=False))
    with self.assertRaisesRegex(ValueError, "resume must be True, False or 'force'"):
      fit(self.folder, steps=8, checkpoints=tfpvi.train.Checkpoints(resume="yes"))

  def test_same_settings_resume_and_the_record_says_what_was_trained(self):
    history = fit(self.folder, steps=6)
    self.assertEqual(list(history["step"]), [1, 2, 3, 4, 5, 6])
    record = json.loads(pathlib.Path(self.folder, run_folder.RECORD_FILE).read_text())
    settings = record["settings"]
    self.assertEqual(settings["objective"], "tfpvi.objectives.elbo(return_terms=True)")
    self.assertEqual(settings["optimizer"]["learning_rate"], 0.01)
    self.assertEqual(settings["batch_size"], 16)
    self.assertEqual(settings["data"]["examples"], 128)
    self.assertEqual(record["variables"]["encoder/_torso/_layers/0/w"], [16, 16])
    self.assertEqual(record["model"]["config"]["encoder"]["class"], "tfpvi.models.encoders:GaussianMLP")
    self.assertNotIn("model_note", record)


class ModelSpecTest(tf.test.TestCase):
  def test_fit_saves_a_spec_that_rebuilds_the_model(self):
    folder = tempfile.mkdtemp()
    model = small_model(activation=tf.nn.tanh)
    fit(folder, model=model)
    restored, record = evaluate.restore(folder)
    self.assertEqual(record["model"]["config"]["encoder"]["config"]["activation"], {"function": "tensorflow:nn.tanh"})
    x = binary_data(4)
    self.assertAllClose(restored.posterior(x).mean(), model.posterior(x).mean())

  def test_a_model_that_cannot_be_described_is_said_so_in_the_record(self):
    folder = tempfile.mkdtemp()
    model = small_model()
    fit(folder, model=tfpvi.VAE(UserEncoder(), model.decoder, model.prior))
    record = json.loads(pathlib.Path(folder, run_folder.RECORD_FILE).read_text())
    self.assertIsNone(record["model"])
    self.assertRegex(
      record["model_note"],
      r"^the model cannot be rebuilt from this folder: encoder: the UserEncoder "
      r"does not describe itself.*@tfpvi.config.configurable",
    )
    with self.assertRaisesRegex(ValueError, r"run.json holds no description of its model: the model cannot be rebuilt"):
      evaluate.restore(folder)

  def test_another_activation_is_refused_by_the_spec(self):
    folder = tempfile.mkdtemp()
    fit(folder, model=small_model(activation=tf.nn.tanh))
    with self.assertRaisesRegex(
      ValueError,
      r"records another model .*encoder.activation: "
      r"'tensorflow:nn.tanh' vs 'tensorflow:nn.relu'",
    ):
      fit(folder, model=small_model(activation=tf.nn.relu), steps=8)


class UserEncoder(snt.Module):
  """A user's own encoder: trained by fit, but specs cannot rebuild it."""

  def __init__(self):
    super().__init__()
    self._net = tfpvi.encoders.GaussianMLP([8], 2)

  def __call__(self, x):
    return self._net(x)
