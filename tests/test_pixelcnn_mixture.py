"""PixelCNNMixture against exact sums over its support, a float64 reference and TFP compositions."""

import itertools

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized

from tfpvi.distributions import DiscretizedLogistic, DiscretizedLogisticMixture, PixelCNNMixture

tfd = tfp.distributions


def random_params(batch, height, width, channels, components, num_bins, seed=0, coupling=0.6):
  rng = np.random.default_rng(seed)
  pairs = channels * (channels - 1) // 2
  return dict(
    mixture_logits=rng.normal(size=[*batch, height, width, components]).astype(np.float32),
    locs=rng.uniform(-1, num_bins, size=[*batch, height, width, channels, components]).astype(np.float32),
    scales=rng.uniform(0.2, 0.3 * num_bins, size=[*batch, height, width, channels, components]).astype(np.float32),
    coefficients=(coupling * rng.normal(size=[*batch, height, width, pairs, components])).astype(np.float32),
  )


def numpy_log_prob(x, p, num_bins):
  """Float64 reference for RGB, written out channel by channel (G on R; B on R and G)."""
  x = np.asarray(x, np.float64)[..., None]  # [..., H, W, 3, 1]
  locs, scales, coefs = (np.asarray(p[k], np.float64) for k in ("locs", "scales", "coefficients"))
  center = (num_bins - 1) / 2.0
  red, green = x[..., 0, :], x[..., 1, :]
  means = np.stack(
    np.broadcast_arrays(
      locs[..., 0, :],
      locs[..., 1, :] + coefs[..., 0, :] * (red - center),
      locs[..., 2, :] + coefs[..., 1, :] * (red - center) + coefs[..., 2, :] * (green - center),
    ),
    axis=-2,
  )

  def cdf(t):
    with np.errstate(over="ignore"):  # exp overflows to inf far in the tails: the cdf is then 0
      return 1.0 / (1.0 + np.exp(-(t - means) / scales))

  upper = np.where(x == num_bins - 1, 1.0, cdf(x + 0.5))
  lower = np.where(x == 0, 0.0, cdf(x - 0.5))
  mass = np.prod(upper - lower, axis=-2)  # [..., H, W, K]
  logits = np.asarray(p["mixture_logits"], np.float64)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  return np.log(np.sum(weights * mass, axis=-1)).sum(axis=(-2, -1))


def all_images(height, width, channels, num_bins):
  """Every image of the support, [num_bins^(H W C), H, W, C]."""
  values = np.array(list(itertools.product(range(num_bins), repeat=height * width * channels)), np.float32)
  return values.reshape(-1, height, width, channels)


def maybe_xla(fn, mode):
  return fn if mode == "eager" else tf.function(fn, jit_compile=True)


