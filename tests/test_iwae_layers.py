"""experiments.iwae --layers 2 and --prior, and model specs that rebuild them (and conv models) for tfpvi.evaluate."""

import json
import pathlib
import tempfile

import numpy as np
import pytest
import tensorflow as tf

import tfpvi
from experiments import common
from experiments import iwae as experiment
from tfpvi.cli import evaluate
from tfpvi.models import conv, specs


def _run(*flags) -> pathlib.Path:
  out = pathlib.Path(tempfile.mkdtemp()) / "run"
  experiment.main(["--smoke", "--output_dir", str(out), *flags])
  return out


def _evaluate(run_dir) -> dict:
  assert evaluate.main([str(run_dir), "--num_samples", "8", "--examples", "4", "--batch_size", "4"]) == 0
  return json.loads((run_dir / "evaluation.json").read_text())


def test_two_layer_smoke_run_is_rebuilt_by_tfpvi_evaluate():
  out = _run("--layers", "2", "--models", "iwae:2")
  run_dir = out / "iwae_k2"
  model_config = tfpvi.run_record.read(run_dir)["model"]["config"]
  assert model_config["encoder"]["class"] == "tfpvi.models.hierarchical:TwoLayerEncoder"
  assert list(tfpvi.config.from_config(model_config["encoder"]).get_config()["latent_sizes"]) == [4, 2]
  metrics = json.loads((out / "results.json").read_text())["metrics"]["iwae_k2"]
  assert metrics["layers"] == 2 and set(metrics["active_units"]) == {"z1", "z2"}
  assert metrics["burda_2016_test_nll"] is None  # Burda et al. report k = 1, 5, 50
  assert np.isfinite(_evaluate(run_dir)["log_px"])
  model, _ = evaluate.restore(run_dir)
  # The output bias (the clipped logits of the training pixel means) comes back from the checkpoint.
  train_images, _ = common.mnist_like("mnist", "train", experiment.Config.SMOKE["train_examples"])
  expected = tfpvi.decoders.pixel_mean_logits(train_images)
  np.testing.assert_allclose(model.decoder.logit_offset.numpy(), expected, rtol=1e-6)
  assert np.ptp(expected) > 1.0


def test_vamp_prior_smoke_run_is_rebuilt_by_tfpvi_evaluate():
  out = _run("--prior", "vamp", "--models", "vae:1", "--steps", "10")
  run_dir = out / "vae_k1"
  prior = tfpvi.run_record.read(run_dir)["model"]["config"]["prior"]
  assert prior["class"] == "tfpvi.models.priors:VampPrior" and prior["config"]["encoder"] == {"same_as": "encoder"}
  assert prior["config"]["input_shape"] == [28, 28, 1] and prior["config"]["num_components"] == 5
  assert np.isfinite(_evaluate(run_dir)["log_px"])
  model, record = evaluate.restore(run_dir)
  fresh = tfpvi.config.from_config(record["model"])
  # The trained pseudo-inputs, not their initial values, are restored.
  assert not np.allclose(model._prior.pseudo_inputs.numpy(), fresh._prior.pseudo_inputs.numpy())
  table = experiment._table(json.loads((out / "results.json").read_text())["metrics"])
  assert "VAE k=1, 1 layer, vamp prior" in table


@pytest.mark.parametrize(
  "flags, folder",
  [
    ([], "runs/iwae"),
    (["--layers", "2"], "runs/iwae_2layer"),
    (["--prior", "mog"], "runs/iwae_prior_mog"),
    (["--layers", "2", "--output_dir", "elsewhere"], "elsewhere"),
  ],
)
def test_default_output_folder_depends_on_the_model(flags, folder):
  config, *_ = common.parse_config(experiment.Config, flags, "")
  assert config.output_dir == folder


def test_learned_prior_with_two_layers_is_refused(capsys):
  with pytest.raises(SystemExit) as error:
    common.parse_config(experiment.Config, ["--layers", "2", "--prior", "vamp"], "")
  assert error.value.code == 2
  assert "--prior vamp is for the one-layer model" in capsys.readouterr().err


