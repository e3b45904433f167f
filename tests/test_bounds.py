"""Renyi, MIWAE, PIWAE and CIWAE bounds: identities with ELBO/IWAE, references, gradients (eager and XLA)."""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized
from helpers import binary_images, small_bernoulli_vae
from structured_models import TinyCategorical

import tfpvi
from tfpvi import objectives

tfd = tfp.distributions
SEED = (4, 2)


def flat(grads):
  return np.concatenate([g.numpy().ravel() for g in grads])


class AffineEncoder(tf.Module):
  """q(z|x) = N(A x + c, L L^T) with trainable A, c, L (shift moves it off the exact posterior)."""

  def __init__(self, truth, shift=0.0):
    super().__init__()
    matrix = tf.matmul(truth._posterior_covariance, truth.weights, transpose_b=True) / truth.noise_scale**2
    self.matrix = tf.Variable(matrix)
    self.offset = tf.Variable(-tf.linalg.matvec(matrix, truth.bias) + shift)
    self.scale_tril = tf.Variable(truth._posterior_scale_tril)

  def __call__(self, x):
    return tfd.MultivariateNormalTriL(tf.linalg.matvec(self.matrix, x) + self.offset, self.scale_tril)


class IdentityTest(tf.test.TestCase, parameterized.TestCase):
  """Every identity from the same draws (same seed), eagerly and under XLA."""

  def setUp(self):
    super().setUp()
    self.model = small_bernoulli_vae()
    self.x = binary_images()
    self.model.log_weights(self.x, 1)  # build the variables

  def values(self, jit):
    model, seed = self.model, tf.constant(SEED)

    def compute(x):
      elbo = lambda n: objectives.elbo(model, x, num_samples=n, kl="monte_carlo", seed=seed)  # noqa: E731
      iwae = lambda n: objectives.iwae(model, x, num_samples=n, seed=seed)  # noqa: E731
      return {
        "iwae5": iwae(5),
        "iwae6": iwae(6),
        "elbo5": elbo(5),
        "elbo6": elbo(6),
        "log_w6": model.log_weights(x, 6, seed=seed),
        "vr0": objectives.renyi(model, x, num_samples=5, alpha=0.0, seed=seed),
        "vr1": objectives.renyi(model, x, num_samples=5, alpha=1.0, seed=seed),
        "vr_near1": objectives.renyi(model, x, num_samples=5, alpha=1.0 - 1e-3, seed=seed),
        "vr_half6": objectives.renyi(model, x, num_samples=6, alpha=0.5, seed=seed),
        "vr_minus6": objectives.renyi(model, x, num_samples=6, alpha=-2.0, seed=seed),
        "vr_max6": objectives.renyi(model, x, num_samples=6, alpha=-math.inf, seed=seed),
        "miwae_1_5": objectives.miwae(model, x, num_groups=1, num_samples=5, seed=seed),
        "miwae_6_1": objectives.miwae(model, x, num_groups=6, num_samples=1, seed=seed),
        "miwae_2_3": objectives.miwae(model, x, num_groups=2, num_samples=3, seed=seed),
        "piwae_2_3": objectives.piwae(model, x, num_groups=2, num_samples=3, seed=seed),
        "ciwae1": objectives.ciwae(model, x, num_samples=5, beta=1.0, seed=seed),
        "ciwae0": objectives.ciwae(model, x, num_samples=5, beta=0.0, seed=seed),
        "ciwae_third6": objectives.ciwae(model, x, num_samples=6, beta=0.3, seed=seed),
      }

    if jit:
      compute = tf.function(compute, jit_compile=True)
    return {k: v.numpy() for k, v in compute(self.x).items()}

  @parameterized.named_parameters(("eager", False), ("xla", True))
  def test_identities(self, jit):
    v = self.values(jit)
    self.assertAllClose(v["vr0"], v["iwae5"], atol=1e-5)
    self.assertAllClose(v["vr1"], v["elbo5"], atol=1e-5)
    self.assertAllClose(v["vr_near1"], v["elbo5"], atol=0.05)  # VR_a - ELBO = O(1 - a)
    self.assertAllClose(v["miwae_1_5"], v["iwae5"], atol=1e-5)
    self.assertAllClose(v["miwae_6_1"], v["elbo6"], atol=1e-5)
    self.assertAllClose(v["ciwae1"], v["elbo5"], atol=1e-5)
    self.assertAllClose(v["ciwae0"], v["iwae5"], atol=1e-5)
    self.assertAllClose(v["piwae_2_3"], v["iwae6"], atol=1e-5)  # PIWAE's value is IWAE_MK

  @parameterized.named_parameters(("eager", False), ("xla", True))
  def test_against_numpy_references(self, jit):
    v = self.values(jit)
    log_w = v["log_w6"].astype(np.float64)  # [6, B], the same draws

    def log_mean_exp(a, axis):
      peak = a.max(axis, keepdims=True)
      return np.log(np.mean(np.exp(a - peak), axis)) + peak.squeeze(axis)

    self.assertAllClose(v["vr_half6"], log_mean_exp(0.5 * log_w, 0) / 0.5, atol=1e-4)
    self.assertAllClose(v["vr_minus6"], log_mean_exp(3.0 * log_w, 0) / 3.0, atol=1e-4)
    self.assertAllClose(v["vr_max6"], log_w.max(0), atol=1e-5)
    self.assertAllClose(v["miwae_2_3"], log_mean_exp(log_w.reshape(2, 3, -1), 1).mean(0), atol=1e-4)
    self.assertAllClose(v["ciwae_third6"], 0.3 * log_w.mean(0) + 0.7 * log_mean_exp(log_w, 0), atol=1e-4)

  def test_vr_is_monotone_in_alpha(self):
    v = self.values(False)
    order = [v["elbo6"], v["vr_half6"], v["iwae6"], v["vr_minus6"], v["vr_max6"]]
    for lower, upper in zip(order, order[1:]):
      self.assertAllLessEqual(lower - upper, 1e-4)

  def test_return_terms(self):
    terms = objectives.renyi(self.model, self.x, num_samples=4, alpha=0.5, return_terms=True, seed=SEED)
    self.assertEqual(set(terms), {"objective", "log_likelihood", "kl"})
    self.assertEqual(terms["objective"].shape, [6])


