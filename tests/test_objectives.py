"""ELBO, beta-VAE and IWAE against closed forms on a linear-Gaussian model."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized
from helpers import binary_images, small_bernoulli_vae

import tfpvi

tfd = tfp.distributions
objectives = tfpvi.objectives


def linear_gaussian_setup(num_examples=200):
  truth = tfpvi.LinearGaussian.random(data_size=5, latent_size=2, noise_scale=0.7, seed=3)
  x = truth.sample(num_examples, seed=[7, 7])
  return truth, x


class AffineEncoder(tf.Module):
  """q(z|x) = N(A x + c, L L^T) with trainable A, c, L, initialized at given values."""

  def __init__(self, matrix, offset, scale_tril):
    super().__init__()
    self.matrix = tf.Variable(matrix)
    self.offset = tf.Variable(offset)
    self.scale_tril = tf.Variable(scale_tril)

  def __call__(self, x):
    return tfd.MultivariateNormalTriL(tf.linalg.matvec(self.matrix, x) + self.offset, self.scale_tril)


def exact_affine_encoder(truth, shift=0.0):
  s2 = truth.noise_scale**2
  cov = truth._posterior_covariance
  matrix = tf.matmul(cov, truth.weights, transpose_b=True) / s2
  offset = -tf.linalg.matvec(matrix, truth.bias) + shift
  return AffineEncoder(matrix, offset, truth._posterior_scale_tril)


class KLAndLikelihoodTest(tf.test.TestCase):
  def test_analytic_kl_matches_monte_carlo(self):
    q = tfd.Independent(tfd.Normal([[0.5, -1.0], [2.0, 0.1]], [[0.3, 1.2], [0.8, 2.0]]), 1)
    prior = tfpvi.standard_normal_prior(2)
    z = q.sample(200000, seed=[1, 2])
    analytic = objectives.kl_divergence(q, prior, z, method="analytic")
    monte_carlo = objectives.kl_divergence(q, prior, z, method="monte_carlo")
    log_ratio = q.log_prob(z) - prior.log_prob(z)
    standard_error = tf.math.reduce_std(log_ratio, 0) / np.sqrt(200000.0)
    closed_form = 0.5 * tf.reduce_sum(
      q.distribution.scale**2 + q.distribution.loc**2 - 1 - 2 * tf.math.log(q.distribution.scale), -1
    )
    self.assertAllClose(analytic, closed_form, rtol=1e-5)
    self.assertAllLessEqual(tf.abs(monte_carlo - analytic) - 4 * standard_error, 0.0)

  def test_analytic_kl_raises_when_unregistered(self):
    q = tfd.Independent(tfd.Normal(tf.zeros([1, 2]), 1.0), 1)
    prior = tfd.MultivariateNormalDiag(tf.zeros(2))
    with self.assertRaisesRegex(NotImplementedError, "no KL registered"):
      objectives.kl_divergence(q, prior, q.sample(2, seed=[1, 1]), method="analytic")
    auto = objectives.kl_divergence(q, prior, q.sample(5, seed=[1, 1]), method="auto")
    self.assertEqual(auto.shape, [1])

  def test_bernoulli_log_likelihood_is_summed_binary_cross_entropy(self):
    decoder = tfpvi.decoders.BernoulliMLP([8], [4, 4, 1])
    x = binary_images()
    p = decoder(tf.random.stateless_normal([6, 3], seed=[1, 1]))
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=p.distribution.logits)
    self.assertAllClose(p.log_prob(x), -tf.reduce_sum(bce, [1, 2, 3]), rtol=1e-5)

  def test_beta_scales_only_the_kl(self):
    model, x = small_bernoulli_vae(), binary_images()
    terms = objectives.elbo(model, x, num_samples=3, beta=1.0, seed=[2, 2], return_terms=True)
    for beta in (0.0, 0.01, 4.0):
      value = objectives.elbo(model, x, num_samples=3, beta=beta, seed=[2, 2])
      self.assertAllClose(value, terms["log_likelihood"] - beta * terms["kl"], rtol=1e-5)
    self.assertAllGreater(terms["kl"], 0.0)


class IWAETest(tf.test.TestCase, parameterized.TestCase):
  def test_iwae_with_one_sample_is_the_monte_carlo_elbo(self):
    model, x = small_bernoulli_vae(), binary_images()
    for estimator in ("reparam", "stl", "dreg"):  # "vimco" needs K >= 2
      self.assertAllClose(
        objectives.iwae(model, x, num_samples=1, gradient_estimator=estimator, seed=[9, 1]),
        objectives.elbo(model, x, num_samples=1, kl="monte_carlo", seed=[9, 1]),
        atol=1e-4,
      )

  def test_estimators_share_the_value(self):
    model, x = small_bernoulli_vae(), binary_images()
    values = [
      objectives.iwae(model, x, num_samples=8, gradient_estimator=e, seed=[3, 4])
      for e in objectives.GRADIENT_ESTIMATORS
    ]
    self.assertAllClose(values[0], values[1], atol=1e-5)
    self.assertAllClose(values[0], values[2], atol=1e-5)

  def test_bound_ordering_on_linear_gaussian(self):
    truth, x = linear_gaussian_setup()
    model = truth.as_vae(truth.perturbed_posterior(shift=0.8, scale_factor=2.0))
    values = [
      objectives.elbo(model, x, num_samples=200, seed=[1, 1]),
      objectives.iwae(model, x, num_samples=5, seed=[1, 2]),
      objectives.iwae(model, x, num_samples=50, seed=[1, 3]),
      truth.log_marginal(x),
    ]
    # mean ELBO < mean IWAE_5 < mean IWAE_50 < log p(x), each gap judged by the standard error
    # of the paired per-example differences.
    for lower, upper in zip(values[:-1], values[1:]):
      gap = upper - lower
      standard_error = tf.math.reduce_std(gap) / np.sqrt(float(gap.shape[0]))
      self.assertGreater(
        float(tf.reduce_mean(gap)),
        3 * float(standard_error),
        msg=f"means {[float(tf.reduce_mean(v)) for v in values]}",
      )

  def test_exact_posterior_makes_every_bound_exact(self):
    truth, x = linear_gaussian_setup(20)
    model = truth.as_vae()
    exact = truth.log_marginal(x)
    self.assertAllClose(objectives.iwae(model, x, num_samples=3, seed=[1, 1]), exact, atol=1e-3)
    self.assertAllClose(objectives.elbo(model, x, num_samples=2, kl="monte_carlo", seed=[1, 1]), exact, atol=1e-3)

  @parameterized.parameters("stl", "dreg")
  def test_encoder_gradient_vanishes_at_exact_posterior(self, estimator):
    truth, x = linear_gaussian_setup(20)
    encoder = exact_affine_encoder(truth)
    model = truth.as_vae(encoder)
    grads = {}
    for name in ("reparam", estimator):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(objectives.iwae(model, x, num_samples=4, gradient_estimator=name, seed=[1, 5]))
      grads[name] = tape.gradient(loss, encoder.trainable_variables)
    # Sticking the landing: zero-variance (here zero) encoder gradients at the exact posterior.
    for grad in grads[estimator]:
      self.assertAllClose(grad, tf.zeros_like(grad), atol=1e-3)
    self.assertGreater(max(float(tf.reduce_max(tf.abs(g))) for g in grads["reparam"]), 1e-2)

  def test_decoder_gradients_agree_across_estimators(self):
    model, x = small_bernoulli_vae(), binary_images()
    model.log_weights(x, 1)
    grads = []
    for estimator in objectives.GRADIENT_ESTIMATORS:
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(objectives.iwae(model, x, num_samples=6, gradient_estimator=estimator, seed=[8, 8]))
      grads.append(tape.gradient(loss, model.decoder.trainable_variables))
    for other in grads[1:]:
      for a, b in zip(grads[0], other):
        self.assertAllClose(a, b, atol=1e-5)


class CompiledTest(tf.test.TestCase):
  def test_objectives_compile_with_xla(self):
    truth, x = linear_gaussian_setup(16)
    model = truth.as_vae()
    exact = truth.log_marginal(x)

    @tf.function(jit_compile=True)
    def bounds(x):
      return (
        objectives.elbo(model, x, num_samples=3, kl="monte_carlo", seed=[1, 1]),
        objectives.iwae(model, x, num_samples=5, gradient_estimator="dreg", seed=[1, 1]),
        tfpvi.evaluation.log_marginal_likelihood(model, x, 50, chunk_size=16, seed=[1, 1]),
      )

    for value in bounds(x):
      self.assertAllClose(value, exact, atol=1e-3)

  def test_training_step_compiles_and_reduces_loss(self):
    model, x = small_bernoulli_vae(), binary_images(batch=32)
    model.log_weights(x, 1)
    import sonnet as snt

    optimizer = snt.optimizers.Adam(1e-2)

    @tf.function(jit_compile=True)
    def step(x, seed):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(objectives.iwae(model, x, num_samples=5, seed=seed))
      optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
      return loss

    first = step(x, tf.constant([0, 0]))
    for i in range(60):
      last = step(x, tf.constant([0, i + 1]))
    self.assertLess(float(last), float(first) - 1.0)


class GradientEstimatorStatisticsTest(tf.test.TestCase):
  """DReG and reparam on a linear-Gaussian model with an affine encoder near the posterior.

  The SNR results of Rainforth et al. (2018) and Tucker et al. (2019) are asymptotic in K with q
  close to p(z|x); the encoder's mean is shifted by 0.05 (posterior std ~0.3) to be in that regime.
  """

  def encoder_gradients(self, estimator, k, replicates, shift=0.05):
    truth, x = linear_gaussian_setup(4)
    encoder = exact_affine_encoder(truth, shift=shift)
    model = truth.as_vae(encoder)

    @tf.function
    def gradient(seed):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(objectives.iwae(model, x, num_samples=k, gradient_estimator=estimator, seed=seed))
      return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, encoder.trainable_variables)], 0)

    return np.stack([gradient(tf.constant([k, r])).numpy() for r in range(replicates)])

  def test_dreg_and_reparam_agree_in_mean(self):
    reparam = self.encoder_gradients("reparam", 8, 300, shift=0.4)
    dreg = self.encoder_gradients("dreg", 8, 300, shift=0.4)
    difference = reparam.mean(0) - dreg.mean(0)
    standard_error = np.sqrt(reparam.var(0) / 300 + dreg.var(0) / 300)
    informative = np.abs(reparam.mean(0)) > 3 * standard_error  # parameters with a clear signal
    self.assertGreater(int(informative.sum()), 3)
    self.assertAllLessEqual(np.abs(difference) - 4.5 * standard_error - 1e-4, 0.0)

  def test_encoder_snr_grows_with_k_under_dreg_and_falls_under_reparam(self):
    def snr(gradients):
      return float(np.mean(np.abs(gradients.mean(0)) / (gradients.std(0) + 1e-12)))

    snrs = {e: [snr(self.encoder_gradients(e, k, 150)) for k in (2, 128)] for e in ("reparam", "dreg")}
    self.assertLess(snrs["reparam"][1], snrs["reparam"][0], msg=str(snrs))
    self.assertGreater(snrs["dreg"][1], snrs["dreg"][0], msg=str(snrs))
