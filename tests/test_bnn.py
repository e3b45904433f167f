"""tfpvi.bnn (Bayes by Backprop) against closed forms and independent Monte Carlo references."""

import functools
import math
import tempfile

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized
from scipy import special, stats

import tfpvi
from tfpvi import bnn

tfd = tfp.distributions
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def built_layer(input_size=5, output_size=3, *, rho=-1.0, seed=0, **kwargs):
  """A Linear layer built on [*, input_size] with random mu and rho around `rho` (sigma ~ 0.3)."""
  layer = bnn.Linear(output_size, **kwargs)
  layer(tf.zeros([1, input_size]), seed=[0, 0])
  rng = np.random.default_rng(seed)
  layer.kernel_loc.assign(rng.normal(size=[input_size, output_size]).astype(np.float32))
  layer.kernel_rho.assign((rho + 0.3 * rng.normal(size=[input_size, output_size])).astype(np.float32))
  if layer.with_bias:
    layer.bias_loc.assign(rng.normal(size=[output_size]).astype(np.float32))
    layer.bias_rho.assign((rho + 0.3 * rng.normal(size=[output_size])).astype(np.float32))
  return layer


def layer_parameters(layer):
  softplus = lambda r: np.log1p(np.exp(r))  # noqa: E731
  mu, sigma = layer.kernel_loc.numpy(), softplus(layer.kernel_rho.numpy())
  mu_b, sigma_b = layer.bias_loc.numpy(), softplus(layer.bias_rho.numpy())
  return mu, sigma, mu_b, sigma_b


class PriorTest(tf.test.TestCase):
  def test_scale_mixture_log_prob_matches_closed_form(self):
    pi, s1, s2 = 0.25, math.exp(-1), math.exp(-7)
    prior = bnn.scale_mixture_prior(pi, s1, s2)
    w = np.array([0.0, 1e-4, -3e-3, 0.05, -0.4, 2.0, 10.0], np.float32)  # 10: the narrow part underflows
    log_n1 = stats.norm(0, s1).logpdf(w.astype(np.float64))
    log_n2 = stats.norm(0, s2).logpdf(w.astype(np.float64))
    closed_form = np.logaddexp(np.log(pi) + log_n1, np.log(1 - pi) + log_n2)
    self.assertAllClose(prior.log_prob(w), closed_form, rtol=1e-5, atol=1e-4)
    self.assertIsInstance(prior, tfd.MixtureSameFamily)
    self.assertAllClose(prior.stddev(), math.sqrt(pi * s1**2 + (1 - pi) * s2**2), rtol=1e-5)

  def test_bad_priors_are_reported(self):
    with self.assertRaisesRegex(ValueError, "0 < sigma2 < sigma1"):
      bnn.scale_mixture_prior(0.5, 0.1, 1.0)
    with self.assertRaisesRegex(ValueError, "pi must be in"):
      bnn.scale_mixture_prior(1.0)
    with self.assertRaisesRegex(ValueError, r"event shape \[\]"):
      bnn.Linear(3, prior=tfd.MultivariateNormalDiag(tf.zeros(2)))
    with self.assertRaisesRegex(NotImplementedError, "kl='analytic'"):
      bnn.Linear(3, prior=bnn.scale_mixture_prior(), kl="analytic")


