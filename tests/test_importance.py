"""The importance-sampling toolkit and Pareto k-hat against exact answers."""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi
from tfpvi.evaluation import importance, pareto_khat

tfd = tfp.distributions


class ExpectationTest(tf.test.TestCase):
  def test_rare_event_probability_of_an_exponential(self):
    p, q = tfd.Exponential(rate=1.0), tfd.Exponential(rate=0.1)
    estimate = importance.expectation(lambda x: tf.cast(x > 10.0, tf.float32), p, q, 200_000, seed=[1, 2])
    exact = math.exp(-10.0)
    self.assertLess(abs(float(estimate.value) - exact), 4 * float(estimate.standard_error))
    self.assertLess(float(estimate.standard_error), 0.02 * exact)
    naive = importance.expectation(lambda x: tf.cast(x > 10.0, tf.float32), p, p, 200_000, seed=[1, 2])
    self.assertEqual(float(naive.effective_sample_size), 200_000.0)  # q = p: all weights 1

  def test_gaussian_moments_plain_and_self_normalized(self):
    p = tfd.Normal(1.5, 0.7)
    q = tfd.StudentT(df=4.0, loc=1.0, scale=1.2)
    f = lambda x: tf.stack([x, tf.square(x)], axis=-1)
    exact = np.array([1.5, 1.5**2 + 0.7**2])
    for self_normalized in (False, True):
      estimate = importance.expectation(f, p, q, 100_000, self_normalized=self_normalized, seed=[3, 4])
      self.assertAllLessEqual(np.abs(estimate.value.numpy() - exact) - 4 * estimate.standard_error.numpy(), 0.0)
    # Self-normalized IS accepts an unnormalized nominal density.
    unnormalized = lambda x: p.log_prob(x) + 123.0
    estimate = importance.expectation(f, unnormalized, q, 100_000, self_normalized=True, seed=[3, 4])
    self.assertAllLessEqual(np.abs(estimate.value.numpy() - exact) - 4 * estimate.standard_error.numpy(), 0.0)
    self.assertAllInRange(estimate.effective_sample_size, 1.0, 100_000.0)

  def test_running_estimates_end_at_the_full_estimate(self):
    p, q = tfd.Normal(0.0, 1.0), tfd.Normal(0.5, 1.5)
    x = q.sample(5000, seed=[5, 5])
    values, log_weights = tf.square(x), p.log_prob(x) - q.log_prob(x)
    running = importance.running_estimates(values, log_weights, [10, 100, 5000])
    full = importance.estimate_from_log_weights(values, log_weights)
    self.assertAllClose(running.value[-1], full.value, rtol=1e-4)
    self.assertAllClose(running.standard_error[-1], full.standard_error, rtol=1e-3)

  def test_compiles_with_xla(self):
    fn = tf.function(
      lambda seed: (
        importance.expectation(tf.identity, tfd.Normal(2.0, 1.0), tfd.Normal(1.0, 2.0), 10_000, seed=seed).value
      ),
      jit_compile=True,
    )
    self.assertAllClose(fn(tf.constant([1, 1])), 2.0, atol=0.1)


class ParetoKhatTest(tf.test.TestCase):
  def _khat_of_pareto_weights(self, shape, num=5000, replicates=40):
    # Weights w = U^(-shape) have a Pareto tail with k = shape.
    u = tf.random.stateless_uniform([replicates, num], seed=[7, 7], minval=1e-12)
    log_w = -shape * tf.math.log(u)
    tail = tfpvi.evaluation.pareto_tail_size(num) + 1
    largest = tf.math.top_k(log_w, k=tail).values
    return pareto_khat(largest).numpy()

  def test_recovers_the_tail_index(self):
    for shape in (0.3, 0.6, 0.9):
      khat = self._khat_of_pareto_weights(shape)
      self.assertAllClose(np.mean(khat), shape, atol=0.08)

  def test_light_tails_are_flagged_reliable(self):
    log_w = tf.random.stateless_normal([20, 5000], seed=[1, 1]) * 0.5
    largest = tf.math.top_k(log_w, k=tfpvi.evaluation.pareto_tail_size(5000) + 1).values
    self.assertAllLess(pareto_khat(largest), 0.5)

  def test_evaluate_dataset_reports_diagnostics(self):
    truth = tfpvi.LinearGaussian.random(data_size=6, latent_size=3, noise_scale=0.6, seed=11)
    x = truth.sample(30, seed=[3, 3]).numpy()
    summary, per_example = tfpvi.evaluation.evaluate_dataset(
      truth.as_vae(truth.perturbed_posterior(0.1, 1.2)), x, 1000, batch_size=8, chunk_size=300
    )
    self.assertEqual(per_example["log_px"].shape, (30,))
    exact = truth.log_marginal(x).numpy()
    self.assertLess(abs(summary["log_px"] - exact.mean()), 4 * summary["monte_carlo_standard_error"] + 0.01)
    for key in ("ess_mean", "khat_mean", "khat_fraction_above_0_7", "bits_per_dim"):
      self.assertIn(key, summary)
    self.assertAllInRange(per_example["effective_sample_size"], 1.0, 1000.0)
