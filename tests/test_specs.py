"""tfpvi.specs: describing a model, and saving a spec without overwriting a trained folder's."""

import json
import pathlib
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi
from tfpvi import specs

SPEC = {
    "encoder": {"class": "GaussianMLP", "hidden_sizes": [8], "latent_size": 2, "activation": "tanh"},
    "decoder": {"class": "BernoulliMLP", "hidden_sizes": [8], "output_shape": [4, 4, 1], "activation": "tanh"},
    "prior": {"class": "standard_normal", "latent_size": 2},
    "data": {"name": "mnist", "format": "binary"},
}


class DescribeTest(tf.test.TestCase):

  def test_a_hand_built_model_is_described_as_its_spec(self):
    model = tfpvi.VAE(
        tfpvi.encoders.GaussianMLP([8], 2, activation=tf.nn.tanh),
        tfpvi.decoders.BernoulliMLP([8], [4, 4, 1], activation=tf.nn.tanh),
        tfpvi.standard_normal_prior(2),
    )
    spec, reason = specs.describe(model)
    self.assertEqual(reason, "")
    self.assertEqual(specs.differences(SPEC, spec), [])
    self.assertEqual(specs.normalize(spec), specs.normalize(SPEC))

  def test_a_built_model_returns_its_spec(self):
    spec, _ = specs.describe(specs.build(SPEC))
    self.assertEqual(spec, {key: SPEC[key] for key in ("encoder", "decoder", "prior")})

  def test_what_cannot_be_described_says_why(self):
    encoder = tfpvi.encoders.GaussianMLP([8], 2)
    decoder = tfpvi.decoders.BernoulliMLP([8], [4, 4, 1])
    cases = [
        (tfpvi.VAE(lambda x: encoder(x), decoder, tfpvi.standard_normal_prior(2)), "the encoder is a function"),
        (tfpvi.VAE(encoder, decoder, tfp_normal(tf.Variable(tf.zeros(2)))), "not a standard normal"),
        (tfpvi.VAE(tfpvi.encoders.GaussianMLP([8], 2, activation=tf.nn.gelu), decoder,
                   tfpvi.standard_normal_prior(2)), "activation 'gelu' has no name"),
        (tf.Module(), "not a tfpvi.VAE"),
    ]
    for model, reason in cases:
      spec, found = specs.describe(model)
      self.assertIsNone(spec)
      self.assertIn(reason, found)


def tfp_normal(loc):
  return tfp.distributions.Independent(tfp.distributions.Normal(loc, 1.0), 1)


class SaveTest(tf.test.TestCase):

  def test_save_refuses_another_spec_over_checkpoints_and_merges_an_equal_one(self):
    folder = pathlib.Path(tempfile.mkdtemp())
    specs.save(folder, {key: SPEC[key] for key in ("encoder", "decoder", "prior")})
    specs.save(folder, SPEC)  # same model, adds the data part
    self.assertEqual(json.loads((folder / specs.SPEC_FILE).read_text())["data"], SPEC["data"])
    model = specs.build(SPEC)
    model.log_weights(tf.zeros([1, 4, 4, 1]), 1)
    tf.train.Checkpoint(model=model).save(str(folder / "checkpoints" / "ckpt"))
    other = json.loads(json.dumps(SPEC))
    other["encoder"]["latent_size"] = 3
    with self.assertRaisesRegex(ValueError, r"holds checkpoints of the model in its model_spec.json, which differs "
                                r"from this spec \(encoder.latent_size: 2 vs 3\); use a new output folder"):
      specs.save(folder, other)
    self.assertEqual(specs.load(folder), SPEC)
    specs.save(folder, dict(SPEC, encoder=dict(SPEC["encoder"], min_scale=1e-4)))  # a default spelled out

  def test_save_replaces_the_spec_of_a_folder_without_checkpoints(self):
    folder = pathlib.Path(tempfile.mkdtemp())
    specs.save(folder, SPEC)
    other = dict(SPEC, prior={"class": "standard_normal", "latent_size": 3})
    specs.save(folder, other)
    self.assertEqual(specs.load(folder)["prior"]["latent_size"], 3)


