"""DiscretizedLogistic and its mixture against exact sums and an independent TFP reference."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized

import tfpvi
from tfpvi.distributions import DiscretizedLogistic, DiscretizedLogisticMixture

tfd = tfp.distributions
SUPPORT = tf.range(256.0)[:, tf.newaxis]


def quantized_reference(loc, scale):
  """tfd.QuantizedDistribution of a logistic shifted by -0.5: bins (x-1, x] = [x-0.5, x+0.5)."""
  shifted = tfd.Logistic(loc=np.float64(loc) - 0.5, scale=np.float64(scale))
  return tfd.QuantizedDistribution(shifted, low=np.float64(0.0), high=np.float64(255.0))


class DiscretizedLogisticTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(
    ("middle", 127.3, 2.0),
    ("narrow", 40.0, 1e-3),
    ("wide", 10.0, 300.0),
    ("far_below", -500.0, 1.0),
    ("far_above", 900.0, 0.5),
    ("edge", 0.2, 0.7),
  )
  def test_probabilities_sum_to_one(self, loc, scale):
    probs = DiscretizedLogistic(loc, scale).prob(SUPPORT)
    self.assertAllClose(tf.reduce_sum(probs), 1.0, atol=1e-5)

  @parameterized.named_parameters(("a", 127.3, 2.0), ("b", 3.0, 10.0), ("c", 250.0, 4.0))
  def test_agrees_with_quantized_logistic(self, loc, scale):
    ours = DiscretizedLogistic(loc, scale).log_prob(SUPPORT[:, 0])
    reference = quantized_reference(loc, scale).log_prob(np.arange(256.0))
    # The reference subtracts CDFs in float64; compare where its mass is not vanishingly small.
    accurate = reference > -30.0
    self.assertGreater(int(tf.reduce_sum(tf.cast(accurate, tf.int32))), 5)
    self.assertAllClose(
      tf.boolean_mask(ours, accurate),
      tf.cast(tf.boolean_mask(reference, accurate), tf.float32),
      rtol=1e-4,
      atol=1e-4,
    )

  def test_finite_values_and_gradients_at_extremes(self):
    locs = tf.constant([-1e4, -50.0, 0.0, 127.0, 255.0, 300.0, 1e4])
    scales = tf.constant([1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e3, 1e4])
    x = tf.constant([0.0, 1.0, 128.0, 254.0, 255.0])[:, None]
    loc, scale = tf.Variable(locs), tf.Variable(scales)
    with tf.GradientTape() as tape:
      log_prob = DiscretizedLogistic(loc, scale).log_prob(x)
      total = tf.reduce_sum(log_prob)
    grads = tape.gradient(total, [loc, scale])
    self.assertAllEqual(tf.math.is_finite(log_prob), tf.ones_like(log_prob, tf.bool))
    for grad in grads:
      self.assertAllEqual(tf.math.is_finite(grad), tf.ones_like(grad, tf.bool))
    # The bin that holds all the mass has log-probability 0 at a tiny scale.
    self.assertAllClose(DiscretizedLogistic(127.0, 1e-3).log_prob(127.0), 0.0, atol=1e-6)

  def test_sample_frequencies_match_probabilities(self):
    dist = DiscretizedLogistic(5.0, 1.5, num_bins=12)
    samples = dist.sample(40000, seed=[4, 2]).numpy()
    self.assertAllEqual(samples, np.round(samples))
    frequencies = np.bincount(samples.astype(int), minlength=12) / samples.size
    probs = dist.prob(tf.range(12.0)).numpy()
    standard_error = np.sqrt(probs * (1 - probs) / samples.size)
    self.assertAllLessEqual(np.abs(frequencies - probs) - 5 * standard_error, 0.0)

  def test_mean_is_the_expectation_over_the_support(self):
    dist = DiscretizedLogistic([3.0, 250.0, 100.0], [10.0, 20.0, 1.0])
    probs = dist.prob(SUPPORT)
    self.assertAllClose(dist.mean(), tf.reduce_sum(SUPPORT * probs, axis=0), rtol=1e-5)
    self.assertEqual(dist.batch_shape, [3])
    self.assertEqual(dist[1:].batch_shape, [2])

  def test_validation_messages(self):
    dist = DiscretizedLogistic(1.0, 1.0, validate_args=True)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "expected integer values"):
      dist.log_prob(0.5)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "expected values <= 255"):
      dist.log_prob(256.0)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "expected values >= 0"):
      dist.log_prob(-1.0)
    with self.assertRaisesRegex(ValueError, "num_bins must be an integer >= 2"):
      DiscretizedLogistic(1.0, 1.0, num_bins=1)

  def test_runs_under_xla(self):
    fn = tf.function(lambda loc: DiscretizedLogistic(loc, 2.0).log_prob(SUPPORT), jit_compile=True)
    self.assertAllClose(fn(tf.constant([7.0])), DiscretizedLogistic([7.0], 2.0).log_prob(SUPPORT))


class DiscretizedLogisticMixtureTest(tf.test.TestCase, parameterized.TestCase):
  def test_one_component_equals_single_distribution(self):
    locs, scales = tf.constant([[12.0], [200.0]]), tf.constant([[3.0], [0.01]])
    mixture = DiscretizedLogisticMixture(tf.zeros([2, 1]), locs, scales)
    single = DiscretizedLogistic(locs[:, 0], scales[:, 0])
    self.assertAllClose(mixture.log_prob(SUPPORT), single.log_prob(SUPPORT), atol=1e-5)
    self.assertAllClose(mixture.mean(), single.mean(), rtol=1e-5)

  def test_sums_to_one_and_is_weighted_sum(self):
    logits = tf.constant([[0.3, -1.0, 2.0]])
    locs, scales = tf.constant([[10.0, 128.0, 250.0]]), tf.constant([[1.0, 30.0, 0.01]])
    mixture = DiscretizedLogisticMixture(logits, locs, scales)
    self.assertEqual(mixture.batch_shape, [1])
    self.assertAllClose(tf.reduce_sum(mixture.prob(SUPPORT)), 1.0, atol=1e-5)
    weights = tf.nn.softmax(logits)
    by_hand = tf.reduce_sum(weights * DiscretizedLogistic(locs, scales).prob(SUPPORT[..., None]), -1)
    self.assertAllClose(mixture.prob(SUPPORT), by_hand, atol=1e-7)

  def test_sample_frequencies(self):
    mixture = DiscretizedLogisticMixture([0.0, 0.0], [2.0, 8.0], [0.5, 0.5], num_bins=11)
    samples = mixture.sample(20000, seed=[1, 1]).numpy().astype(int)
    frequencies = np.bincount(samples, minlength=11) / samples.size
    probs = mixture.prob(tf.range(11.0)).numpy()
    self.assertAllClose(frequencies, probs, atol=0.015)

  def test_finite_gradients_at_extremes(self):
    locs = tf.Variable([[-1e3, 1e3, 127.0]])
    scales = tf.Variable([[1e-3, 1e-3, 1e-3]])
    with tf.GradientTape() as tape:
      log_prob = DiscretizedLogisticMixture(tf.zeros([1, 3]), locs, scales).log_prob(
        tf.constant([[0.0], [64.0], [255.0]])
      )
      total = tf.reduce_sum(log_prob)
    self.assertTrue(np.all(np.isfinite(log_prob.numpy())))
    for grad in tape.gradient(total, [locs, scales]):
      self.assertTrue(np.all(np.isfinite(grad.numpy())))


def test_normal_decoder_dequantized_data_and_bits_per_dim():
  import scipy.stats
  import sonnet as snt

  decoder = tfpvi.decoders.NormalMLP([8], [4, 4, 1], min_scale=0.01)
  z = tf.random.stateless_normal([3, 2, 5], seed=[1, 1])
  likelihood = decoder(z)
  assert likelihood.batch_shape == [3, 2] and likelihood.event_shape == [4, 4, 1]
  x = tf.random.stateless_uniform([2, 4, 4, 1], seed=[2, 2])
  loc, scale = likelihood.distribution.loc.numpy(), likelihood.distribution.scale.numpy()
  expected = scipy.stats.norm(loc, scale).logpdf(np.broadcast_to(x.numpy(), loc.shape)).sum(axis=(2, 3, 4))
  np.testing.assert_allclose(likelihood.log_prob(x), expected, rtol=1e-5)
  assert np.all(scale >= 0.01)
  # Dequantized 8-bit levels lie in [0, 1) with the level recoverable; a uniform density on [0, 1] is 8 bits.
  levels = np.random.default_rng(0).integers(0, 256, size=[6, 4, 4, 1]).astype(np.uint8)
  x = tfpvi.data.dequantize(levels, tf.constant([0, 1]))
  assert np.all((x.numpy() >= 0) & (x.numpy() < 1)) and np.array_equal(np.floor(x.numpy() * 256), levels)
  assert float(tfpvi.evaluation.bits_per_dim(0.0, 16, dequantized_levels=256)) == 8.0
  with pytest.raises(tf.errors.InvalidArgumentError, match="expected integer levels in \\[0, 255\\]"):
    tfpvi.data.dequantize(levels / 255.0, tf.constant([0, 1]))
  # It trains as any decoder, and its folder is rebuilt by load_model.
  model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([8], 5), decoder, tfpvi.standard_normal_prior(5))
  import tempfile

  folder = tempfile.mkdtemp()
  tfpvi.train.fit(
    model,
    tfpvi.objectives.elbo,
    levels.astype(np.float32),
    optimizer=snt.optimizers.Adam(1e-3),
    steps=2,
    batch_size=3,
    preprocess=tfpvi.data.dequantize,
    output_dir=folder,
    logging=tfpvi.train.Logging(progress=False),
  )
  restored = tfpvi.load_model(folder)
  np.testing.assert_array_equal(restored.decoder(z).mean(), model.decoder(z).mean())