class KLTest(tf.test.TestCase):
  def test_analytic_gaussian_kl_matches_closed_form(self):
    layer = built_layer(prior=bnn.gaussian_prior(0.7))
    self.assertTrue(layer.analytic_kl)
    mu, sigma, mu_b, sigma_b = layer_parameters(layer)
    m, s = np.concatenate([mu.ravel(), mu_b]), np.concatenate([sigma.ravel(), sigma_b])
    closed_form = np.sum(np.log(0.7 / s) + (s**2 + m**2) / (2 * 0.7**2) - 0.5)
    self.assertAllClose(layer.kl_divergence(), closed_form, rtol=1e-5)
    _, kl = layer(tf.ones([4, 5]), seed=[1, 1], return_kl=True)
    self.assertAllClose(kl, closed_form, rtol=1e-5)

  def test_monte_carlo_kl_converges_to_the_analytic_kl(self):
    num_samples = 20000
    layer = built_layer(prior=bnn.gaussian_prior(0.7), kl="monte_carlo")
    self.assertFalse(layer.analytic_kl)
    mu, sigma, mu_b, sigma_b = layer_parameters(layer)
    m, s = np.concatenate([mu.ravel(), mu_b]), np.concatenate([sigma.ravel(), sigma_b])
    analytic = np.sum(np.log(0.7 / s) + (s**2 + m**2) / (2 * 0.7**2) - 0.5)
    # The estimator's standard error, from an independent numpy sample of log q(w) - log P(w).
    w = m + s * np.random.default_rng(1).normal(size=[num_samples, m.size])
    log_ratio = np.sum(stats.norm(m, s).logpdf(w) - stats.norm(0, 0.7).logpdf(w), axis=1)
    standard_error = log_ratio.std() / math.sqrt(num_samples)
    estimate = layer.kl_divergence(num_samples=num_samples, seed=[3, 4])
    self.assertLess(abs(float(estimate) - analytic), 4 * standard_error)
    self.assertGreater(abs(float(layer.kl_divergence(num_samples=1, seed=[3, 5])) - analytic), standard_error)

  def test_scale_mixture_kl_is_monte_carlo_and_matches_a_high_sample_estimate(self):
    pi, s1, s2 = 0.5, 1.0, math.exp(-6)
    layer = built_layer(prior=bnn.scale_mixture_prior(pi, s1, s2), rho=-3.0)
    self.assertFalse(layer.analytic_kl)
    mu, sigma, mu_b, sigma_b = layer_parameters(layer)
    m, s = np.concatenate([mu.ravel(), mu_b]), np.concatenate([sigma.ravel(), sigma_b])
    w = m + s * np.random.default_rng(2).normal(size=[200000, m.size])
    log_prior = np.logaddexp(np.log(pi) + stats.norm(0, s1).logpdf(w), np.log(1 - pi) + stats.norm(0, s2).logpdf(w))
    log_ratio = np.sum(stats.norm(m, s).logpdf(w) - log_prior, axis=1)
    reference = log_ratio.mean()
    num_samples = 500
    standard_error = log_ratio.std() * math.sqrt(1 / num_samples + 1 / 200000)
    estimate = layer.kl_divergence(num_samples=num_samples, seed=[5, 6])
    self.assertLess(abs(float(estimate) - reference), 4 * standard_error)
    # The forward pass's KL uses the forward pass's weights (common random numbers): the same seed
    # gives the same value, another seed another one.
    x = tf.ones([2, 5])
    _, kl_a = layer(x, seed=[7, 7], return_kl=True)
    _, kl_b = layer(x, seed=[7, 7], return_kl=True)
    _, kl_c = layer(x, seed=[7, 8], return_kl=True)
    self.assertEqual(float(kl_a), float(kl_b))
    self.assertNotEqual(float(kl_a), float(kl_c))


class EstimatorTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(
    ("sample", "sample"), ("local_reparameterization", "local_reparameterization"), ("flipout", "flipout")
  )
  def test_pre_activation_moments_match_weight_sampling(self, estimator):
    """Every estimator gives each example the marginal of x w + b, w ~ q: mean x mu + mu_b, variance
    x^2 sigma^2 + sigma_b^2 (means within 4 standard errors, variances within 4 of theirs)."""
    num_samples = 40000
    layer = built_layer(estimator=estimator)
    mu, sigma, mu_b, sigma_b = layer_parameters(layer)
    x = np.random.default_rng(3).normal(size=[3, 5]).astype(np.float32)
    outputs = layer(tf.tile(x[None], [num_samples, 1, 1]), seed=[8, 9]).numpy()  # [S, 3, 3]
    mean = x @ mu + mu_b
    variance = x**2 @ sigma**2 + sigma_b**2
    self.assertAllLessEqual(np.abs(outputs.mean(0) - mean) - 4 * np.sqrt(variance / num_samples), 0.0)
    self.assertAllLessEqual(np.abs(outputs.var(0) - variance) - 4 * variance * np.sqrt(2 / num_samples), 0.0)
    # Across examples: one weight sample per slice correlates the examples; the local
    # reparameterization trick makes them independent.
    correlation = np.corrcoef(outputs[:, 0, 0], outputs[:, 1, 0])[0, 1]
    direct = np.sum(x[0] * x[1] * sigma[:, 0] ** 2) + sigma_b[0] ** 2
    expected = 0.0 if estimator == "local_reparameterization" else direct / np.sqrt(variance[0, 0] * variance[1, 0])
    if estimator != "flipout":  # Flipout decorrelates only in part (random signs, shared perturbation)
      self.assertAllClose(correlation, expected, atol=4 / math.sqrt(num_samples))

  def test_local_reparameterization_lowers_gradient_variance(self):
    """Per-sample gradients of a batch loss with respect to mu: lower variance than weight sampling.

    loss_s = mean_{b,o} (out_sbo - t_bo)^2 has d loss_s / d mu = 2 x^T (out_s - t) / (B O) under every
    estimator (d out_sbo / d mu_io = x_bi); the sum over s is checked against autodiff.
    """
    x = np.random.default_rng(4).normal(size=[32, 5]).astype(np.float32)
    target = np.random.default_rng(5).normal(size=[32, 3]).astype(np.float32)
    num_samples = 4000
    variances = {}
    for estimator in ("sample", "local_reparameterization", "flipout"):
      layer = built_layer(estimator=estimator)
      with tf.GradientTape() as tape:
        outputs = layer(tf.tile(x[None], [num_samples, 1, 1]), seed=[10, 11])
        total = tf.reduce_sum(tf.reduce_mean(tf.square(outputs - target), axis=[1, 2]))
      gradients = 2 * np.einsum("bi,sbo->sio", x, outputs.numpy() - target) / target.size  # [S, 5, 3]
      self.assertAllClose(gradients.sum(0), tape.gradient(total, layer.kernel_loc), rtol=1e-3, atol=1e-2)
      variances[estimator] = gradients.var(0).sum()
    self.assertLess(variances["local_reparameterization"], 0.5 * variances["sample"])
    self.assertLess(variances["flipout"], variances["sample"])

  @parameterized.product(
    estimator=["sample", "local_reparameterization", "flipout"], prior=["gaussian", "scale_mixture"]
  )
  def test_gradients_reach_every_mu_and_rho(self, estimator, prior):
    prior = bnn.gaussian_prior() if prior == "gaussian" else bnn.scale_mixture_prior()
    net = bnn.MLP([6], 3, prior=prior, estimator=estimator)
    batch = (tf.random.stateless_normal([8, 4], [0, 1]), tf.constant([0, 1, 2, 0, 1, 2, 0, 1]))
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(bnn.elbo(net, batch, kl_weight=0.5, seed=[1, 2]))
    variables = net.trainable_variables
    self.assertLen(variables, 8)  # kernel and bias, loc and rho, two layers
    self.assertCountEqual(
      {v.name.split("/")[-1] for v in variables}, ["kernel_loc:0", "kernel_rho:0", "bias_loc:0", "bias_rho:0"]
    )
    for variable, gradient in zip(variables, tape.gradient(loss, variables)):
      self.assertIsNotNone(gradient, variable.name)
      self.assertGreater(float(tf.reduce_max(tf.abs(gradient))), 0.0, variable.name)

  def test_fresh_weights_per_seed_and_posterior_mean_mode(self):
    layer = built_layer()
    x = tf.ones([2, 5])
    self.assertAllEqual(layer(x, seed=[1, 2]), layer(x, seed=[1, 2]))
    self.assertNotAllClose(layer(x, seed=[1, 2]), layer(x, seed=[1, 3]))
    mu, _, mu_b, _ = layer_parameters(layer)
    self.assertAllClose(layer(x, mode="mean"), x.numpy() @ mu + mu_b, rtol=1e-5)

  def test_unknown_batch_under_tf_function(self):
    net = bnn.MLP([6], 3, prior=bnn.scale_mixture_prior(), estimator="flipout")
    net(tf.zeros([1, 4]), seed=[0, 0])
    objective = tf.function(
      lambda x, y: bnn.elbo(net, (x, y), kl_weight=0.1, num_samples=2, seed=[1, 2]),
      input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([None], tf.int32)],
    )
    self.assertEqual(objective(tf.zeros([7, 4]), tf.zeros([7], tf.int32)).shape, [7])

  def test_bad_inputs_are_reported(self):
    layer = built_layer()
    with self.assertRaisesRegex(ValueError, r"expected inputs \[batch, input_size\]"):
      layer(tf.zeros([5]))
    with self.assertRaisesRegex(ValueError, "expected input size 5"):
      layer(tf.zeros([2, 4]))
    with self.assertRaisesRegex(ValueError, "estimator must be one of"):
      bnn.Linear(3, estimator="dropout")
    with self.assertRaisesRegex(ValueError, "labelled batch"):
      bnn.elbo(bnn.MLP([2], 2), tf.zeros([3, 4]), kl_weight=1.0)


class KLWeightingTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.parameters(1, 2, 7, 60, 600)
  def test_each_weighting_sums_to_one_over_an_epoch(self, num_batches):
    for weights in (bnn.uniform_kl_weights(num_batches), bnn.blundell_kl_weights(num_batches)):
      self.assertEqual(weights.shape, [num_batches])
      self.assertAllClose(tf.reduce_sum(weights), 1.0, rtol=1e-6)
      self.assertAllGreaterEqual(weights, 0.0)
    for scheme in bnn.KL_WEIGHTINGS:
      schedule = bnn.kl_weight_schedule(scheme, num_batches)
      # fit's steps 1..M are one epoch, M+1..2M the next.
      for epoch in range(2):
        steps = tf.range(epoch * num_batches + 1, (epoch + 1) * num_batches + 1, dtype=tf.float32)
        values = schedule(steps)
        self.assertEqual(values.shape, [num_batches])
        self.assertAllClose(tf.reduce_sum(values), 1.0, rtol=1e-6)

  def test_blundell_weights_are_the_papers(self):
    num_batches = 5
    expected = [2.0 ** (num_batches - i) / (2.0**num_batches - 1) for i in range(1, num_batches + 1)]
    self.assertAllClose(bnn.blundell_kl_weights(num_batches), expected, rtol=1e-6)
    self.assertAllClose(bnn.blundell_kl_weights(600)[:3], [0.5, 0.25, 0.125], rtol=1e-6)
    with self.assertRaisesRegex(ValueError, "num_batches must be an int >= 1"):
      bnn.blundell_kl_weights(0)
    with self.assertRaisesRegex(ValueError, "scheme must be one of"):
      bnn.kl_weight_schedule("linear", 3)

  def test_epoch_of_batch_means_is_the_negative_free_energy(self):
    """B * sum over an epoch of batch means of elbo = sum log p(D | w) - KL (fixed weights: mean mode)."""
    net = bnn.MLP([4], 3, prior=bnn.gaussian_prior())
    x = tf.random.stateless_normal([12, 2], [1, 1])
    y = tf.constant([0, 1, 2] * 4)
    net(x, mode="mean")
    batch_size, num_batches = 4, 3
    total = 0.0
    for i, weight in enumerate(bnn.blundell_kl_weights(num_batches)):
      batch = (x[i * batch_size : (i + 1) * batch_size], y[i * batch_size : (i + 1) * batch_size])
      model = _MeanWeights(net)
      total += batch_size * float(tf.reduce_mean(bnn.elbo(model, batch, kl_weight=weight)))
    expected = float(tf.reduce_sum(net(x, mode="mean").log_prob(y)) - net.kl_divergence())
    self.assertAllClose(total, expected, rtol=1e-5)


class _MeanWeights:
  """A view of a bnn.MLP whose forward pass uses the posterior mean (deterministic) weights."""

  def __init__(self, net):
    self.net, self.likelihood = net, net.likelihood

  def outputs(self, x, **kwargs):
    return self.net.outputs(x, **kwargs, mode="mean")