def test_results_table_shows_burda_beside_ours():
  metrics = {
    "iwae_k50": {
      "train_steps": 10,
      "train_seconds": 1.0,
      "test_log_px": -90.0,
      "test_bits_per_dim": 0.17,
      "active_units": {"z1": 20, "z2": 5},
      "ess_mean": 3.0,
      "khat_fraction_above_0_7": 0.5,
      "layers": 2,
      "prior": "normal",
      "burda_2016_test_nll": 82.90,
    }
  }
  row = experiment._table(metrics).splitlines()[1]
  assert row.split()[:4] == ["IWAE", "k=50,", "2", "layers"]
  assert "-90.00" in row and "-82.90" in row and "20+5" in row


# ---------------------------------------------------------------------------------------------
# Record round trips: the model's config in run.json beside a checkpoint, rebuilt with
# tfpvi.evaluate.restore, same numbers.


def _round_trip(model, x):
  folder = pathlib.Path(tempfile.mkdtemp())
  seed = tf.constant([3, 4])
  before = model.log_weights(x, 3, seed=seed)
  tfpvi.run_record.write(
    folder,
    {
      "model": tfpvi.config.to_config(model),
      "data": {"name": "mnist", "format": "binary"},
      "settings": {"data": {"example": {"shape": list(x.shape[1:])}}},
    },
  )
  tf.train.Checkpoint(model=model).save(str(folder / "checkpoints" / "ckpt"))
  restored, _ = evaluate.restore(folder)
  after = restored.log_weights(x, 3, seed=seed)
  for a, b in zip(tf.nest.flatten(before), tf.nest.flatten(after)):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-4)
  return restored


def _binary(shape):
  return tf.cast(tf.random.stateless_uniform(shape, seed=[1, 2]) > 0.5, tf.float32)


def test_hierarchical_spec_round_trip():
  x = _binary([3, 6, 6, 1])
  model = tfpvi.hierarchical.burda_two_layer(
    x.numpy(), output_shape=[6, 6, 1], latent_sizes=(3, 2), hidden_sizes=((8, 8), (4, 4))
  )
  expected = tfpvi.hierarchical.two_layer_spec(
    output_shape=[6, 6, 1], latent_sizes=(3, 2), hidden_sizes=((8, 8), (4, 4))
  )
  assert specs.differences(expected, dict(expected, kind=None))[0] == "kind: 'hierarchical' vs 'flat'"
  restored = _round_trip(model, x)
  written = tfpvi.config.to_config(model)
  assert tfpvi.config.differences(written, tfpvi.config.to_config(restored)) == []
  assert tfpvi.config.differences(written, tfpvi.config.to_config(specs.build(expected))) == []


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_learned_prior_spec_round_trip(prior):
  encoder = tfpvi.encoders.GaussianMLP([8], 2, activation=tf.nn.tanh)
  module = (
    tfpvi.priors.MixtureOfGaussians(2, 3, seed=5)
    if prior == "mog"
    else tfpvi.priors.VampPrior(encoder, [6, 6, 1], 4, seed=5)
  )
  model = tfpvi.VAE(encoder, tfpvi.decoders.BernoulliMLP([8], [6, 6, 1], activation=tf.nn.tanh), module)
  restored = _round_trip(model, _binary([3, 6, 6, 1]))
  assert type(restored._prior) is type(module)
  if prior == "vamp":
    assert restored._prior.encoder is restored.encoder


def test_conv_spec_round_trip_as_bits_per_dim_builds_it():
  encoder = conv.ResNetEncoder(3, channels=(8, 16), blocks_per_stage=1)
  decoder = conv.ResNetDecoder([8, 8, 1], channels=(16, 8), blocks_per_stage=1, num_components=2)
  model = tfpvi.VAE(encoder, decoder, tfpvi.standard_normal_prior(3))
  written = tfpvi.config.to_config(model)
  assert written["config"]["encoder"]["config"]["channels"] == {"tuple": [8, 16]}
  x = tf.floor(tf.random.stateless_uniform([2, 8, 8, 1], seed=[5, 6], maxval=256.0))
  _round_trip(model, x)
  other = conv.ResNetEncoder(3, channels=(8, 16), blocks_per_stage=0, normalization="none")
  plain = tfpvi.VAE(other, decoder, tfpvi.standard_normal_prior(3))
  assert tfpvi.config.differences(written, tfpvi.config.to_config(plain)) == [
    "encoder.blocks_per_stage: 1 vs 0",
    "encoder.normalization: 'group' vs 'none'",
  ]
