"""tfpvi.config: modules describe themselves, are written as JSON and rebuilt by import."""

import json

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi
from tfpvi import config
from tfpvi.models import specs

tfd = tfp.distributions
SHAPE = [4, 4, 1]


def round_trip(obj):
  """The object rebuilt from its config as written to JSON and read back."""
  return config.from_config(json.loads(json.dumps(config.to_config(obj))))


def same_model(model, rebuilt, x):
  """Builds both models' variables, copies the weights over, and checks that they compute the same log weights."""
  model.log_weights(x, 1, seed=[0, 0])
  rebuilt.log_weights(x, 1, seed=[0, 0])
  assert [v.shape for v in model.variables] == [v.shape for v in rebuilt.variables]
  for a, b in zip(model.variables, rebuilt.variables):
    b.assign(a)
  np.testing.assert_array_equal(model.log_weights(x, 3, seed=[1, 2]), rebuilt.log_weights(x, 3, seed=[1, 2]))


def shipped_models():
  bernoulli = tfpvi.decoders.BernoulliMLP([8], SHAPE, activation=tf.nn.tanh)
  encoder = tfpvi.encoders.GaussianMLP([8], 2, activation=tf.nn.tanh)
  two_d = tfpvi.decoders.BernoulliMLP([8], SHAPE, latent_ndims=2)
  return {
    "gaussian": tfpvi.VAE(encoder, bernoulli, tfpvi.standard_normal_prior(2)),
    "iaf": tfpvi.VAE(
      tfpvi.flows.iaf_mlp([8], 2, made_hidden_sizes=[4]),
      tfpvi.decoders.BernoulliMLP([8], SHAPE),
      tfpvi.standard_normal_prior(2),
    ),
    "planar": tfpvi.VAE(
      tfpvi.flows.planar_mlp([8], 2, num_steps=2),
      tfpvi.decoders.BernoulliMLP([8], SHAPE),
      tfpvi.standard_normal_prior(2),
    ),
    "mixture_prior": tfpvi.VAE(
      tfpvi.encoders.GaussianMLP([8], 2), tfpvi.decoders.BernoulliMLP([8], SHAPE), tfpvi.priors.MixtureOfGaussians(2, 3)
    ),
    "concrete": tfpvi.VAE(
      tfpvi.discrete.GumbelSoftmaxMLP([8], 3, 4), tfpvi.discrete.RelaxedInput(two_d), tfpvi.discrete.relaxed_prior(3, 4)
    ),
    "one_hot": tfpvi.VAE(
      tfpvi.discrete.GumbelSoftmaxMLP([8], 3, 4, kind="categorical"),
      tfpvi.decoders.BernoulliMLP([8], SHAPE, latent_ndims=2),
      tfpvi.discrete.one_hot_prior(3, 4),
    ),
    "two_layer": specs.build(
      tfpvi.hierarchical.two_layer_spec(output_shape=SHAPE, latent_sizes=(3, 2), hidden_sizes=([8], [4]))
    ),
    "mixture_likelihood": tfpvi.VAE(
      tfpvi.encoders.GaussianMLP([8], 2),
      tfpvi.decoders.DiscretizedLogisticMixtureMLP([8], SHAPE, num_components=2),
      tfpvi.standard_normal_prior(2),
    ),
  }


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_every_shipped_model_rebuilds_from_its_config_and_computes_the_same(name):
  model = shipped_models()[name]
  rebuilt = round_trip(model)
  assert type(rebuilt.encoder) is type(model.encoder) and type(rebuilt.decoder) is type(model.decoder)
  assert config.differences(config.to_config(model), config.to_config(rebuilt)) == []
  x = tf.round(tf.random.stateless_uniform([2, *SHAPE], seed=[3, 4]) * (255 if "likelihood" in name else 1))
  same_model(model, rebuilt, x)


def test_a_conv_model_rebuilds_from_its_config():
  model = tfpvi.VAE(
    tfpvi.conv.ResNetEncoder(3, channels=[8], blocks_per_stage=1),
    tfpvi.conv.ResNetDecoder([8, 8, 3], channels=[8], blocks_per_stage=1, num_components=2),
    tfpvi.standard_normal_prior(3),
  )
  same_model(model, round_trip(model), tf.round(tf.random.stateless_uniform([2, 8, 8, 3], seed=[0, 1]) * 255))


def test_a_module_used_twice_is_rebuilt_once_and_shared():
  encoder = tfpvi.encoders.GaussianMLP([8], 2)
  model = tfpvi.VAE(encoder, tfpvi.decoders.BernoulliMLP([8], SHAPE), tfpvi.priors.VampPrior(encoder, SHAPE, 3))
  written = config.to_config(model)
  assert written["config"]["prior"]["config"]["encoder"] == {"same_as": "encoder"}
  rebuilt = config.from_config(json.loads(json.dumps(written)))
  assert rebuilt.get_config()["prior"].encoder is rebuilt.encoder
  same_model(model, rebuilt, tf.zeros([2, *SHAPE]))
  # A VampPrior on an encoder of its own keeps its own.
  apart = tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([8], 2),
    tfpvi.decoders.BernoulliMLP([8], SHAPE),
    tfpvi.priors.VampPrior(tfpvi.encoders.GaussianMLP([8], 2), SHAPE, 3),
  )
  assert "same_as" not in json.dumps(config.to_config(apart))


