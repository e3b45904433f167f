"""The public names that docs, notebooks and tools rely on."""

import tfpvi


def test_public_api_imports():
  assert callable(tfpvi.VAE)
  assert callable(tfpvi.encoders.GaussianMLP)
  for name in ("BernoulliMLP", "DiscretizedLogisticMLP", "DiscretizedLogisticMixtureMLP"):
    assert callable(getattr(tfpvi.decoders, name))
  for name in ("DiscretizedLogistic", "DiscretizedLogisticMixture"):
    assert callable(getattr(tfpvi.distributions, name))
  for name in ("elbo", "iwae"):
    assert callable(getattr(tfpvi.objectives, name))
  for name in ("log_marginal_likelihood", "bits_per_dim"):
    assert callable(getattr(tfpvi.evaluation, name))
  for module in (tfpvi, tfpvi.objectives, tfpvi.evaluation, tfpvi.distributions):
    for name in module.__all__:
      assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"
