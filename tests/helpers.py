"""Small models shared by the tests."""

import dataclasses

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


def fit_kwargs(defaults: dict, overrides: dict) -> dict:
  """`tfpvi.train.fit` keyword arguments: `overrides` over a test's `defaults`.

  A group object (`tfpvi.train.Logging`, `Checkpoints`, ...) given in both is merged field by
  field: the fields the override leaves at their class default keep the test's default.
  """
  merged = dict(defaults)
  for name, value in overrides.items():
    base = merged.get(name)
    if dataclasses.is_dataclass(value) and type(base) is type(value):
      changed = {
        f.name: getattr(value, f.name)
        for f in dataclasses.fields(value)
        if getattr(value, f.name) is not f.default and not _same_scalar(getattr(value, f.name), f.default)
      }
      value = dataclasses.replace(base, **changed)
    merged[name] = value
  return merged


def _same_scalar(a, b) -> bool:
  scalar = (bool, int, float, str, type(None))
  return isinstance(a, scalar) and isinstance(b, scalar) and type(a) is type(b) and a == b
