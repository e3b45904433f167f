"""The documentation tests' toy sizes (tests/doc_sizes) cap fit at 20 steps whether it is given steps or epochs."""

import numpy as np
import pytest
import sonnet as snt

import tfpvi
from tests.doc_sizes import sitecustomize as doc_sizes
from tests.helpers import small_bernoulli_vae
from tfpvi import evaluation
from tfpvi.evaluation import marginal
from tfpvi.train import fitting


@pytest.fixture
def smoke(monkeypatch):
  """Installs the caps for one test; monkeypatch puts the original functions back afterwards."""
  for module, name in (
    (fitting, "_total_steps"),
    (marginal, "evaluate_dataset"),
    (marginal, "importance_sampling_stats"),
    (evaluation, "evaluate_dataset"),
    (evaluation, "importance_sampling_stats"),
  ):
    monkeypatch.setattr(module, name, getattr(module, name))
  monkeypatch.setattr(fitting, "_doc_sizes_installed", False, raising=False)
  doc_sizes.install()


def _fit(**kwargs):
  images = (np.random.default_rng(0).random([100, 4, 4, 1]) > 0.5).astype("float32")
  return tfpvi.train.fit(
    small_bernoulli_vae(),
    tfpvi.objectives.elbo,
    images,
    optimizer=snt.optimizers.Adam(1e-3),
    batch_size=10,
    **kwargs,
    logging=tfpvi.train.Logging(every=1, progress=False),
    loop=tfpvi.train.Loop(jit_compile=False),
  )


@pytest.mark.parametrize("kwargs", [{"epochs": 50}, {"steps": 1000}], ids=["epochs", "steps"])
def test_fit_runs_at_most_20_steps(smoke, kwargs):
  assert _fit(**kwargs)["step"].max() == 20


def test_fewer_steps_and_bad_arguments_are_untouched(smoke):
  assert _fit(epochs=0.5)["step"].max() == 5  # 100 examples / batch 10 = 10 steps an epoch
  with pytest.raises(ValueError, match="steps must be an int >= 1"):
    _fit(steps=0)
  with pytest.raises(ValueError, match="exactly one of steps or epochs"):
    _fit(steps=30, epochs=1)
