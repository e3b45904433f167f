"""Gumbel-softmax / Concrete latents: finite log weights at low temperature, straight-through, the categorical
KL, the temperature schedule inside fit, and VIMCO on exact categorical latents; eager and XLA."""

import math

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized
from helpers import binary_images

import tfpvi
from tfpvi import objectives
from tfpvi.models import discrete

tfd = tfp.distributions
N, K = 3, 4


def discrete_vae(kind="exp_relaxed", straight_through=False, temperature=1.0, prior_temperature=0.5):
  encoder = discrete.GumbelSoftmaxMLP([16], N, K, kind=kind, temperature=temperature)
  decoder = discrete.RelaxedInput(
    tfpvi.decoders.BernoulliMLP([16], [4, 4, 1], latent_ndims=2),
    log_space=kind == "exp_relaxed",
    straight_through=straight_through,
  )
  if kind == "exp_relaxed":
    prior = discrete.relaxed_prior(N, K, prior_temperature)
  else:
    prior = discrete.one_hot_prior(N, K)
  return tfpvi.VAE(encoder, decoder, prior)


def sharpen(model, factor=30.0):
  """Makes the encoder's logits large (confident posteriors), where relaxed densities underflow."""
  for variable in model.encoder.trainable_variables:
    variable.assign(variable * factor)


class RelaxedLogWeightsTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(("eager", False), ("xla", True))
  def test_log_weights_finite_at_low_temperature(self, jit):
    model, x = discrete_vae(temperature=0.05, prior_temperature=0.05), binary_images()
    model.log_weights(x, 1)
    sharpen(model)

    def values(x):
      return (
        model.log_weights(x, 20, seed=[1, 1]),
        objectives.iwae(model, x, num_samples=5, gradient_estimator="dreg", seed=[1, 1]),
        objectives.elbo(model, x, num_samples=3, seed=[2, 2]),
        objectives.renyi(model, x, num_samples=5, alpha=0.5, seed=[1, 1]),
      )

    for value in (tf.function(values, jit_compile=True) if jit else values)(x):
      self.assertTrue(np.all(np.isfinite(value.numpy())))

  def test_simplex_density_underflows_where_log_space_does_not(self):
    """Why "exp_relaxed" is the default: the same draws, on the simplex, give non-finite log q."""
    logits = tf.constant([[40.0, 0.0, -40.0, 0.0]])
    log_space = tfd.ExpRelaxedOneHotCategorical(0.05, logits=logits)
    y = log_space.sample(50, seed=[3, 3])
    self.assertTrue(np.all(np.isfinite(log_space.log_prob(y).numpy())))
    simplex = tfd.RelaxedOneHotCategorical(0.05, logits=logits)
    self.assertFalse(np.all(np.isfinite(simplex.log_prob(tf.exp(y)).numpy())))

  def test_kl_auto_falls_back_to_monte_carlo(self):
    model, x = discrete_vae(), binary_images()
    terms = objectives.elbo(model, x, num_samples=4, seed=[1, 1], return_terms=True)
    mc = objectives.elbo(model, x, num_samples=4, kl="monte_carlo", seed=[1, 1], return_terms=True)
    self.assertAllClose(terms["kl"], mc["kl"])

  def test_event_shape_and_reparameterized(self):
    q = discrete_vae().posterior(binary_images())
    self.assertEqual(q.event_shape, [N, K])
    self.assertEqual(q.batch_shape, [6])
    objectives.check_reparameterized(q, "reparam")


class StraightThroughTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.parameters(True, False)
  def test_forward_is_one_hot_and_gradient_flows(self, log_space):
    decoder = discrete.RelaxedInput(lambda v: v, log_space=log_space, straight_through=True)
    logits = tf.Variable(tf.random.normal([5, N, K], seed=1))
    with tf.GradientTape() as tape:
      q = tfd.ExpRelaxedOneHotCategorical(0.5, logits=logits)
      y = q.sample(seed=[1, 2])
      z = y if log_space else tf.exp(y)
      v = decoder.decoder_input(z)
      loss = tf.reduce_sum(v * tf.range(K, dtype=tf.float32))
    self.assertAllEqual(tf.reduce_sum(v, -1), tf.ones([5, N]))
    self.assertAllEqual(tf.reduce_max(v, -1), tf.ones([5, N]))
    self.assertAllEqual(tf.argmax(v, -1), tf.argmax(y, -1))
    grad = tape.gradient(loss, logits)
    self.assertIsNotNone(grad)
    self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0)

  def test_straight_through_model_trains_encoder(self):
    model, x = discrete_vae(straight_through=True), binary_images()
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(objectives.elbo(model, x, num_samples=2, seed=[1, 1]))
    grads = tape.gradient(loss, model.encoder.trainable_variables)
    self.assertNotIn(None, grads)
    self.assertGreater(float(tf.linalg.global_norm(grads)), 0.0)


class CategoricalKLTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(("eager", False), ("xla", True))
  def test_kl_is_the_exact_categorical_kl_to_uniform(self, jit):
    model, x = discrete_vae(kind="relaxed", temperature=0.1), binary_images()

    def terms(x):
      return objectives_terms(model, x)

    def objectives_terms(model, x):
      return discrete.elbo_categorical_kl(model, x, 2, seed=[1, 1], return_terms=True), model.encoder.logits(x)

    out, logits = (tf.function(terms, jit_compile=True) if jit else terms)(x)
    p = tf.nn.softmax(logits).numpy().astype(np.float64)
    expected = np.sum(p * (np.log(p) + math.log(K)), axis=(-2, -1))
    self.assertAllClose(out["kl"], expected, atol=1e-5)
    self.assertAllClose(out["objective"], out["log_likelihood"] - out["kl"])
    self.assertTrue(np.all(np.isfinite(out["objective"].numpy())))

  def test_needs_logits(self):
    with self.assertRaisesRegex(ValueError, "built from logits"):
      discrete.elbo_categorical_kl(tfpvi.LinearGaussian.random(3, 2).as_vae(), tf.zeros([2, 3]))


class TemperatureScheduleTest(tf.test.TestCase):
  def test_values(self):
    schedule = discrete.temperature_schedule(1e-3)
    self.assertAllClose([float(schedule(s)) for s in (0, 100, 693, 10000)], [1.0, math.exp(-0.1), 0.5, 0.5], atol=1e-3)
    stepped = discrete.temperature_schedule(1e-3, every=500, initial=2.0, minimum=0.1)
    self.assertAllClose(
      [float(stepped(s)) for s in (0, 499, 500, 1499)],
      [2.0, 2.0, 2.0 * math.exp(-0.5), 2.0 * math.exp(-1.0)],
      atol=1e-5,
    )

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "minimum > 0"):
      discrete.temperature_schedule(1e-3, minimum=0.0)

  def test_fit_anneals_and_logs_the_temperature(self):
    model, x = discrete_vae(), binary_images(batch=20)
    schedule = discrete.temperature_schedule(0.03, minimum=0.5)
    history = tfpvi.train.fit(
      model,
      discrete.with_temperature(objectives.iwae),
      x.numpy(),
      optimizer=snt.optimizers.Adam(1e-3),
      steps=30,
      batch_size=10,
      objective_kwargs=dict(num_samples=3, temperature=schedule),
      logging=tfpvi.train.Logging(every=10, progress=False),
      loop=tfpvi.train.Loop(steps_per_call=5),
    )
    self.assertIn("temperature", history)
    self.assertAllClose(history["temperature"].to_numpy(), [math.exp(-0.3), math.exp(-0.6), 0.5], atol=1e-4)
    self.assertAllClose(float(model.encoder.temperature), 0.5)
    self.assertTrue(np.all(np.isfinite(history["loss"].to_numpy())))

  def test_with_temperature_needs_a_variable(self):
    model = tfpvi.LinearGaussian.random(3, 2).as_vae()
    with self.assertRaisesRegex(TypeError, "temperature to be a tf.Variable"):
      discrete.with_temperature(objectives.iwae)(model, tf.zeros([2, 3]), num_samples=2, temperature=0.5)


class ExactCategoricalTest(tf.test.TestCase):
  def test_vimco_runs_and_reparam_raises(self):
    model, x = discrete_vae(kind="categorical"), binary_images()
    with self.assertRaisesRegex(ValueError, "reparameterization_type"):
      objectives.iwae(model, x, num_samples=3)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(objectives.iwae(model, x, num_samples=3, gradient_estimator="vimco", seed=[1, 1]))
    grads = tape.gradient(loss, model.trainable_variables)
    self.assertNotIn(None, grads)
    self.assertTrue(np.isfinite(float(loss)))


class ErrorTest(tf.test.TestCase):
  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "kind must be one of"):
      discrete.GumbelSoftmaxMLP([4], 2, 3, kind="gumbel")
    with self.assertRaisesRegex(ValueError, "num_classes >= 2"):
      discrete.GumbelSoftmaxMLP([4], 2, 1)
    with self.assertRaisesRegex(ValueError, "temperature must be > 0"):
      discrete.GumbelSoftmaxMLP([4], 2, 3, temperature=0.0)
