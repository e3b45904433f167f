"""tfpvi.specs: the shorthand specs of the experiments, load_model, and the folders of older runs."""

import json

import numpy as np
import pytest
import tensorflow as tf

import tfpvi
from tfpvi import config
from tfpvi.models import specs

SPEC = {
  "encoder": {"class": "GaussianMLP", "hidden_sizes": [8], "latent_size": 2, "activation": "tanh"},
  "decoder": {"class": "BernoulliMLP", "hidden_sizes": [8], "output_shape": [4, 4, 1], "activation": "tanh"},
  "prior": {"class": "standard_normal", "latent_size": 2},
  "data": {"name": "mnist", "format": "binary"},
}


class ShorthandTest(tf.test.TestCase):
  """The shorthand builds the modules it names; the run record describes them in full (tests/test_config.py)."""

  def test_a_spec_builds_the_model_a_hand_built_one_is(self):
    hand_built = tfpvi.VAE(
      tfpvi.encoders.GaussianMLP([8], 2, activation=tf.nn.tanh),
      tfpvi.decoders.BernoulliMLP([8], [4, 4, 1], activation=tf.nn.tanh),
      tfpvi.standard_normal_prior(2),
    )
    self.assertEqual(config.differences(config.to_config(hand_built), config.to_config(specs.build(SPEC))), [])
    self.assertEqual(
      specs.normalize(dict(SPEC, encoder=dict(SPEC["encoder"], min_scale=1e-4))), specs.normalize(SPEC)
    )  # a default spelled out is the same spec


class LearnedPriorAndBiasSpecTest(tf.test.TestCase):
  def test_unknown_prior_class_and_bad_arguments_are_reported(self):
    with self.assertRaisesRegex(
      ValueError,
      r"prior class must be one of \['MixtureOfGaussians', 'VampPrior', "
      r"'one_hot', 'relaxed', 'standard_normal'\], got 'gaussian'",
    ):
      specs.build(dict(SPEC, prior={"class": "gaussian"}))
    with self.assertRaisesRegex(ValueError, "does not fit MixtureOfGaussians"):
      specs.build(dict(SPEC, prior={"class": "MixtureOfGaussians", "latent_size": 2, "components": 3}))

  def test_a_pixel_mean_bias_starts_at_the_training_images_pixel_means(self):
    spec = dict(SPEC, decoder=dict(SPEC["decoder"], pixel_mean_bias=True))
    self.assertEqual(specs.differences(SPEC, spec), ["decoder.pixel_mean_bias: False vs True"])
    images = tf.cast(tf.random.stateless_uniform([50, 4, 4, 1], seed=[0, 1]) > 0.3, tf.float32)
    rebuilt = specs.build(spec, train_images=images)
    self.assertAllClose(rebuilt.decoder.logit_offset, tfpvi.decoders.pixel_mean_logits(images))


class FlowAndDiscreteSpecTest(tf.test.TestCase):
  """Flow posteriors, Gumbel-softmax encoders, RelaxedInput decoders and categorical priors."""

  def test_they_build_as_their_spec(self):
    bernoulli = {"class": "BernoulliMLP", "hidden_sizes": [8], "output_shape": [4, 4, 1], "latent_ndims": 2}
    gumbel = {"class": "GumbelSoftmaxMLP", "hidden_sizes": [8], "num_variables": 3, "num_classes": 4}
    cases = [
      {
        "encoder": {"class": "iaf_mlp", "hidden_sizes": [8], "latent_size": 2, "made_hidden_sizes": [4]},
        "decoder": SPEC["decoder"],
        "prior": SPEC["prior"],
      },
      {
        "encoder": {"class": "planar_mlp", "hidden_sizes": [8], "latent_size": 2, "num_steps": 2},
        "decoder": SPEC["decoder"],
        "prior": SPEC["prior"],
      },
      {
        "encoder": gumbel,
        "decoder": {"class": "RelaxedInput", "decoder": bernoulli, "log_space": True},
        "prior": {"class": "relaxed", "num_variables": 3, "num_classes": 4, "temperature": 0.5},
      },
      {
        "encoder": dict(gumbel, kind="categorical"),
        "decoder": bernoulli,
        "prior": {"class": "one_hot", "num_variables": 3, "num_classes": 4},
      },
    ]
    for spec in cases:
      model = specs.build(spec)
      self.assertEqual(model.log_weights(tf.zeros([2, 4, 4, 1]), 3).shape, [3, 2])
      self.assertEqual(specs.output_shape(spec), [4, 4, 1])
    self.assertIsInstance(specs.build(cases[0]).encoder, tfpvi.flows.IAFPosterior)
    self.assertIsInstance(specs.build(cases[2]).decoder, tfpvi.discrete.RelaxedInput)
    self.assertEqual(
      specs.differences(cases[2], dict(cases[2], prior=dict(cases[2]["prior"], temperature=0.6))),
      ["prior.temperature: 0.5 vs 0.6"],
    )

  def test_a_relaxed_input_without_its_decoder_is_reported(self):
    spec = dict(SPEC, decoder={"class": "RelaxedInput", "log_space": True})
    with self.assertRaisesRegex(ValueError, "RelaxedInput decoder spec needs a 'decoder' entry"):
      specs.build(spec)


