"""Jackknife variational inference against the linear-Gaussian truth."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import tfpvi
from tfpvi.jackknife import jackknife, jackknife_coefficients, leave_out_log_mean


class JackknifeTest(tf.test.TestCase, parameterized.TestCase):

  def test_coefficients_sum_to_one_and_match_the_classic_jackknife(self):
    for k in (5, 50):
      for m in range(4):
        self.assertAllClose(sum(jackknife_coefficients(k, m)), 1.0)
    self.assertAllClose(jackknife_coefficients(10, 1), [10.0, -9.0])

  def test_order_zero_is_the_iwae_bound(self):
    log_weights = tf.random.stateless_normal([7, 3], seed=[1, 1])
    self.assertAllClose(jackknife(log_weights, 0), tf.reduce_logsumexp(log_weights, 0) - np.log(7.0))

  @parameterized.parameters(1, 2, 3)
  def test_windows_equal_all_subsets_in_expectation_and_exactly_for_j1(self, j):
    log_weights = tf.random.stateless_normal([9, 2000], seed=[2, 2])
    windows = leave_out_log_mean(log_weights, j, "windows")
    exhaustive = leave_out_log_mean(log_weights, j, "all")
    if j == 1:
      self.assertAllClose(windows, exhaustive, atol=1e-5)
    difference = windows - exhaustive
    tolerance = 4 * float(tf.math.reduce_std(difference)) / np.sqrt(2000) + 1e-6
    self.assertLess(abs(float(tf.reduce_mean(difference))), tolerance)

  def test_leave_one_out_is_stable_when_one_weight_dominates(self):
    log_weights = tf.constant([[0.0], [-60.0], [-60.0]])
    expected = np.log((2 * np.exp(-60.0) + 1.0) / 2.0) * 2 / 3 + (-60.0) / 3
    self.assertAllClose(leave_out_log_mean(log_weights, 1), [expected], rtol=1e-5)

  def test_jvi_reduces_bias_on_linear_gaussian(self):
    truth = tfpvi.LinearGaussian.random(data_size=6, latent_size=3, noise_scale=0.6, seed=11)
    x = truth.sample(200, seed=[3, 3])
    model = truth.as_vae(truth.perturbed_posterior(shift=0.3, scale_factor=1.5))
    exact = tf.tile(truth.log_marginal(x), [25])
    k = 8
    log_weights = tf.concat([model.log_weights(x, k, seed=[k, r]) for r in range(25)], axis=1)  # [K, 5000]
    errors = {m: jackknife(log_weights, m) - exact for m in (0, 1)}
    bias = {m: float(tf.reduce_mean(e)) for m, e in errors.items()}
    se = {m: float(tf.math.reduce_std(e)) / np.sqrt(5000.0) for m, e in errors.items()}
    # IWAE is biased low by O(1/K); JVI-1's bias is O(1/K^2): at least 3x smaller here.
    self.assertLess(bias[0] + 4 * se[0], 0.0)
    self.assertLess(abs(bias[1]) + 2 * se[1], abs(bias[0]) / 3, msg=f"bias {bias}, se {se}")

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, r"order must be in \[0, K-1\]"):
      jackknife(tf.zeros([3, 2]), 3)
    with self.assertRaisesRegex(ValueError, "use subsets='windows'"):
      leave_out_log_mean(tf.zeros([200, 1]), 3, "all")


def _numpy_jackknife_float64(log_weights, order):
  """Reference: windowed leave-j-out log means and the jackknife sum, all in float64 numpy."""
  log_weights = np.asarray(log_weights, np.float64)
  k = log_weights.shape[0]

  def log_mean(w):
    top = w.max(axis=0)
    return top + np.log(np.mean(np.exp(w - top), axis=0))

  total = 0.0
  for j, c in enumerate(jackknife_coefficients(k, order)):
    if j == 0:
      term = log_mean(log_weights)
    else:
      term = np.mean([log_mean(np.delete(log_weights, range(i, i + j), axis=0)) for i in range(k - j + 1)], axis=0)
    total = total + c * term
  return total


class JackknifePrecisionTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(64, 128)
  def test_order_three_matches_a_float64_reference(self, k):
    # Log weights of a trained VAE's size: log p(x) near -90 nats, spread of a few nats.
    log_weights = -90.0 + 3.0 * tf.random.stateless_normal([k, 50], seed=[7, k])  # float32, as models give
    expected = _numpy_jackknife_float64(log_weights.numpy(), 3)
    actual = jackknife(log_weights, 3)
    self.assertEqual(actual.dtype, tf.float32)
    # float32 output of a float64 computation: a few ulps of 90 (float32 sums erred by 1-25 nats here).
    self.assertAllClose(actual, expected, atol=1e-4, rtol=0)
    self.assertAllClose(jackknife(tf.cast(log_weights, tf.float64), 3), expected, atol=1e-6, rtol=0)

  def test_rejects_a_non_integer_order(self):
    with self.assertRaisesRegex(ValueError, "order must be a Python int"):
      jackknife(tf.zeros([5, 2]), True)
