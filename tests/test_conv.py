"""ResNet encoder and decoder: shapes, folding of sample dimensions, no leaks between examples, bounds."""

import math

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized

import tfpvi
from tfpvi.distributions import DiscretizedLogisticMixture, PixelCNNMixture
from tfpvi.models import conv

tfd = tfp.distributions


def images(batch, shape, seed=0):
  return tf.round(tf.random.stateless_uniform([batch, *shape], seed=[seed, 7], maxval=255.0))


def small_encoder(latent=3, **kwargs):
  return conv.ResNetEncoder(latent, channels=(4, 8), groups=2, **kwargs)


def small_decoder(shape, **kwargs):
  return conv.ResNetDecoder(shape, channels=(8, 4), groups=2, num_components=kwargs.pop("num_components", 2), **kwargs)


class ResNetEncoderTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(("grey", [28, 28, 1]), ("rgb", [32, 32, 3]), ("odd", [7, 5, 2]))
  def test_shapes_and_folded_leading_dimensions(self, shape):
    enc = small_encoder()
    x = images(6, shape)
    q = enc(x)
    self.assertEqual(q.batch_shape, [6])
    self.assertEqual(q.event_shape, [3])
    folded = enc(tf.reshape(x, [2, 3, *shape]))
    self.assertEqual(folded.batch_shape, [2, 3])
    self.assertAllClose(tf.reshape(folded.mean(), [6, 3]), q.mean(), atol=1e-5)

  def test_no_statistics_shared_between_examples(self):
    enc = small_encoder()
    x = images(5, [12, 12, 1])
    together = enc(x)
    alone = enc(x[2:3])
    self.assertAllClose(together.mean()[2:3], alone.mean(), atol=1e-5)
    self.assertAllClose(together.stddev()[2:3], alone.stddev(), atol=1e-5)

  def test_inputs_are_scaled_to_the_unit_range(self):
    tf.random.set_seed(3)
    eight_bit = small_encoder()
    x = images(4, [8, 8, 1])
    expected = eight_bit(x).mean()
    grey = small_encoder(input_range=(0.0, 1.0))
    grey(x / 255.0)
    for source, target in zip(eight_bit.variables, grey.variables):
      target.assign(source)
    self.assertAllClose(grey(x / 255.0).mean(), expected, atol=1e-5)

  def test_posterior_scale_is_bounded_with_finite_gradients(self):
    enc = small_encoder(max_log_scale=5.0)
    x = images(3, [8, 8, 1])
    enc(x)
    for variable in enc.trainable_variables:
      variable.assign(variable * 1e3)  # drive the head far into saturation
    with tf.GradientTape() as tape:
      q = enc(x)
      loss = tf.reduce_sum(q.log_prob(tf.zeros([3, 3])))
    scale = q.stddev()
    self.assertAllInRange(scale, math.exp(-5.0), math.exp(5.0))
    for grad in tape.gradient(loss, enc.trainable_variables):
      self.assertAllEqual(tf.math.is_finite(grad), tf.ones_like(grad, tf.bool))

  def test_bad_inputs_are_reported(self):
    with self.assertRaisesRegex(ValueError, r"expected images with shape \[batch, height, width, channels\]"):
      small_encoder()(tf.zeros([4, 28, 28]))
    with self.assertRaisesRegex(ValueError, "normalization must be one of"):
      conv.ResNetEncoder(3, normalization="batch")
    with self.assertRaisesRegex(ValueError, "input_range"):
      conv.ResNetEncoder(3, input_range=(1.0, 1.0))


class ResNetDecoderTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(
    ("grey", [28, 28, 1], DiscretizedLogisticMixture),
    ("rgb", [32, 32, 3], PixelCNNMixture),
    ("odd", [7, 5, 3], PixelCNNMixture),
  )
  def test_shapes_with_sample_dimensions(self, shape, family):
    dec = small_decoder(shape)
    p = dec(tf.random.stateless_normal([4, 2, 3], seed=[1, 2]))
    self.assertEqual(p.batch_shape, [4, 2])
    self.assertEqual(p.event_shape, shape)
    inner = getattr(p, "distribution", p)  # tfd.Independent wraps the per-pixel mixture
    self.assertIsInstance(inner, family)
    self.assertEqual(p.log_prob(images(2, shape)).shape, [4, 2])
    self.assertEqual(p.sample(seed=(0, 1)).shape, [4, 2, *shape])

  def test_folded_samples_do_not_interact(self):
    dec = small_decoder([12, 12, 3])
    z = tf.random.stateless_normal([3, 2, 3], seed=[1, 2])
    x = images(2, [12, 12, 3])
    together = dec(z).log_prob(x)  # [3, 2], all six rows in one convolution batch
    for s in range(3):
      self.assertAllClose(together[s], dec(z[s]).log_prob(x), rtol=1e-5, atol=1e-2)
    self.assertAllClose(together[1, 0], dec(z[1, :1]).log_prob(x[:1])[0], rtol=1e-5, atol=1e-2)

  def test_scales_are_bounded_and_log_prob_finite_at_extreme_latents(self):
    dec = small_decoder([8, 8, 3], min_scale=0.1, log_scale_range=7.0)
    z = tf.Variable([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]])
    x = images(2, [8, 8, 3])
    with tf.GradientTape() as tape:
      p = dec(z)
      log_prob = p.log_prob(x)
    self.assertAllInRange(p.scales, 0.1, 0.1 * math.exp(7.0) * (1 + 1e-5))
    self.assertAllInRange(p.coefficients, -1.0, 1.0)
    self.assertAllEqual(tf.math.is_finite(log_prob), [True, True])
    for grad in tape.gradient(log_prob, [z, *dec.trainable_variables]):
      self.assertAllEqual(tf.math.is_finite(grad), tf.ones_like(grad, tf.bool))

  def test_bad_arguments_are_reported(self):
    with self.assertRaisesRegex(ValueError, r"output_shape must be \[height, width, channels\]"):
      conv.ResNetDecoder([28, 28])
    with self.assertRaisesRegex(ValueError, "num_components >= 1"):
      conv.ResNetDecoder([28, 28, 1], num_components=0)
    with self.assertRaisesRegex(ValueError, r"expected z with shape \[\.\.\., batch, latent\]"):
      small_decoder([8, 8, 1])(tf.zeros([3]))


class ConvVAETest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(("graph", False), ("xla", True))
  def test_training_step_and_log_weights_compile_with_unknown_batch(self, jit):
    shape = [12, 12, 3]
    model = tfpvi.VAE(small_encoder(), small_decoder(shape), tfpvi.standard_normal_prior(3))
    x = images(4, shape)
    model.log_weights(x, 2, seed=(0, 0))  # build
    adam = snt.optimizers.Adam(1e-3)

    @tf.function(jit_compile=jit, input_signature=[tf.TensorSpec([None, *shape]), tf.TensorSpec([2], tf.int32)])
    def step(x, seed):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(tfpvi.objectives.iwae(model, x, num_samples=3, seed=seed))
      grads = tape.gradient(loss, model.trainable_variables)
      adam.apply(grads, model.trainable_variables)
      return loss, tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

    losses = []
    for i in range(4):
      loss, finite = step(x, tf.constant([0, i]))
      self.assertTrue(bool(finite))
      losses.append(float(loss))
    self.assertLess(losses[-1], losses[0])
    log_w = tf.function(lambda x: model.log_weights(x, 5, seed=(1, 1)), jit_compile=jit)(x)
    self.assertEqual(log_w.shape, [5, 4])
    self.assertAllEqual(tf.math.is_finite(log_w), np.ones([5, 4], bool))


if __name__ == "__main__":
  tf.test.main()