def test_tfp_distributions_and_variables_are_written_from_their_public_parameters():
  loc = tf.Variable(tf.fill([2], 0.5), name="loc")
  prior = tfd.MultivariateNormalDiag(loc, tf.ones(2))
  written = config.to_config(prior)
  assert written["class"] == "tensorflow_probability:distributions.MultivariateNormalDiag"
  assert written["config"]["loc"]["variable"] == [0.5, 0.5]
  rebuilt = config.from_config(json.loads(json.dumps(written)))
  assert isinstance(rebuilt.loc, tf.Variable) and rebuilt.trainable_variables
  np.testing.assert_allclose(rebuilt.log_prob([0.1, 0.2]), prior.log_prob([0.1, 0.2]))
  assert config.to_config(tf.nn.softplus) == {"function": "tensorflow:nn.softplus"}
  assert config.from_config(config.to_config((1, [2.0, "x"], None))) == (1, [2.0, "x"], None)
  assert config.from_config(config.to_config({"class": "not a module"})) == {"class": "not a module"}


class Torso(snt.Module):
  """A user's module that follows the Keras convention: get_config() returns its arguments."""

  def __init__(self, width, name=None):
    super().__init__(name=name)
    self.width = width
    self.linear = snt.Linear(width)

  def get_config(self):
    return {"width": self.width}

  def __call__(self, x):
    return self.linear(x)


class Undescribed(snt.Module):
  def __call__(self, x):
    return tfd.Independent(tfd.Normal(tf.zeros([tf.shape(x)[0], 2]), 1.0), 1)


@config.configurable
class Parent(snt.Module):
  def __init__(self, size=2, name=None):
    super().__init__(name=name)
    self.size = size


class UndecoratedChild(Parent):
  def __init__(self, other, name=None):
    super().__init__(size=other, name=name)


def test_a_get_config_module_is_rebuilt_and_what_cannot_be_described_says_what_to_do():
  assert round_trip(Torso(5)).width == 5
  decoder = tfpvi.decoders.BernoulliMLP([8], SHAPE)
  cases = [
    (
      tfpvi.VAE(Undescribed(), decoder, tfpvi.standard_normal_prior(2)),
      r"encoder: the Undescribed does not describe itself.*decorate its class with @tfpvi.config.configurable.*"
      r"or give it a get_config\(\)",
    ),
    (
      tfpvi.VAE(lambda x: None, decoder, tfpvi.standard_normal_prior(2)),
      r"encoder: the function .*<lambda> cannot be imported by name",
    ),
    (tfpvi.encoders.GaussianMLP([8], 2, activation=lambda t: t), r"activation: the function .*<lambda>"),
    (UndecoratedChild(3), r"UndecoratedChild subclasses the configurable Parent but is not decorated itself"),
    (object(), r"a object cannot be written as a config"),
  ]
  for obj, message in cases:
    with pytest.raises(config.ConfigError, match=message):
      config.to_config(obj)


def test_a_class_from_main_is_refused_with_where_to_move_it():
  main_class = type("Encoder", (), {"__module__": "__main__", "__qualname__": "Encoder"})
  with pytest.raises(config.ConfigError, match=r"defined in __main__ .* move it into a module file"):
    config.class_path(main_class)


def test_a_config_that_cannot_be_rebuilt_names_the_class_and_the_path():
  with pytest.raises(config.ConfigError, match=r"no_such_module:Encoder cannot be imported .* Python path"):
    config.from_config({"class": "no_such_module:Encoder", "config": {}})
  with pytest.raises(config.ConfigError, match=r"encoder: tfpvi.encoders:GaussianMLP does not accept"):
    config.from_config(
      {
        "class": "tfpvi.vae:VAE",
        "config": {"encoder": {"class": "tfpvi.encoders:GaussianMLP", "config": {"widths": [8]}}},
      }
    )


def test_differences_name_the_setting_and_ignore_initial_values():
  a = config.to_config(tfpvi.decoders.BernoulliMLP([8], SHAPE, output_bias=np.zeros(SHAPE, np.float32)))
  b = config.to_config(tfpvi.decoders.BernoulliMLP([8], SHAPE, output_bias=np.ones(SHAPE, np.float32)))
  c = config.to_config(tfpvi.decoders.BernoulliMLP([9], SHAPE, activation=tf.nn.tanh))
  assert config.differences(a, b) == []  # initial values: the checkpoint holds the trained ones
  found = config.differences(a, c)
  assert "activation: 'tensorflow:nn.relu' vs 'tensorflow:nn.tanh'" in found
  assert "hidden_sizes: [8] vs [9]" in found
  assert "output_bias: a float32 array of shape [4, 4, 1] vs None" in found


def test_a_tuple_and_a_list_of_the_same_sizes_are_the_same_model():
  a = config.to_config(tfpvi.encoders.GaussianMLP((8, 8), 2))
  b = config.to_config(tfpvi.encoders.GaussianMLP([8, 8], 2))
  assert a != b and config.differences(a, b) == []
  assert config.differences(a, config.to_config(tfpvi.encoders.GaussianMLP((8, 4), 2))) == [
    "hidden_sizes: [8, 8] vs [8, 4]"
  ]