class LearnedPriorAndBiasSpecTest(tf.test.TestCase):

  def test_unknown_prior_class_and_bad_arguments_are_reported(self):
    with self.assertRaisesRegex(ValueError, r"prior class must be one of \['MixtureOfGaussians', 'VampPrior', "
                                r"'one_hot', 'relaxed', 'standard_normal'\], got 'gaussian'"):
      specs.build(dict(SPEC, prior={"class": "gaussian"}))
    with self.assertRaisesRegex(ValueError, "does not fit MixtureOfGaussians"):
      specs.build(dict(SPEC, prior={"class": "MixtureOfGaussians", "latent_size": 2, "components": 3}))

  def test_a_vamp_prior_on_another_encoder_is_not_described(self):
    encoder = tfpvi.encoders.GaussianMLP([8], 2)
    prior = tfpvi.priors.VampPrior(tfpvi.encoders.GaussianMLP([8], 2), [4, 4, 1], 3)
    spec, reason = specs.describe(tfpvi.VAE(encoder, tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]), prior))
    self.assertIsNone(spec)
    self.assertIn("built on another encoder", reason)

  def test_an_output_bias_is_part_of_the_spec(self):
    decoder = tfpvi.decoders.BernoulliMLP([8], [4, 4, 1], activation=tf.nn.tanh, output_bias=0.3)
    model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([8], 2, activation=tf.nn.tanh), decoder,
                      tfpvi.standard_normal_prior(2))
    spec, _ = specs.describe(model)
    self.assertTrue(spec["decoder"]["pixel_mean_bias"])
    self.assertEqual(specs.differences(SPEC, spec), ["decoder.pixel_mean_bias: False vs True"])
    images = tf.cast(tf.random.stateless_uniform([50, 4, 4, 1], seed=[0, 1]) > 0.3, tf.float32)
    rebuilt = specs.build(spec, train_images=images)
    self.assertAllClose(rebuilt.decoder.logit_offset, tfpvi.decoders.pixel_mean_logits(images))


class FlowAndDiscreteSpecTest(tf.test.TestCase):
  """Flow posteriors, Gumbel-softmax encoders, RelaxedInput decoders and categorical priors (issue 7, item 14)."""

  def test_they_build_and_describe_as_their_spec(self):
    bernoulli = {"class": "BernoulliMLP", "hidden_sizes": [8], "output_shape": [4, 4, 1], "latent_ndims": 2}
    gumbel = {"class": "GumbelSoftmaxMLP", "hidden_sizes": [8], "num_variables": 3, "num_classes": 4}
    cases = [
        {"encoder": {"class": "iaf_mlp", "hidden_sizes": [8], "latent_size": 2, "made_hidden_sizes": [4]},
         "decoder": SPEC["decoder"], "prior": SPEC["prior"]},
        {"encoder": {"class": "planar_mlp", "hidden_sizes": [8], "latent_size": 2, "num_steps": 2},
         "decoder": SPEC["decoder"], "prior": SPEC["prior"]},
        {"encoder": gumbel, "decoder": {"class": "RelaxedInput", "decoder": bernoulli, "log_space": True},
         "prior": {"class": "relaxed", "num_variables": 3, "num_classes": 4, "temperature": 0.5}},
        {"encoder": dict(gumbel, kind="categorical"), "decoder": bernoulli,
         "prior": {"class": "one_hot", "num_variables": 3, "num_classes": 4}},
    ]
    for spec in cases:
      model = specs.build(spec)
      self.assertEqual(model.log_weights(tf.zeros([2, 4, 4, 1]), 3).shape, [3, 2])
      self.assertEqual(specs.differences(spec, specs.describe(model)[0]), [])
      self.assertEqual(specs.output_shape(spec), [4, 4, 1])
    self.assertIsInstance(specs.build(cases[0]).encoder, tfpvi.flows.IAFPosterior)
    self.assertIsInstance(specs.build(cases[2]).decoder, tfpvi.discrete.RelaxedInput)
    self.assertEqual(specs.differences(cases[2], dict(cases[2], prior=dict(cases[2]["prior"], temperature=0.6))),
                     ["prior.temperature: 0.5 vs 0.6"])

  def test_a_relaxed_input_without_its_decoder_is_reported(self):
    spec = dict(SPEC, decoder={"class": "RelaxedInput", "log_space": True})
    with self.assertRaisesRegex(ValueError, "RelaxedInput decoder spec needs a 'decoder' entry"):
      specs.build(spec)


def test_load_model_restores_the_trained_weights_quietly(tmp_path, caplog):
  import gc
  import inspect
  import logging

  import sonnet as snt

  model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([8], 3), tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]),
                    tfpvi.standard_normal_prior(3))
  x = (np.random.default_rng(0).uniform(size=[8, 4, 4, 1]) > 0.5).astype(np.float32)
  tfpvi.train.fit(model, tfpvi.objectives.elbo, x, optimizer=snt.optimizers.Adam(1e-2), steps=3, batch_size=4,
                  output_dir=str(tmp_path), progress=False)
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
  with pytest.raises(FileNotFoundError, match="no model_spec.json"):
    tfpvi.load_model(tmp_path / "nothing")


def test_a_python_int_seed_gives_the_same_samples_at_every_call():
  model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([8], 3), tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]),
                    tfpvi.standard_normal_prior(3))
  x = tf.zeros([2, 4, 4, 1])
  np.testing.assert_array_equal(model.sample(4, seed=0), model.sample(4, seed=0))
  np.testing.assert_array_equal(model.log_weights(x, 3, seed=5), model.log_weights(x, 3, seed=5))
  np.testing.assert_array_equal(model.reconstruct(x, 2, seed=1), model.reconstruct(x, 2, seed=1))
  assert not np.array_equal(model.sample(4, seed=0), model.sample(4, seed=1))
  import pydoc

  text = pydoc.plain(pydoc.render_doc(tfpvi.VAE.sample))
  assert "in module tfpvi.vae" in text and text.splitlines()[2].startswith("sample(self, num_samples")
