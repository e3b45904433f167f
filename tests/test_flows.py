"""IAF and planar flow posteriors: autoregressive masks, log-determinants against brute-force Jacobians,
identity initialisation, every estimator (exact posterior: zero STL/DReG encoder gradients), eager and XLA."""

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp
from absl.testing import parameterized
from helpers import binary_images

import tfpvi
from tfpvi import objectives
from tfpvi.models import flows

tfd = tfp.distributions
ESTIMATORS = ("reparam", "stl", "dreg")


def randomize(module, scale=0.3, seed=0):
  """Gives every variable of `module` random values (output layers included: no longer the identity)."""
  rng = np.random.default_rng(seed)
  for variable in module.trainable_variables:
    variable.assign(rng.normal(scale=scale, size=variable.shape).astype(np.float32))


def brute_force_log_det(bijector, z):
  """log |det d f(z) / dz| per row of z [N, D], from the full Jacobian."""
  with tf.GradientTape() as tape:
    tape.watch(z)
    y = bijector.forward(z)
  jacobian = tape.batch_jacobian(y, z)  # [N, D, D]
  return tf.math.log(tf.abs(tf.linalg.det(jacobian)))


class MADETest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.parameters(False, True)
  def test_outputs_depend_only_on_earlier_variables(self, reverse):
    made = flows.MADE(4, [10, 10], reverse=reverse)
    randomize(made)
    z = tf.random.normal([3, 4], seed=1)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(z)
      shift, log_scale = made(z)
    for out in (shift, log_scale):
      dependence = np.abs(tape.batch_jacobian(out, z).numpy()).max(0)  # [out i, in j]
      order = made.order  # degree of each variable
      allowed = order[:, None] > order[None, :]
      self.assertAllEqual(dependence[~allowed], np.zeros(int((~allowed).sum())))
      self.assertGreater(dependence[allowed].min(), 0.0)  # every allowed link is used

  def test_identity_at_initialisation(self):
    shift, log_scale = flows.MADE(3, [8])(tf.random.normal([5, 3]), tf.ones([5, 2]))
    self.assertAllEqual(shift, tf.zeros([5, 3]))
    self.assertAllEqual(log_scale, tf.zeros([5, 3]))

  def test_bad_sizes(self):
    with self.assertRaisesRegex(ValueError, "at least one hidden size"):
      flows.MADE(3, [])


class IAFTest(tf.test.TestCase, parameterized.TestCase):
  def base_encoder(self, context=True):
    def encoder(x):
      q0 = tfd.Independent(tfd.Normal(x[:, :3], tf.nn.softplus(x[:, 3:6]) + 0.1), 1)
      return (q0, x[:, 6:]) if context else q0

    return encoder

  @parameterized.parameters(True, False)
  def test_log_det_matches_brute_force_jacobian(self, context):
    iaf = flows.IAFPosterior(self.base_encoder(context), 3, num_steps=3, hidden_sizes=[6])
    x = tf.random.normal([4, 8], seed=2)
    iaf(x)  # build
    randomize(iaf)
    h = x[:, 6:] if context else None
    bijector = iaf.bijector(h)
    z0 = tf.random.normal([4, 3], seed=3)
    fast = bijector.forward_log_det_jacobian(z0, event_ndims=1)
    self.assertAllClose(fast, brute_force_log_det(bijector, z0), atol=1e-4)
    self.assertGreater(float(tf.reduce_max(tf.abs(fast))), 0.05)  # not the identity

  def test_identity_initialisation_reproduces_the_base_exactly(self):
    iaf = flows.IAFPosterior(self.base_encoder(), 3, num_steps=2)
    x = tf.random.normal([4, 8], seed=2)
    q, (q0, _) = iaf(x), self.base_encoder()(x)
    z = q.sample(7, seed=[1, 2])
    self.assertAllEqual(z, q0.sample(7, seed=[1, 2]))
    self.assertAllClose(q.log_prob(z), q0.log_prob(z), atol=1e-6, rtol=0)
    self.assertAllClose(q.log_prob(tf.stop_gradient(z)), q0.log_prob(z), atol=1e-6, rtol=0)  # through the inverse

  def test_log_prob_at_a_fresh_value_inverts_the_flow(self):
    iaf = flows.IAFPosterior(self.base_encoder(), 3, num_steps=2, hidden_sizes=[6])
    x = tf.random.normal([4, 8], seed=2)
    iaf(x)
    randomize(iaf)
    q = iaf(x)
    z = q.sample(5, seed=[3, 3])
    cached = q.log_prob(z)
    self.assertAllClose(q.log_prob(tf.identity(z) + 0.0), cached, atol=1e-4)  # sequential inverse, no cache

  def test_variables_are_tracked_and_trained_by_fit(self):
    encoder = flows.iaf_mlp([16], 3, num_steps=2)
    model = tfpvi.VAE(encoder, tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]), tfpvi.standard_normal_prior(3))
    x = binary_images(batch=20)
    model.log_weights(x, 1)
    made_variables = [v for made in encoder.mades for v in made.trainable_variables]
    self.assertLen(made_variables, 14)  # per MADE: 3 masked layers (w, b) and the context weights
    tracked = {v.ref() for v in model.trainable_variables}
    self.assertTrue(all(v.ref() in tracked for v in made_variables))
    before = [v.numpy().copy() for v in made_variables]
    tfpvi.train.fit(
      model,
      objectives.iwae,
      x.numpy(),
      optimizer=snt.optimizers.Adam(1e-2),
      steps=5,
      batch_size=10,
      objective_kwargs=dict(num_samples=3, gradient_estimator="dreg"),
      logging=tfpvi.train.Logging(progress=False),
    )
    moved = [not np.allclose(b, v.numpy()) for b, v in zip(before, made_variables)]
    self.assertTrue(all(moved), msg=str(moved))