class PixelCNNMixtureTest(tf.test.TestCase, parameterized.TestCase):
  def test_shapes(self):
    p = random_params([4, 2], 5, 6, 3, 3, 256)
    d = PixelCNNMixture(**p)
    self.assertEqual(d.batch_shape, [4, 2])
    self.assertEqual(d.event_shape, [5, 6, 3])
    self.assertEqual(d.sample(7, seed=(0, 1)).shape, [7, 4, 2, 5, 6, 3])
    self.assertEqual(d.log_prob(tf.zeros([7, 1, 2, 5, 6, 3])).shape, [7, 4, 2])

  @parameterized.named_parameters(("eager", "eager"), ("xla", "xla"))
  def test_sums_to_one_over_the_support(self, mode):
    num_bins = 4
    p = random_params([2], 1, 2, 3, 3, num_bins, coupling=0.8)
    images = all_images(1, 2, 3, num_bins)[:, None]  # [4096, 1, 1, 2, 3]: every image, both batch members

    def total(images):
      return tf.reduce_sum(tf.exp(PixelCNNMixture(**p, num_bins=num_bins).log_prob(images)), axis=0)

    self.assertAllClose(maybe_xla(total, mode)(images), [1.0, 1.0], atol=1e-5)

  @parameterized.named_parameters(("eager", "eager"), ("xla", "xla"))
  def test_matches_float64_reference_with_coupling(self, mode):
    p = random_params([3], 2, 2, 3, 4, 256)
    x = np.random.default_rng(1).integers(0, 256, size=[5, 3, 2, 2, 3]).astype(np.float32)
    x[0] = 0.0  # both edge bins
    x[1] = 255.0
    ours = maybe_xla(lambda x: PixelCNNMixture(**p).log_prob(x), mode)(x)
    self.assertAllClose(ours, numpy_log_prob(x, p, 256), rtol=1e-4, atol=1e-3)

  def test_zero_coupling_equals_independent_channel_mixture(self):
    p = random_params([2], 3, 2, 3, 4, 256)
    p["coefficients"] = np.zeros_like(p["coefficients"])
    # sum_k pi_k prod_c DL(x_c; loc_ck, s_ck), composed from TFP pieces: components on the K axis.
    per_pixel = tfd.MixtureSameFamily(
      tfd.Categorical(logits=p["mixture_logits"]),
      tfd.Independent(
        DiscretizedLogistic(np.swapaxes(p["locs"], -1, -2), np.swapaxes(p["scales"], -1, -2)),
        reinterpreted_batch_ndims=1,
      ),
    )
    reference = tfd.Independent(per_pixel, reinterpreted_batch_ndims=2)
    x = np.random.default_rng(2).integers(0, 256, size=[4, 2, 3, 2, 3]).astype(np.float32)
    self.assertAllClose(PixelCNNMixture(**p).log_prob(x), reference.log_prob(x), rtol=1e-5, atol=1e-4)
    self.assertAllClose(
      PixelCNNMixture(**{**p, "coefficients": None}).log_prob(x), reference.log_prob(x), rtol=1e-5, atol=1e-4
    )

  def test_coupling_changes_green_and_blue_only(self):
    p = random_params([1], 1, 1, 3, 1, 256)
    x = np.array([[[[[200.0, 30.0, 90.0]]]]], np.float32)
    base = dict(p, coefficients=np.zeros_like(p["coefficients"]))
    shifted = dict(p, coefficients=np.ones_like(p["coefficients"]))
    # With K = 1 the pixel factorizes; red's factor does not depend on the coupling.
    red = DiscretizedLogistic(p["locs"][..., 0, 0], p["scales"][..., 0, 0]).log_prob(x[..., 0])[..., 0, 0]
    self.assertNotAllClose(PixelCNNMixture(**base).log_prob(x), PixelCNNMixture(**shifted).log_prob(x))
    center = 127.5
    green_loc = p["locs"][..., 1, 0] + (200.0 - center)
    blue_loc = p["locs"][..., 2, 0] + (200.0 - center) + (30.0 - center)
    green = DiscretizedLogistic(green_loc, p["scales"][..., 1, 0]).log_prob(30.0)[..., 0, 0]
    blue = DiscretizedLogistic(blue_loc, p["scales"][..., 2, 0]).log_prob(90.0)[..., 0, 0]
    self.assertAllClose(PixelCNNMixture(**shifted).log_prob(x), red + green + blue, rtol=1e-5)

  def test_one_channel_equals_discretized_logistic_mixture(self):
    p = random_params([2], 4, 3, 1, 5, 256)
    x = np.random.default_rng(3).integers(0, 256, size=[3, 2, 4, 3, 1]).astype(np.float32)
    reference = tfd.Independent(
      DiscretizedLogisticMixture(p["mixture_logits"][..., None, :], p["locs"], p["scales"]),
      reinterpreted_batch_ndims=3,
    )
    self.assertAllClose(PixelCNNMixture(**p).log_prob(x), reference.log_prob(x), rtol=1e-5, atol=1e-4)

  @parameterized.named_parameters(("eager", "eager"), ("xla", "xla"))
  def test_sample_frequencies_match_log_prob(self, mode):
    num_bins, n = 4, 40000
    p = random_params([], 1, 1, 3, 3, num_bins, seed=5, coupling=1.0)
    d = PixelCNNMixture(**p, num_bins=num_bins)
    samples = maybe_xla(lambda seed: d.sample(n, seed=seed), mode)(tf.constant([3, 4]))
    codes = np.asarray(samples).reshape(n, 3).astype(int) @ np.array([num_bins**2, num_bins, 1])
    counts = np.bincount(codes, minlength=num_bins**3)
    probs = np.exp(d.log_prob(all_images(1, 1, 3, num_bins)).numpy())
    self.assertAllClose(probs.sum(), 1.0, atol=1e-5)
    # Each count is Binomial(n, p): within 5 standard deviations (plus 1 for rounding at tiny p).
    tolerance = 5.0 * np.sqrt(n * probs * (1 - probs)) + 1.0
    self.assertAllLessEqual(np.abs(counts - n * probs) - tolerance, 0.0)

  def test_samples_are_integers_in_the_support(self):
    p = random_params([2], 3, 3, 3, 2, 256)
    p["locs"][..., 0, :] = 1e4  # far outside: clipped to the last bin
    x = PixelCNNMixture(**p).sample(5, seed=(1, 2)).numpy()
    self.assertAllEqual(x, np.round(x))
    self.assertAllInRange(x, 0.0, 255.0)
    self.assertAllEqual(x[..., 0], np.full_like(x[..., 0], 255.0))

  @parameterized.named_parameters(("eager", "eager"), ("xla", "xla"))
  def test_finite_values_and_gradients_at_extremes(self, mode):
    shape = [7, 1, 1, 3, 2]
    locs = np.array([-1e4, -50.0, 0.0, 127.0, 255.0, 300.0, 1e4], np.float32)[:, None, None, None, None]
    scales = np.array([1e-4, 1e-3, 1e-2, 1.0, 1e2, 1e3, 1e4], np.float32)[:, None, None, None, None]
    coefs = np.array([-1e3, -10.0, 0.0, 0.5, 10.0, 1e3, -1e3], np.float32)[:, None, None, None, None]
    logits = np.array([-1e4, -30.0, 0.0, 5.0, 30.0, 1e4, 0.0], np.float32)[:, None, None, None]
    variables = [
      tf.Variable(np.broadcast_to(logits, [7, 1, 1, 2]) * np.array([1.0, -1.0], np.float32)),
      tf.Variable(np.broadcast_to(locs, shape)),
      tf.Variable(np.broadcast_to(scales, shape)),
      tf.Variable(np.broadcast_to(coefs, shape)),
    ]
    x = tf.constant([0.0, 1.0, 128.0, 254.0, 255.0])[:, None, None, None, None] * tf.ones([1, 1, 1, 1, 3])

    def values_and_grads():
      with tf.GradientTape() as tape:
        log_prob = PixelCNNMixture(*variables).log_prob(x)  # [5, 7]
        total = tf.reduce_sum(log_prob)
      return log_prob, tape.gradient(total, variables)

    log_prob, grads = maybe_xla(values_and_grads, mode)()
    self.assertEqual(log_prob.shape, [5, 7])
    for value in [log_prob, *grads]:
      self.assertAllEqual(tf.math.is_finite(value), tf.ones_like(value, tf.bool))

  def test_bad_shapes_and_values_are_reported(self):
    p = random_params([2], 3, 3, 3, 2, 256)
    with self.assertRaisesRegex(ValueError, r"expected coefficients with shape \[\.\.\., 3, 2\]"):
      PixelCNNMixture(**{**p, "coefficients": p["coefficients"][..., :2, :]})
    with self.assertRaisesRegex(ValueError, "expected mixture_logits with trailing shape"):
      PixelCNNMixture(**{**p, "mixture_logits": p["mixture_logits"][..., :1]})
    with self.assertRaisesRegex(ValueError, "expected scales with trailing shape"):
      PixelCNNMixture(**{**p, "scales": p["scales"][..., :2, :]})
    with self.assertRaisesRegex(ValueError, "num_bins must be an integer >= 2"):
      PixelCNNMixture(**p, num_bins=1)
    d = PixelCNNMixture(**p, validate_args=True)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "expected integer values"):
      d.log_prob(tf.fill([2, 3, 3, 3], 0.5))


if __name__ == "__main__":
  tf.test.main()