class GradientTest(tf.test.TestCase, parameterized.TestCase):
  def setUp(self):
    super().setUp()
    self.model = small_bernoulli_vae()
    self.x = binary_images()
    self.model.log_weights(self.x, 1)

  def grads(self, fn, variables=None):
    variables = variables or self.model.trainable_variables
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(fn(self.model, self.x))
    return flat(tape.gradient(loss, variables))

  @parameterized.parameters("reparam", "stl", "dreg")
  def test_vr0_miwae1_ciwae0_gradients_are_iwaes(self, estimator):
    reference = self.grads(lambda m, x: objectives.iwae(m, x, num_samples=5, gradient_estimator=estimator, seed=SEED))
    for fn in (
      lambda m, x: objectives.renyi(m, x, num_samples=5, alpha=0.0, gradient_estimator=estimator, seed=SEED),
      lambda m, x: objectives.miwae(m, x, num_groups=1, num_samples=5, gradient_estimator=estimator, seed=SEED),
      lambda m, x: objectives.piwae(m, x, num_groups=1, num_samples=5, gradient_estimator=estimator, seed=SEED),
      lambda m, x: objectives.ciwae(m, x, num_samples=5, beta=0.0, gradient_estimator=estimator, seed=SEED),
    ):
      self.assertAllClose(self.grads(fn), reference, atol=1e-5, rtol=1e-4)

  @parameterized.parameters("reparam", "stl")
  def test_vr1_and_ciwae1_gradients_are_the_monte_carlo_elbos(self, estimator):
    reference = self.grads(
      lambda m, x: objectives.elbo(m, x, num_samples=5, kl="monte_carlo", gradient_estimator=estimator, seed=SEED)
    )
    self.assertAllClose(
      self.grads(
        lambda m, x: objectives.renyi(m, x, num_samples=5, alpha=1.0, gradient_estimator=estimator, seed=SEED)
      ),
      reference,
      atol=1e-5,
      rtol=1e-4,
    )
    self.assertAllClose(
      self.grads(lambda m, x: objectives.ciwae(m, x, num_samples=5, beta=1.0, gradient_estimator=estimator, seed=SEED)),
      reference,
      atol=1e-5,
      rtol=1e-4,
    )

  def test_dreg_at_alpha_one_is_stl(self):
    stl = self.grads(lambda m, x: objectives.renyi(m, x, num_samples=5, alpha=1.0, gradient_estimator="stl", seed=SEED))
    self.assertAllClose(
      self.grads(lambda m, x: objectives.renyi(m, x, num_samples=5, alpha=1.0, gradient_estimator="dreg", seed=SEED)),
      stl,
      atol=1e-5,
      rtol=1e-4,
    )

  def test_piwae_splits_decoder_and_encoder_gradients(self):
    encoder, decoder = self.model.encoder.trainable_variables, self.model.decoder.trainable_variables
    piwae = lambda m, x: objectives.piwae(m, x, num_groups=2, num_samples=3, seed=SEED)  # noqa: E731
    self.assertAllClose(
      self.grads(piwae, decoder),
      self.grads(lambda m, x: objectives.iwae(m, x, num_samples=6, seed=SEED), decoder),
      atol=1e-5,
      rtol=1e-4,
    )
    self.assertAllClose(
      self.grads(piwae, encoder),
      self.grads(lambda m, x: objectives.miwae(m, x, num_groups=2, num_samples=3, seed=SEED), encoder),
      atol=1e-5,
      rtol=1e-4,
    )

  def test_gradients_under_xla_match_eager(self):
    variables = self.model.trainable_variables

    def gradient(x):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(
          objectives.renyi(self.model, x, num_samples=4, alpha=0.5, gradient_estimator="dreg", seed=SEED)
          + objectives.piwae(self.model, x, num_groups=2, num_samples=2, gradient_estimator="dreg", seed=SEED)
        )
      return tape.gradient(loss, variables)

    compiled = flat(tf.function(gradient, jit_compile=True)(self.x))
    self.assertTrue(np.all(np.isfinite(compiled)))
    self.assertGreater(np.abs(compiled).max(), 0.0)


