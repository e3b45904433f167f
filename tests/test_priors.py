"""Learned priors: shapes, densities, and that training moves every prior variable."""

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized
from helpers import binary_images

import tfpvi

tfd = tfp.distributions


def vae_with(prior_kind):
  encoder = tfpvi.encoders.GaussianMLP([16], 3)
  decoder = tfpvi.decoders.BernoulliMLP([16], [4, 4, 1])
  if prior_kind == "mog":
    prior = tfpvi.priors.MixtureOfGaussians(3, 4)
  else:
    prior = tfpvi.priors.VampPrior(encoder, [4, 4, 1], 5)
  return tfpvi.VAE(encoder, decoder, prior), prior


class PriorTest(tf.test.TestCase, parameterized.TestCase):
  def test_mixture_density(self):
    prior = tfpvi.priors.MixtureOfGaussians(2, 3)
    z = tf.random.stateless_normal([7, 2], seed=[1, 1])
    scales = 1e-3 + tf.nn.softplus(prior.raw_scales)
    components = tfd.Independent(tfd.Normal(prior.locs, scales), 1).log_prob(z[:, None, :])  # [7, 3]
    expected = tf.reduce_logsumexp(components, -1) - np.log(3.0)
    self.assertAllClose(prior().log_prob(z), expected, rtol=1e-5)
    self.assertEqual(prior().event_shape, [2])

  def test_vamp_prior_is_the_mean_of_posteriors_at_pseudo_inputs(self):
    encoder = tfpvi.encoders.GaussianMLP([8], 2)
    prior = tfpvi.priors.VampPrior(encoder, [3], 4)
    z = tf.random.stateless_normal([5, 2], seed=[1, 2])
    q = encoder(prior.pseudo_inputs)
    expected = tf.reduce_logsumexp(q.log_prob(z[:, None, :]), -1) - np.log(4.0)
    self.assertAllClose(prior().log_prob(z), expected, rtol=1e-5)

  @parameterized.parameters("mog", "vamp")
  def test_fit_moves_every_prior_variable(self, kind):
    model, prior = vae_with(kind)
    x = binary_images(batch=32)
    model.log_weights(x, 1)
    before = [v.numpy().copy() for v in prior.trainable_variables]
    self.assertNotEmpty(before)
    names = {v.name for v in model.trainable_variables}
    self.assertTrue(all(v.name in names for v in prior.trainable_variables))
    tfpvi.train.fit(
      model,
      tfpvi.objectives.elbo,
      x,
      optimizer=snt.optimizers.Adam(1e-2),
      steps=5,
      batch_size=8,
      logging=tfpvi.train.Logging(progress=False),
      loop=tfpvi.train.Loop(jit_compile=False),
    )
    for variable, old in zip(prior.trainable_variables, before):
      self.assertGreater(float(np.max(np.abs(variable.numpy() - old))), 0.0, msg=variable.name)

  @parameterized.parameters("mog", "vamp")
  def test_objectives_with_learned_prior(self, kind):
    model, _ = vae_with(kind)
    x = binary_images()
    for estimator in ("reparam", "stl", "dreg"):
      self.assertEqual(
        tfpvi.objectives.iwae(model, x, num_samples=3, gradient_estimator=estimator, seed=[1, 1]).shape, [6]
      )
    self.assertEqual(tfpvi.objectives.elbo(model, x, num_samples=2, seed=[1, 1]).shape, [6])  # Monte Carlo KL
    self.assertEqual(model.sample(2, seed=[1, 1]).shape, [2, 4, 4, 1])
