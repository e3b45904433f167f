"""Importance-sampled log p(x) against the linear-Gaussian truth."""

import math

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

import tfpvi
from tfpvi import evaluation


def setup(num_examples=50):
  truth = tfpvi.LinearGaussian.random(data_size=6, latent_size=3, noise_scale=0.6, seed=11)
  return truth, truth.sample(num_examples, seed=[3, 3])


class LogMarginalLikelihoodTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.parameters((1, 1), (7, 3), (64, 10), (100, 100))
  def test_exact_with_exact_posterior_for_any_num_samples(self, num_samples, chunk_size):
    truth, x = setup()
    estimate = evaluation.log_marginal_likelihood(truth.as_vae(), x, num_samples, chunk_size=chunk_size, seed=[1, 1])
    self.assertEqual(estimate.shape, [50])
    self.assertAllClose(estimate, truth.log_marginal(x), atol=2e-3)

  def test_converges_as_num_samples_grows(self):
    truth, x = setup(100)
    model = truth.as_vae(truth.perturbed_posterior(shift=0.15, scale_factor=1.3))
    exact = truth.log_marginal(x)
    errors = []
    for num_samples in (1, 10, 100, 2000):
      estimate = evaluation.log_marginal_likelihood(model, x, num_samples, chunk_size=256, seed=[2, 2])
      errors.append(float(tf.reduce_mean(tf.abs(estimate - exact))))
    self.assertEqual(errors, sorted(errors, reverse=True), msg=str(errors))
    self.assertLess(errors[-1], 0.03)
    self.assertGreater(errors[0], 10 * errors[-1])

  def test_chunking_does_not_change_the_estimator(self):
    truth, x = setup(200)
    model = truth.as_vae(truth.perturbed_posterior(shift=0.3, scale_factor=1.2))
    exact = truth.log_marginal(x)
    # Different chunkings draw different samples; both must be unbiased to within their error.
    for chunk_size in (1000, 37):
      stats = evaluation.importance_sampling_stats(model, x, 1000, chunk_size=chunk_size, seed=[4, 4])
      error = stats.log_mean_weight - exact
      tolerance = 4 * float(tf.reduce_mean(stats.standard_error)) / math.sqrt(200.0) + 1e-3
      self.assertLess(abs(float(tf.reduce_mean(error))), tolerance)
      self.assertAllInRange(stats.effective_sample_size, 1.0, 1000.0)

  def test_prior_proposal_is_worse_than_posterior(self):
    truth, x = setup(100)
    model = truth.as_vae(truth.perturbed_posterior(shift=0.2, scale_factor=1.1))
    exact = truth.log_marginal(x)
    kwargs = dict(num_samples=200, chunk_size=200, seed=[5, 5])
    naive = evaluation.log_marginal_likelihood(model, x, proposal="prior", **kwargs)
    informed = evaluation.log_marginal_likelihood(model, x, **kwargs)
    self.assertLess(float(tf.reduce_mean(tf.abs(informed - exact))), float(tf.reduce_mean(tf.abs(naive - exact))))

  def test_largest_log_weights_are_sorted_and_bounded(self):
    truth, x = setup(4)
    model = truth.as_vae(truth.perturbed_posterior())
    stats = evaluation.importance_sampling_stats(model, x, 500, chunk_size=64, tail_size=25, seed=[6, 6])
    tail = stats.largest_log_weights.numpy()
    self.assertEqual(tail.shape, (4, 25))
    self.assertTrue(np.all(np.diff(tail, axis=1) <= 0))
    self.assertAllLessEqual(tail[:, 0] - stats.log_sum_weights.numpy(), 1e-5)

  def test_compiles_with_xla(self):
    truth, x = setup(8)
    fn = tf.function(
      lambda x: evaluation.log_marginal_likelihood(truth.as_vae(), x, 1001, chunk_size=100),
      jit_compile=True,
    )
    self.assertAllClose(fn(x), truth.log_marginal(x), atol=2e-3)


class BitsPerDimTest(tf.test.TestCase):
  def test_units(self):
    self.assertAllClose(evaluation.bits_per_dim(-784 * math.log(2.0), 784), 1.0)
    self.assertAllClose(evaluation.bits_per_dim([-87.08], 784), [87.08 / 784 / math.log(2.0)])
    with self.assertRaisesRegex(ValueError, "num_dims must be >= 1"):
      evaluation.bits_per_dim(-1.0, 0)