def test_load_model_restores_the_trained_weights_quietly(tmp_path, caplog):
  import gc
  import inspect
  import logging

  import sonnet as snt

  model = tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([8], 3), tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]), tfpvi.standard_normal_prior(3)
  )
  x = (np.random.default_rng(0).uniform(size=[8, 4, 4, 1]) > 0.5).astype(np.float32)
  tfpvi.train.fit(
    model,
    tfpvi.objectives.elbo,
    x,
    optimizer=snt.optimizers.Adam(1e-2),
    steps=3,
    batch_size=4,
    output_dir=str(tmp_path),
    logging=tfpvi.train.Logging(progress=False),
  )
  with caplog.at_level(logging.WARNING):
    restored = tfpvi.load_model(tmp_path)
    gc.collect()  # TensorFlow reports unrestored checkpoint values when the restore status is deleted
  assert not [r for r in caplog.records if "checkpoint" in r.getMessage().lower()], caplog.text
  for a, b in zip(model.trainable_variables, restored.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  samples = restored.sample(5, seed=[1, 2])
  assert samples.shape == [5, 4, 4, 1]
  # The methods show their own signatures and docstrings (Sonnet's wrappers hide both).
  assert list(inspect.signature(tfpvi.VAE.sample).parameters) == ["self", "num_samples", "seed", "mean"]
  assert "Generates from the model" in tfpvi.VAE.sample.__doc__
  assert json.loads((tmp_path / "run.json").read_text())["model"]["class"] == "tfpvi.models.vae:VAE"
  with pytest.raises(FileNotFoundError, match="no run.json"):
    tfpvi.load_model(tmp_path / "nothing")


def test_a_python_int_seed_gives_the_same_samples_at_every_call():
  model = tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([8], 3), tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]), tfpvi.standard_normal_prior(3)
  )
  x = tf.zeros([2, 4, 4, 1])
  np.testing.assert_array_equal(model.sample(4, seed=0), model.sample(4, seed=0))
  np.testing.assert_array_equal(model.log_weights(x, 3, seed=5), model.log_weights(x, 3, seed=5))
  np.testing.assert_array_equal(model.reconstruct(x, 2, seed=1), model.reconstruct(x, 2, seed=1))
  assert not np.array_equal(model.sample(4, seed=0), model.sample(4, seed=1))
  import pydoc

  text = pydoc.plain(pydoc.render_doc(tfpvi.VAE.sample))
  assert "in module tfpvi.models.vae" in text and text.splitlines()[2].startswith("sample(self, num_samples")


def test_an_older_folder_loads_and_a_resumed_fit_merges_its_records_into_run_json(tmp_path, capsys):
  """A folder from before run.json (training.json and the shorthand model_spec.json) still loads and resumes."""
  import sonnet as snt

  x = (np.random.default_rng(0).uniform(size=[8, 4, 4, 1]) > 0.5).astype(np.float32)

  def train(steps):
    model = specs.build(SPEC)
    tfpvi.train.fit(
      model,
      tfpvi.objectives.elbo,
      x,
      optimizer=snt.optimizers.Adam(1e-2),
      steps=steps,
      batch_size=4,
      output_dir=str(tmp_path),
      logging=tfpvi.train.Logging(progress=False),
      checkpoints=tfpvi.train.Checkpoints(every=2),
    )
    return model

  trained = train(2)
  record = json.loads((tmp_path / "run.json").read_text())
  # Write the folder as an older tfpvi did: the settings in training.json, the shorthand spec in model_spec.json.
  (tmp_path / "training.json").write_text(json.dumps({key: record[key] for key in ("settings", "run", "variables")}))
  (tmp_path / "model_spec.json").write_text(json.dumps(SPEC))
  (tmp_path / "run.json").unlink()
  restored = tfpvi.load_model(tmp_path)
  for a, b in zip(trained.trainable_variables, restored.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert tfpvi.run_record.read(tmp_path)["data"] == SPEC["data"]
  train(4)  # resumes: the recorded settings are checked, and run.json replaces both files
  assert "training.json and model_spec.json (the older records, merged into it) were removed" in capsys.readouterr().err
  assert sorted(p.name for p in tmp_path.glob("*.json")) == ["run.json"]
  record = json.loads((tmp_path / "run.json").read_text())
  assert record["data"] == SPEC["data"] and record["model"]["class"] == "tfpvi.models.vae:VAE"
  assert "legacy_spec" not in record
  steps = [int(line.split(",")[0]) for line in (tmp_path / "history.csv").read_text().splitlines()[1:]]
  assert steps == sorted(set(steps)) and steps[-1] == 4  # the history continues, each step once