class ExactPosteriorTest(tf.test.TestCase, parameterized.TestCase):
  """q = p(z|x): every log w equals log p(x); STL and DReG encoder gradients vanish for every bound."""

  BOUNDS = {
    "vr_half": lambda m, x, e: objectives.renyi(m, x, num_samples=6, alpha=0.5, gradient_estimator=e, seed=SEED),
    "vr_minus": lambda m, x, e: objectives.renyi(m, x, num_samples=6, alpha=-1.0, gradient_estimator=e, seed=SEED),
    "miwae": lambda m, x, e: objectives.miwae(m, x, num_groups=2, num_samples=3, gradient_estimator=e, seed=SEED),
    "piwae": lambda m, x, e: objectives.piwae(m, x, num_groups=2, num_samples=3, gradient_estimator=e, seed=SEED),
    "ciwae": lambda m, x, e: objectives.ciwae(m, x, num_samples=6, beta=0.5, gradient_estimator=e, seed=SEED),
  }

  @parameterized.product(bound=sorted(BOUNDS), estimator=("reparam", "stl", "dreg"))
  def test_exact_and_zero_encoder_gradient(self, bound, estimator):
    truth = tfpvi.LinearGaussian.random(data_size=5, latent_size=2, noise_scale=0.7, seed=3)
    encoder = AffineEncoder(truth)
    model = truth.as_vae(encoder)
    x = truth.sample(8, seed=[7, 7])
    with tf.GradientTape() as tape:
      value = self.BOUNDS[bound](model, x, estimator)
      loss = -tf.reduce_mean(value)
    self.assertAllClose(value, truth.log_marginal(x), atol=2e-3)
    norm = float(tf.linalg.global_norm(tape.gradient(loss, encoder.trainable_variables)))
    if estimator == "reparam":
      self.assertGreater(norm, 0.1)
    else:
      self.assertLess(norm, 1e-4)