def test_evaluate_dataset_shows_progress_and_reads_its_diagnostics(capsys):
  truth, x = setup(12)
  model = truth.as_vae(truth.perturbed_posterior(shift=0.3, scale_factor=1.2))
  summary, _ = evaluation.evaluate_dataset(model, x.numpy(), 60, batch_size=5, progress=True, jit_compile=False)
  err = capsys.readouterr().err
  assert "log p(x), K=60" in err and "12/12" in err
  evaluation.evaluate_dataset(model, x.numpy(), 60, batch_size=5, progress=False, jit_compile=False)
  assert capsys.readouterr().err == ""
  line = evaluation.reading(summary)
  assert "effective sample size" in line and "of K = 60" in line
  assert evaluation.reading(dict(summary, khat_fraction_above_0_7=0.0)).startswith("Reliable: Pareto k-hat < 0.7")
  assert evaluation.reading(dict(summary, khat_fraction_above_0_7=1.0)).startswith("Not reliable for 100% of examples")


def test_evaluate_command_on_a_folder_written_by_fit_alone(tmp_path, capsys):
  import functools
  import json

  import sonnet as snt

  from tfpvi.cli import evaluate

  model = tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([8], 2), tfpvi.decoders.BernoulliMLP([8], [28, 28, 1]), tfpvi.standard_normal_prior(2)
  )
  images = np.random.RandomState(0).binomial(1, 0.2, [40, 28, 28, 1]).astype(np.float32)
  tfpvi.train.fit(
    model,
    functools.partial(tfpvi.objectives.elbo, num_samples=1),
    images,
    optimizer=snt.optimizers.Adam(1e-3),
    steps=2,
    batch_size=20,
    output_dir=str(tmp_path),
    logging=tfpvi.train.Logging(progress=False),
  )
  argv = [str(tmp_path), "--num_samples", "40", "--examples", "10", "--batch_size", "5", "--no-progress"]
  assert evaluate.main(argv) == 2
  assert "pass --data mnist or --data fashion_mnist" in capsys.readouterr().err
  assert evaluate.main(argv + ["--data", "mnist"]) == 0
  out = capsys.readouterr().out
  assert "mnist test, 10 examples, K = 40" in out and "  reading        " in out
  record = json.loads((tmp_path / "evaluation.json").read_text())
  assert record["data"] == {"name": "mnist", "format": "binary"} and record["reading"]


def test_evaluating_many_models_in_one_process_warns_of_no_retracing():
  import subprocess
  import sys
  import textwrap

  script = textwrap.dedent("""
      import numpy as np
      import tfpvi
      x = (np.random.RandomState(0).rand(10, 4, 4, 1) > 0.5).astype("float32")
      for i in range(6):
        model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([4], 2), tfpvi.decoders.BernoulliMLP([4], [4, 4, 1]),
                          tfpvi.standard_normal_prior(2))
        for size in (10, 7):  # the same model again, on another number of examples
          tfpvi.evaluation.evaluate_dataset(model, x[:size], 8, batch_size=4, progress=False, jit_compile=False)
        assert len(tfpvi.xla.cached_keys(model)) == 1
      print("evaluated")
  """)
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and "evaluated" in result.stdout, result.stderr[-3000:]
  assert "retracing" not in result.stderr, result.stderr[-3000:]


def test_evaluate_dataset_reads_datasets_like_arrays():
  truth = tfpvi.LinearGaussian.random(data_size=4, latent_size=2, seed=1)
  x = truth.sample(7, seed=[3, 4]).numpy()
  labels = np.arange(7)
  expected, _ = evaluation.evaluate_dataset(truth.as_vae(), x, 20, batch_size=3)
  for dataset in (
    tf.data.Dataset.from_tensor_slices(x),
    tf.data.Dataset.from_tensor_slices(x).batch(2),
    tf.data.Dataset.from_tensor_slices((x, labels)).batch(3),
    tf.data.Dataset.from_tensor_slices({"image": x, "label": labels}),
  ):
    summary, _ = evaluation.evaluate_dataset(truth.as_vae(), dataset, 20, batch_size=3)
    assert summary == expected
  with pytest.raises(TypeError, match="stack them first"):
    evaluation.evaluate_dataset(truth.as_vae(), list(x), 20)
  with pytest.raises(TypeError, match="needs an 'image' entry"):
    evaluation.evaluate_dataset(truth.as_vae(), tf.data.Dataset.from_tensor_slices({"x": x}), 20)
