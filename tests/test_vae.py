"""Shapes through encoder, decoders and VAE, and the errors users see on bad input."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized
from helpers import binary_images, small_bernoulli_vae

import tfpvi

tfd = tfp.distributions


class ShapeTest(tf.test.TestCase, parameterized.TestCase):
  def test_encoder_shapes(self):
    q = tfpvi.encoders.GaussianMLP([8], 5)(tf.zeros([7, 3, 3, 2]))
    self.assertEqual(q.batch_shape, [7])
    self.assertEqual(q.event_shape, [5])
    self.assertEqual(q.sample(4, seed=[1, 1]).shape, [4, 7, 5])

  @parameterized.named_parameters(
    ("bernoulli", lambda: tfpvi.decoders.BernoulliMLP([8], [4, 4, 1])),
    ("logistic", lambda: tfpvi.decoders.DiscretizedLogisticMLP([8], [4, 4, 1])),
    ("mixture", lambda: tfpvi.decoders.DiscretizedLogisticMixtureMLP([8], [4, 4, 1], 3)),
  )
  def test_decoder_broadcasts_leading_dims(self, make):
    decoder = make()
    for leading in ([5], [2, 5], [3, 2, 5]):
      p = decoder(tf.zeros(leading + [6]))
      self.assertEqual(p.batch_shape, leading)
      self.assertEqual(p.event_shape, [4, 4, 1])
      self.assertEqual(p.log_prob(tf.zeros([5, 4, 4, 1])).shape, leading)
      self.assertEqual(p.sample(seed=[1, 2]).shape, leading + [4, 4, 1])

  def test_decoder_samples_differ_per_latent_but_share_weights(self):
    decoder = tfpvi.decoders.BernoulliMLP([8], [4])
    z = tf.random.stateless_normal([3, 2, 6], seed=[0, 0])
    joint = decoder(z).mean()
    self.assertAllClose(joint[1, 0], decoder(z[1, 0][None])[0].mean())

  def test_log_weights_and_helpers(self):
    model, x = small_bernoulli_vae(), binary_images()
    self.assertEqual(model.log_weights(x, 7, seed=[1, 1]).shape, [7, 6])
    self.assertEqual(model.reconstruct(x).shape, [6, 4, 4, 1])
    self.assertEqual(model.reconstruct(x, 5, seed=[0, 1]).shape, [5, 6, 4, 4, 1])
    self.assertEqual(model.sample(3, seed=[1, 1]).shape, [3, 4, 4, 1])
    self.assertEqual(model.sample(3, seed=[1, 1], mean=False).shape, [3, 4, 4, 1])
    # Identical seeds give identical values.
    self.assertAllEqual(model.log_weights(x, 3, seed=[5, 5]), model.log_weights(x, 3, seed=[5, 5]))

  def test_plain_functions_and_batched_prior(self):
    def encoder(x):
      return tfd.MultivariateNormalDiag(tf.reduce_mean(x, [1]), tf.ones([x.shape[0], 1]))

    def decoder(z):
      return tfd.Independent(tfd.Normal(z[..., None, :] * tf.ones([3, 1]), 1.0), 2)

    model = tfpvi.VAE(encoder, decoder, tfd.Normal(tf.zeros([1]), 1.0))
    self.assertEqual(model.prior.event_shape, [1])
    self.assertEqual(model.log_weights(tf.ones([2, 3, 1]), 4, seed=[1, 1]).shape, [4, 2])


class BadInputTest(tf.test.TestCase):
  def setUp(self):
    super().setUp()
    self.model, self.x = small_bernoulli_vae(), binary_images()

  def test_num_samples(self):
    for bad in (0, -3, 2.5, "5"):
      with self.assertRaisesRegex(ValueError, "num_samples must be"):
        tfpvi.objectives.iwae(self.model, self.x, num_samples=bad)
    with self.assertRaisesRegex(ValueError, "num_samples must be >= 1, got 0"):
      tfpvi.objectives.elbo(self.model, self.x, num_samples=0)
    with self.assertRaisesRegex(ValueError, "num_samples must be >= 1"):
      tfpvi.evaluation.log_marginal_likelihood(self.model, self.x, 0)

  def test_shape_mismatch_names_expected_and_actual(self):
    with self.assertRaisesRegex(ValueError, r"expected x with shape \[batch, 4, 4, 1\].*got shape \[6, 16\]"):
      self.model.log_weights(tf.reshape(self.x, [6, 16]), 2)

  def test_non_binary_data_to_bernoulli(self):
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"expected binary x with values in \{0, 1\}"):
      self.model.log_weights(self.x * 0.5, 2)

  def test_pixels_outside_discretized_support(self):
    model = tfpvi.VAE(
      tfpvi.encoders.GaussianMLP([8], 2),
      tfpvi.decoders.DiscretizedLogisticMLP([8], [4, 4, 1]),
      tfpvi.standard_normal_prior(2),
    )
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "expected integer values"):
      model.log_weights(tf.fill([2, 4, 4, 1], 0.5), 2)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "expected values <= 255"):
      model.log_weights(tf.fill([2, 4, 4, 1], 300.0), 2)

  def test_nan_input(self):
    x = tf.tensor_scatter_nd_update(self.x, [[0, 0, 0, 0]], [np.nan])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "NaN or Inf"):
      self.model.log_weights(x, 2)

  def test_encoder_must_return_distribution(self):
    model = tfpvi.VAE(lambda x: tf.zeros([2, 3]), self.model.decoder, tfpvi.standard_normal_prior(3))
    with self.assertRaisesRegex(TypeError, "encoder must return a tfp.distributions.Distribution, got"):
      model.log_weights(self.x, 2)

  def test_encoder_with_latent_in_batch_shape(self):
    model = tfpvi.VAE(lambda x: tfd.Normal(tf.zeros([6, 3]), 1.0), self.model.decoder, tfpvi.standard_normal_prior(3))
    with self.assertRaisesRegex(ValueError, r"batch shape \[6, 3\].*tfd.Independent"):
      model.log_weights(self.x, 2)

  def test_unknown_options(self):
    with self.assertRaisesRegex(ValueError, "gradient_estimator must be one of"):
      tfpvi.objectives.iwae(self.model, self.x, num_samples=2, gradient_estimator="score")
    with self.assertRaisesRegex(ValueError, "kl must be one of"):
      tfpvi.objectives.elbo(self.model, self.x, kl="exact")


class EncoderInputScaleTest(tf.test.TestCase):
  def test_input_scale_equals_scaling_the_input(self):
    encoder = tfpvi.encoders.GaussianMLP([8], 2, input_scale=1.0 / 255.0)
    x = tf.random.stateless_uniform([3, 4, 4, 1], seed=[1, 1], maxval=255.0)
    q_scaled = encoder(x)
    unscaled = tfpvi.encoders.GaussianMLP([8], 2)
    unscaled(x)
    for a, b in zip(unscaled.trainable_variables, encoder.trainable_variables):
      a.assign(b)
    self.assertAllClose(q_scaled.mean(), unscaled(x / 255.0).mean(), rtol=1e-5)

  def test_modules_list_their_variables(self):
    encoder, decoder = tfpvi.encoders.GaussianMLP([8], 2), tfpvi.decoders.BernoulliMLP([8], [4])
    decoder(encoder(tf.zeros([1, 4])).sample(seed=[1, 1]))
    self.assertLen(encoder.trainable_variables, 4)
    self.assertLen(decoder.trainable_variables, 4)