class DregUnbiasedTest(tf.test.TestCase):
  def test_renyi_dreg_and_reparam_agree_in_mean(self):
    truth = tfpvi.LinearGaussian.random(data_size=5, latent_size=2, noise_scale=0.7, seed=3)
    encoder = AffineEncoder(truth, shift=0.4)
    model = truth.as_vae(encoder)
    x = truth.sample(4, seed=[7, 7])

    @tf.function
    def gradient(estimator, seed):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(
          objectives.renyi(model, x, num_samples=6, alpha=0.5, gradient_estimator=estimator, seed=seed)
        )
      return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, encoder.trainable_variables)], 0)

    draws = {e: np.stack([gradient(e, tf.constant([r, 5])).numpy() for r in range(200)]) for e in ("reparam", "dreg")}
    difference = draws["reparam"].mean(0) - draws["dreg"].mean(0)
    standard_error = np.sqrt((draws["reparam"].var(0) + draws["dreg"].var(0)) / 200)
    self.assertGreater(int((np.abs(draws["reparam"].mean(0)) > 3 * standard_error).sum()), 2)  # informative
    self.assertAllLessEqual(np.abs(difference) - 4.5 * standard_error - 1e-4, 0.0)


class _LogMeanExp(objectives.MultiSampleBound):
  """IWAE written as a user would: a value only, every weight by autodiff, no DReG weights."""

  def value(self, log_w):
    return tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(tf.shape(log_w)[0], log_w.dtype))


class UserBoundTest(tf.test.TestCase, parameterized.TestCase):
  """A new bound is a small subclass: its autodiff weights give IWAE's gradients for every estimator."""

  def setUp(self):
    super().setUp()
    self.model, self.x = small_bernoulli_vae(), binary_images()
    self.model.log_weights(self.x, 1)

  def grads(self, fn):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(fn())
    return flat(tape.gradient(loss, self.model.trainable_variables))

  @parameterized.parameters("reparam", "stl", "vimco")
  def test_value_only_bound_matches_iwae(self, estimator):
    mine = lambda: _LogMeanExp()(self.model, self.x, num_samples=5, gradient_estimator=estimator, seed=SEED)  # noqa: E731
    iwae = lambda: objectives.iwae(self.model, self.x, num_samples=5, gradient_estimator=estimator, seed=SEED)  # noqa: E731
    self.assertAllClose(mine(), iwae(), atol=1e-5)
    self.assertAllClose(self.grads(mine), self.grads(iwae), atol=1e-5, rtol=1e-4)

  def test_autodiff_weights_are_the_closed_forms(self):
    log_w = tf.random.stateless_normal([6, 4], seed=[1, 2]) * 3.0
    for bound in (
      objectives.IWAE(),
      objectives.Renyi(0.5),
      objectives.MIWAE(2),
      objectives.CIWAE(0.3),
      objectives.VRMax(),
    ):
      autodiff = objectives.MultiSampleBound.weights(bound, log_w)
      self.assertAllClose(bound.weights(log_w), autodiff, atol=1e-6, msg=repr(bound))

  def test_dreg_needs_dreg_weights(self):
    with self.assertRaisesRegex(ValueError, "_LogMeanExp.*defines none.*dreg_weights"):
      _LogMeanExp()(self.model, self.x, num_samples=3, gradient_estimator="dreg")