class PredictiveTest(tf.test.TestCase):
  def test_categorical_predictive_entropy_matches_direct_computation(self):
    net = bnn.MLP([8], 4, estimator="local_reparameterization", init_rho=-1.0)
    x = tf.random.stateless_normal([6, 3], [2, 2])
    predictive = bnn.predictive_distribution(net, x, num_samples=50, seed=[3, 3])
    self.assertEqual(predictive.batch_shape, [6])
    # Direct: the same 50 weight samples, probabilities averaged, entropy in numpy.
    logits = net.outputs(x, seed=[3, 3], num_samples=50).numpy()  # [S, B, K]
    probs = special.softmax(logits, axis=-1).mean(0)
    direct = -np.sum(probs * np.log(probs), axis=-1)
    self.assertAllClose(bnn.predictive_entropy(predictive), direct, rtol=1e-5)
    self.assertAllClose(tf.exp(predictive.log_prob(tf.zeros([6], tf.int32))), probs[:, 0], rtol=1e-5)
    expected = np.mean(-np.sum(special.softmax(logits, -1) * special.log_softmax(logits, -1), -1), 0)
    self.assertAllClose(bnn.expected_entropy(predictive), expected, rtol=1e-5)
    self.assertAllGreaterEqual(bnn.mutual_information(predictive), -1e-6)

  def test_gaussian_predictive_moments_and_monte_carlo_entropy(self):
    net = bnn.MLP([8], 1, likelihood=bnn.normal_likelihood(0.1), init_rho=-1.0)
    x = tf.constant([[0.0], [2.0]])
    predictive = bnn.predictive_distribution(net, x, num_samples=20, seed=[4, 4])
    self.assertEqual(predictive.event_shape, [1])
    means = net.outputs(x, seed=[4, 4], num_samples=20).numpy()[..., 0]  # [S, B]
    mean, variance = bnn.predictive_moments(predictive)
    self.assertAllClose(mean[:, 0], means.mean(0), rtol=1e-5)
    self.assertAllClose(variance[:, 0], means.var(0) + 0.01, rtol=1e-4)
    # Entropy by numerical integration of the mixture density (the reference), against Monte Carlo.
    grid = np.linspace(means.min() - 1, means.max() + 1, 200001)
    density = stats.norm(means[:, :, None], 0.1).pdf(grid).mean(0)  # [B, G]
    reference = -_trapezoid(density * np.log(np.maximum(density, 1e-300)), grid, axis=-1)
    draws = 20000
    estimate = bnn.predictive_entropy(predictive, num_samples=draws, seed=[5, 5])
    log_p = predictive.log_prob(predictive.sample(draws, seed=[6, 6])).numpy()
    self.assertAllLessEqual(np.abs(estimate - reference) - 5 * log_p.std(0) / math.sqrt(draws), 0.0)


class PublicApiTest(tf.test.TestCase):
  def test_bnn_is_exported(self):
    self.assertIs(tfpvi.bnn.Linear, bnn.Linear)
    for name in bnn.__all__:
      self.assertTrue(hasattr(bnn, name), name)


class SavedNetworkTest(tf.test.TestCase):
  def test_a_trained_network_with_a_scale_mixture_prior_and_a_normal_likelihood_is_rebuilt_from_its_folder(self):
    """A Bayesian MLP describes itself (prior, likelihood and all), so load_model rebuilds the trained one."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=[64, 1]).astype(np.float32)
    y = (np.sin(6 * x) + 0.1 * rng.normal(size=[64, 1])).astype(np.float32)
    net = bnn.MLP([8], 1, prior=bnn.scale_mixture_prior(0.5, 1.0, 0.1), likelihood=bnn.normal_likelihood(0.25))
    folder = tempfile.mkdtemp()
    tfpvi.train.fit(
      net,
      functools.partial(bnn.elbo, kl_weight=1.0 / 4, return_terms=True),
      (x, y),
      optimizer=snt.optimizers.Adam(1e-2),
      steps=20,
      batch_size=16,
      seed=1,
      output_dir=folder,
      logging=tfpvi.train.Logging(every=10, progress=False),
    )
    record = tfpvi.run_record.read(folder)
    self.assertNotIn("model_note", record)
    self.assertEqual(record["model"]["config"]["likelihood"]["class"], "tfpvi.bnn.mlp:NormalLikelihood")
    rebuilt = tfpvi.load_model(folder)
    self.assertIsInstance(rebuilt, bnn.MLP)
    trained_mean = net.outputs(x, mode="mean").numpy()
    self.assertAllEqual(rebuilt.outputs(x, mode="mean").numpy(), trained_mean)  # the trained weights, restored
    self.assertAllClose(rebuilt(x, mode="mean").stddev(), np.full([64, 1], 0.25))  # the same likelihood
    self.assertAllClose(rebuilt.layers[0].prior.mixture_distribution.probs_parameter(), [0.5, 0.5])
    self.assertAllClose(
      rebuilt.kl_divergence(num_samples=4, seed=[0, 2]), net.kl_divergence(num_samples=4, seed=[0, 2])
    )

  def test_a_normal_likelihood_refuses_a_scale_that_is_not_positive(self):
    with self.assertRaisesRegex(ValueError, "noise scale must be > 0, got 0"):
      bnn.normal_likelihood(0.0)
