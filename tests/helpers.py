"""Small models shared by the tests."""

import tensorflow as tf

import tfpvi


def small_bernoulli_vae(latent_size=3, image_shape=(4, 4, 1), hidden=(16,)):
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP(list(hidden), latent_size),
    tfpvi.decoders.BernoulliMLP(list(hidden), list(image_shape)),
    tfpvi.standard_normal_prior(latent_size),
  )


def binary_images(batch=6, shape=(4, 4, 1), seed=0):
  return tf.cast(tf.random.stateless_uniform([batch, *shape], seed=[seed, 1]) > 0.5, tf.float32)
