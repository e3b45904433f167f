"""Jackknife variational inference against the linear-Gaussian truth."""

import itertools

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized

import tfpvi
from tfpvi.evaluation.jackknife import jackknife, jackknife_coefficients, leave_out_log_mean


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
    self.assertAllClose(exhaustive, _reference_leave_out(log_weights.numpy(), j), atol=1e-9)
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
    with self.assertRaisesRegex(ValueError, r"C\(5000, 3\) = 2.08e\+10 subsets per example .*lower the order"):
      jackknife(tf.zeros([5000, 1]), 3)
    with self.assertRaisesRegex(ValueError, r"C\(200, 3\) = 1.31e\+06 subsets .*max_subsets=1e\+06"):
      leave_out_log_mean(tf.zeros([200, 1]), 3, "all", max_subsets=10**6)
    with self.assertRaisesRegex(ValueError, "subsets must be 'all' or 'windows'"):
      jackknife(tf.zeros([5, 1]), 2, subsets="some")


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
    actual = jackknife(log_weights, 3, subsets="windows")
    self.assertEqual(actual.dtype, tf.float32)
    # float32 output of a float64 computation: a few ulps of 90 (float32 sums erred by 1-25 nats here).
    self.assertAllClose(actual, expected, atol=1e-4, rtol=0)
    self.assertAllClose(jackknife(tf.cast(log_weights, tf.float64), 3, subsets="windows"), expected, atol=1e-6, rtol=0)

  def test_rejects_a_non_integer_order(self):
    with self.assertRaisesRegex(ValueError, "order must be a Python int"):
      jackknife(tf.zeros([5, 2]), True)


def _reference_leave_out(log_weights, j):
  """Independent float64 reference: every kept (K - j)-subset enumerated, its log-sum-exp taken directly."""
  log_weights = np.asarray(log_weights, np.float64)
  k = log_weights.shape[0]
  kept = np.array([c for c in itertools.combinations(range(k), k - j)])  # [C, K - j]
  gathered = log_weights[kept]  # [C, K - j, B]
  top = gathered.max(axis=1, keepdims=True)
  log_sums = top[:, 0] + np.log(np.exp(gathered - top).sum(axis=1))
  return log_sums.mean(axis=0) - np.log(k - j)


def _reference_jackknife(log_weights, order):
  return sum(
    c * _reference_leave_out(log_weights, j) for j, c in enumerate(jackknife_coefficients(log_weights.shape[0], order))
  )


class ExactJackknifeTest(tf.test.TestCase, parameterized.TestCase):
  """The complete average over subsets against a float64 enumeration of the kept subsets."""

  @parameterized.named_parameters(
    ("near_equal_k16_m3", 16, 3, "near_equal"),
    ("near_equal_k128_m2", 128, 2, "near_equal"),
    ("near_equal_k40_m3", 40, 3, "near_equal"),
    ("heavy_tailed_k16_m3", 16, 3, "heavy"),
    ("heavy_tailed_k128_m2", 128, 2, "heavy"),
    ("heavy_tailed_k40_m3", 40, 3, "heavy"),
  )
  def test_matches_enumeration(self, k, order, kind):
    rng = np.random.default_rng(k + order)
    if kind == "near_equal":
      log_weights = -100.0 + 0.1 * rng.normal(size=[k, 4])
    else:  # a few weights dominate by tens of nats (Student-t log weights)
      log_weights = -100.0 + 8.0 * rng.standard_t(2, size=[k, 4])
    expected = _reference_jackknife(log_weights, order)
    actual = jackknife(tf.constant(log_weights, tf.float64), order, chunk_size=777)  # several chunks
    # float64 rounding of each L_{K-j} (about 1e-14 of |log w|), amplified by the coefficients.
    tolerance = 1e-12 * sum(abs(c) for c in jackknife_coefficients(k, order)) * np.abs(log_weights).max()
    self.assertAllClose(actual, expected, atol=tolerance, rtol=0)
    if kind == "near_equal":  # every order is then within 1e-3 of log-mean-exp
      self.assertAllClose(actual, tfp.math.reduce_logmeanexp(log_weights, axis=0), atol=1e-3)

  def test_order_three_at_k128_near_equal_weights(self):
    # Windows were off by ~11 nats here; the exact average is within 1e-3 of log-mean-exp.
    log_weights = -100.0 + 0.1 * tf.random.stateless_normal([128, 3], seed=[5, 5], dtype=tf.float64)
    exact = jackknife(log_weights, 3)
    self.assertAllClose(exact, tfp.math.reduce_logmeanexp(log_weights, axis=0), atol=1e-3)
    self.assertEqual(jackknife(tf.cast(log_weights, tf.float32), 3).dtype, tf.float32)

  def test_one_dominant_weight_does_not_cancel(self):
    # w = [1, 1e-30, 1e-30, ...]: leaving the dominant weight out must give the tiny ones, not 0 or -inf.
    log_weights = np.concatenate([[0.0], np.full(9, -69.0)])[:, None]
    expected = _reference_leave_out(log_weights, 2)
    self.assertAllClose(leave_out_log_mean(log_weights, 2), expected, atol=1e-10)
    self.assertTrue(np.all(np.isfinite(jackknife(log_weights, 2))))