class ExactPosteriorBehindIAFTest(tf.test.TestCase, parameterized.TestCase):
  """LinearGaussian's exact posterior behind the shipped, identity-initialised IAF.

  The decisive case for STL and DReG on flows.
  """

  def setUp(self):
    super().setUp()
    self.truth = tfpvi.LinearGaussian.random(data_size=5, latent_size=3, noise_scale=0.7, seed=3)
    self.x = self.truth.sample(8, seed=[7, 7])
    self.encoder = flows.IAFPosterior(self.truth.exact_posterior, 3, num_steps=2, hidden_sizes=[8])
    self.model = self.truth.as_vae(self.encoder)

  def norms_and_bounds(self, x):
    out = {}
    for estimator in ESTIMATORS:
      for name, fn in (
        ("iwae", lambda e: objectives.iwae(self.model, x, num_samples=10, gradient_estimator=e, seed=[3, 3])),
        (
          "renyi",
          lambda e: objectives.renyi(self.model, x, num_samples=10, alpha=0.5, gradient_estimator=e, seed=[3, 3]),
        ),
      ):
        with tf.GradientTape() as tape:
          value = fn(estimator)
          loss = -tf.reduce_mean(value)
        grads = tape.gradient(loss, self.encoder.trainable_variables)
        out[name, estimator] = (tf.linalg.global_norm(grads), value)
    return out

  @parameterized.named_parameters(("eager", False), ("xla", True))
  def test_bounds_exact_and_stl_dreg_gradients_vanish(self, jit):
    compute = tf.function(self.norms_and_bounds, jit_compile=True) if jit else self.norms_and_bounds
    exact = self.truth.log_marginal(self.x)
    for (name, estimator), (norm, value) in compute(self.x).items():
      self.assertAllClose(value, exact, atol=2e-3, msg=f"{name} {estimator}")
      if estimator == "reparam":
        self.assertGreater(float(norm), 0.5, msg=name)
      else:
        self.assertLess(float(norm), 1e-4, msg=f"{name} {estimator}")

  def test_stl_elbo_and_evaluation(self):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(objectives.elbo(self.model, self.x, num_samples=4, gradient_estimator="stl", seed=[1, 1]))
    self.assertLess(float(tf.linalg.global_norm(tape.gradient(loss, self.encoder.trainable_variables))), 1e-4)
    estimate = tfpvi.evaluation.log_marginal_likelihood(self.model, self.x, 10, seed=[1, 1])
    self.assertAllClose(estimate, self.truth.log_marginal(self.x), atol=2e-3)


class BernoulliModelTest(tf.test.TestCase, parameterized.TestCase):
  """IAF and planar posteriors in a Bernoulli VAE: every estimator gives finite values and gradients."""

  def model(self, kind):
    encoder = flows.iaf_mlp([16], 3, num_steps=2) if kind == "iaf" else flows.planar_mlp([16], 3, num_steps=2)
    return tfpvi.VAE(encoder, tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]), tfpvi.standard_normal_prior(3))

  @parameterized.product(estimator=ESTIMATORS, jit=(False, True))
  def test_iaf_every_estimator(self, estimator, jit):
    model, x = self.model("iaf"), binary_images()
    model.log_weights(x, 1)

    def gradients(x):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(objectives.iwae(model, x, num_samples=4, gradient_estimator=estimator, seed=[1, 1]))
      return loss, tape.gradient(loss, model.trainable_variables)

    loss, grads = (tf.function(gradients, jit_compile=True) if jit else gradients)(x)
    self.assertTrue(np.isfinite(float(loss)))
    self.assertNotIn(None, grads)
    self.assertTrue(all(np.all(np.isfinite(g.numpy())) for g in grads))

  def test_planar_reparam_evaluation_and_reconstruct(self):
    model, x = self.model("planar"), binary_images()
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(objectives.iwae(model, x, num_samples=4, seed=[1, 1]))
    grads = tape.gradient(loss, model.trainable_variables)
    self.assertNotIn(None, grads)
    self.assertTrue(np.isfinite(float(loss)))
    estimate = tfpvi.evaluation.log_marginal_likelihood(model, x, 50, chunk_size=20, seed=[1, 1])
    self.assertTrue(np.all(np.isfinite(estimate.numpy())))
    self.assertEqual(model.reconstruct(x).shape, x.shape)

  def test_planar_stl_names_the_missing_inverse(self):
    model, x = self.model("planar"), binary_images()
    with self.assertRaisesRegex(NotImplementedError, "no closed-form inverse.*reparam"):
      objectives.iwae(model, x, num_samples=3, gradient_estimator="stl")


class PlanarFlowTest(tf.test.TestCase):
  def test_log_det_matches_brute_force_and_u_hat_keeps_it_invertible(self):
    rng = np.random.default_rng(0)
    u, w = rng.normal(size=[4, 3]).astype(np.float32) * 2, rng.normal(size=[4, 3]).astype(np.float32)
    u[0] = -3.0 * w[0]  # w^T u < -1: would not be invertible without the constraint
    flow = flows.PlanarFlow(u, w, rng.normal(size=[4]).astype(np.float32))
    z = tf.constant(rng.normal(size=[4, 3]).astype(np.float32))
    self.assertAllClose(flow.forward_log_det_jacobian(z, event_ndims=1), brute_force_log_det(flow, z), atol=1e-4)
    self.assertAllGreaterEqual(tf.reduce_sum(flow._u_hat() * flow.w, -1), -1.0)
