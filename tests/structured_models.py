"""Models with structured latents and known answers, shared by the estimator and structured-latent tests."""

import itertools

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi

tfd = tfp.distributions
tfb = tfp.bijectors


class MADE(snt.Module):
  """A Sonnet module holding TFP's masked autoregressive network, output layer zeroed (identity flow)."""

  def __init__(self, event_size, hidden_units=(16,), name=None):
    super().__init__(name=name)
    self.network = tfb.AutoregressiveNetwork(
      params=2, event_shape=[event_size], hidden_units=list(hidden_units), activation="tanh"
    )
    self.network(tf.zeros([1, event_size]))
    for variable in self.network.trainable_variables[-2:]:  # output kernel and bias
      variable.assign(tf.zeros_like(variable))

  def __call__(self, z):
    return tf.unstack(self.network(z), axis=-1)  # shift, log_scale


class IAFPosterior(snt.Module):
  """q(z|x) = an inverse autoregressive flow on a base encoder's distribution."""

  def __init__(self, base_encoder, event_size, name=None):
    super().__init__(name=name)
    self.base_encoder = base_encoder
    self.made = MADE(event_size)

  def __call__(self, x):
    iaf = tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=self.made))
    return tfd.TransformedDistribution(self.base_encoder(x), iaf)


class TwoLayerLinearGaussian:
  """z2 ~ N(0, I), z1 | z2 ~ N(A z2 + a, s1^2 I), x | z1 ~ N(W z1 + b, s^2 I): exact p(x), p(z1, z2 | x)."""

  def __init__(self, d2=2, d1=3, dx=5, s1=0.6, s=0.5, seed=0):
    rng = np.random.default_rng(seed)

    def normal(*shape):
      return tf.constant(rng.normal(size=shape).astype(np.float32))

    self.A, self.a, self.W, self.b = normal(d1, d2), normal(d1), normal(dx, d1), normal(dx)
    self.s1, self.s, self.d1, self.d2, self.dx = s1, s, d1, d2, dx
    cov_z1 = tf.matmul(self.A, self.A, transpose_b=True) + s1**2 * tf.eye(d1)
    # u = (z2, z1) is Gaussian a priori; x = H u + b + noise.
    self.prior_mean = tf.concat([tf.zeros(d2), self.a], 0)
    self.prior_cov = tf.concat([tf.concat([tf.eye(d2), tf.transpose(self.A)], 1), tf.concat([self.A, cov_z1], 1)], 0)
    self.H = tf.concat([tf.zeros([dx, d2]), self.W], 1)
    precision = tf.linalg.inv(self.prior_cov) + tf.matmul(self.H, self.H, transpose_a=True) / s**2
    self.post_cov = tf.linalg.inv(precision)
    cov_x = tf.matmul(tf.matmul(self.H, self.prior_cov), self.H, transpose_b=True) + s**2 * tf.eye(dx)
    self.marginal = tfd.MultivariateNormalTriL(
      tf.linalg.matvec(self.H, self.prior_mean) + self.b, tf.linalg.cholesky(cov_x)
    )

  def prior(self, sequential=False):
    z2 = tfd.Independent(tfd.Normal(tf.zeros(self.d2), 1.0), 1)

    def z1(z2):
      return tfd.Independent(tfd.Normal(tf.linalg.matvec(self.A, z2) + self.a, self.s1), 1)

    if sequential:
      return tfd.JointDistributionSequential([z2, z1])
    return tfd.JointDistributionNamed(dict(z2=z2, z1=z1))

  def decoder(self, z):
    z1 = z[1] if isinstance(z, (list, tuple)) else z["z1"]
    return tfd.Independent(tfd.Normal(tf.linalg.matvec(self.W, z1) + self.b, self.s), 1)

  def posterior_mean(self, x):
    prior_term = tf.linalg.solve(self.prior_cov, self.prior_mean[:, None])[:, 0]
    data_term = tf.linalg.matvec(self.H, x - self.b, transpose_a=True) / self.s**2
    return tf.linalg.matvec(self.post_cov, prior_term + data_term)


class TwoLayerExactEncoder(snt.Module):
  """p(z2|x) p(z1|z2, x) of a TwoLayerLinearGaussian as a joint q with trainable parameters at the exact values."""

  def __init__(self, truth, sequential=False, shift=0.0, name=None):
    super().__init__(name=name)
    self.truth, self.sequential, d2 = truth, sequential, truth.d2
    cov = truth.post_cov
    c22, c12, c11 = cov[:d2, :d2], cov[d2:, :d2], cov[d2:, d2:]
    self.gain = tf.Variable(tf.matmul(c12, tf.linalg.inv(c22)))
    self.scale2 = tf.Variable(tf.linalg.cholesky(c22))
    self.scale1 = tf.Variable(tf.linalg.cholesky(c11 - tf.matmul(self.gain, c12, transpose_b=True)))
    self.shift1 = tf.Variable(tf.fill([truth.d1], shift))
    self.shift2 = tf.Variable(tf.fill([d2], shift))

  def __call__(self, x):
    mean, d2 = self.truth.posterior_mean(x), self.truth.d2
    m2, m1 = mean[:, :d2] + self.shift2, mean[:, d2:] + self.shift1
    z2 = tfd.MultivariateNormalTriL(m2, self.scale2)

    def z1(z2):
      return tfd.MultivariateNormalTriL(m1 + tf.linalg.matvec(self.gain, z2 - m2), self.scale1)

    if self.sequential:
      return tfd.JointDistributionSequential([z2, z1])
    return tfd.JointDistributionNamed(dict(z2=z2, z1=z1))


class TinyCategorical(snt.Module):
  """Two 3-class latents with a non-reparameterizable q (OneHotCategorical), small enough to enumerate."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.q_logits = tf.Variable([[0.3, -0.2, 0.1], [-0.5, 0.4, 0.0]])
    self.weights = tf.Variable([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]])

  def encoder(self, x):
    logits = tf.broadcast_to(self.q_logits, tf.concat([tf.shape(x)[:1], [2, 3]], 0))
    return tfd.Independent(tfd.OneHotCategorical(logits=logits, dtype=tf.float32), 1)

  def decoder(self, z):
    loc = tf.reduce_sum(z * self.weights, [-2, -1])[..., None]
    return tfd.Independent(tfd.Normal(loc, 1.0), 1)

  def vae(self):
    prior = tfd.Independent(tfd.OneHotCategorical(logits=tf.zeros([2, 3]), dtype=tf.float32), 1)
    return tfpvi.VAE(self.encoder, self.decoder, prior)

  @staticmethod
  def states():
    """The 9 joint states, [9, 2, 3] one-hot."""
    eye = np.eye(3, dtype=np.float32)
    return tf.constant([np.stack([eye[i], eye[j]]) for i, j in itertools.product(range(3), range(3))])