class VimcoUnbiasedTest(tf.test.TestCase, parameterized.TestCase):
  """VIMCO's leave-one-out signal applies to any bound: its mean gradient is the reparameterized one."""

  @parameterized.parameters(("renyi", 6), ("miwae", 3))
  def test_agrees_with_reparam_in_mean(self, name, num_samples):
    truth = tfpvi.LinearGaussian.random(data_size=5, latent_size=2, noise_scale=0.7, seed=3)
    encoder = AffineEncoder(truth, shift=0.4)
    model = truth.as_vae(encoder)
    x = truth.sample(4, seed=[7, 7])
    bound = objectives.Renyi(0.5) if name == "renyi" else objectives.MIWAE(2)

    @tf.function
    def gradient(estimator, seed):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(bound(model, x, num_samples=num_samples, gradient_estimator=estimator, seed=seed))
      return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, encoder.trainable_variables)], 0)

    draws = {e: np.stack([gradient(e, tf.constant([r, 5])).numpy() for r in range(300)]) for e in ("reparam", "vimco")}
    difference = draws["reparam"].mean(0) - draws["vimco"].mean(0)
    standard_error = np.sqrt((draws["reparam"].var(0) + draws["vimco"].var(0)) / 300)
    self.assertGreater(int((np.abs(draws["reparam"].mean(0)) > 3 * standard_error).sum()), 1)  # informative
    self.assertAllLessEqual(np.abs(difference) - 4.5 * standard_error - 1e-4, 0.0)


class ErrorTest(tf.test.TestCase, parameterized.TestCase):
  def setUp(self):
    super().setUp()
    self.model, self.x = small_bernoulli_vae(), binary_images()

  @parameterized.parameters(math.inf, math.nan, "0.5", True)
  def test_bad_alpha(self, alpha):
    with self.assertRaisesRegex(ValueError, "alpha must be"):
      objectives.renyi(self.model, self.x, num_samples=3, alpha=alpha)

  @parameterized.parameters(-0.1, 1.5, None)
  def test_bad_beta(self, beta):
    with self.assertRaisesRegex(ValueError, r"beta must be a Python float in \[0, 1\]"):
      objectives.ciwae(self.model, self.x, num_samples=3, beta=beta)

  def test_bad_counts(self):
    with self.assertRaisesRegex(ValueError, "num_groups must be >= 1, got 0"):
      objectives.miwae(self.model, self.x, num_groups=0, num_samples=3)
    with self.assertRaisesRegex(ValueError, "num_samples must be >= 1, got 0"):
      objectives.renyi(self.model, self.x, num_samples=0, alpha=0.5)

  def test_estimators(self):
    with self.assertRaisesRegex(ValueError, "one of 'reparam', 'stl', 'dreg', 'vimco'.*got 'score'"):
      objectives.renyi(self.model, self.x, num_samples=3, alpha=0.5, gradient_estimator="score")
    with self.assertRaisesRegex(ValueError, "vimco.*num_samples >= 2.*got 1"):
      objectives.ciwae(self.model, self.x, num_samples=1, beta=0.5, gradient_estimator="vimco")
    with self.assertRaisesRegex(ValueError, "dreg.*VR-max"):
      objectives.vr_max(self.model, self.x, num_samples=3, gradient_estimator="dreg")
    with self.assertRaisesRegex(ValueError, "dreg.*VR-max"):
      objectives.renyi(self.model, self.x, num_samples=3, alpha=-math.inf, gradient_estimator="dreg")
    with self.assertRaisesRegex(TypeError, "takes 2 positional arguments"):
      objectives.iwae(self.model, self.x, 3)  # options after the data are keyword-only

  def test_non_reparameterized_q_raises(self):
    with self.assertRaisesRegex(ValueError, "reparameterization_type"):
      objectives.miwae(TinyCategorical().vae(), tf.ones([2, 1]), num_groups=2, num_samples=2)

  def test_vimco_trains_a_non_reparameterized_q_for_any_bound(self):
    tiny = TinyCategorical()
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(
        objectives.miwae(
          tiny.vae(), tf.ones([2, 1]), num_groups=2, num_samples=2, gradient_estimator="vimco", seed=SEED
        )
      )
    gradients = tape.gradient(loss, [tiny.q_logits, tiny.weights])
    self.assertTrue(gradients and all(g is not None for g in gradients))
    self.assertTrue(all(np.all(np.isfinite(g)) for g in gradients))
