"""Annealed importance sampling and BDMC against the exact log p(x) of a linear-Gaussian model."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi
from tfpvi import evaluation
from tfpvi.evaluation import ais

tfd = tfp.distributions

TRUTH = tfpvi.LinearGaussian.random(data_size=10, latent_size=3, seed=0)


def data(n=12, seed=(1, 2)):
  return TRUTH.sample(n, seed=list(seed))


def test_schedules_run_from_zero_to_one():
  for betas in (ais.sigmoidal_schedule(7), ais.sigmoidal_schedule(500, delta=6.0), ais.linear_schedule(3)):
    assert betas[0] == 0.0 and betas[-1] == 1.0 and np.all(np.diff(betas) > 0)
  steps = np.diff(ais.sigmoidal_schedule(100))
  assert steps[0] < steps[50] > steps[-1]  # small steps at both ends


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("num_steps", [1, 7, 130])
def test_exact_start_gives_exact_weights_for_every_schedule(num_steps, jit_compile):
  # With pi_0 = p(z|x), every intermediate f_beta = p(z|x) p(x)^beta: each chain's log w is log p(x)
  # exactly, whatever the transitions do. Catches any increment that is missed or counted twice,
  # across segment boundaries too (steps_per_call=50).
  x = data(4)
  result = ais.ais_log_marginal_likelihood(
    TRUTH.as_vae(),
    x,
    num_steps=num_steps,
    num_chains=3,
    start="posterior",
    steps_per_call=50,
    jit_compile=jit_compile,
    seed=3,
  )
  exact = TRUTH.log_marginal(x).numpy()
  np.testing.assert_allclose(result.log_weights.numpy(), np.broadcast_to(exact, [3, 4]), atol=2e-3)
  np.testing.assert_allclose(result.standard_error.numpy(), 0.0, atol=2e-3)


def test_weights_are_unbiased_for_p_of_x():
  # E[w] = p(x) for any number of steps: with many chains, log mean w matches the exact value
  # within a few of its standard errors, even though 5 steps are far too few for each chain.
  x = data(3)
  result = ais.ais_log_marginal_likelihood(TRUTH.as_vae(), x, num_steps=5, num_chains=4000, seed=5)
  exact = TRUTH.log_marginal(x).numpy()
  error = result.log_px.numpy() - exact
  assert np.all(np.abs(error) < 4 * result.standard_error.numpy() + 0.02), (error, result.standard_error.numpy())


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("start", ["prior", "posterior"])
def test_agrees_with_exact_log_marginal(start, jit_compile):
  x = data(12)
  model = TRUTH.as_vae(TRUTH.perturbed_posterior())
  result = ais.ais_log_marginal_likelihood(
    model, x, num_steps=400, num_chains=32, start=start, jit_compile=jit_compile, seed=7
  )
  error = result.log_px.numpy() - TRUTH.log_marginal(x).numpy()
  standard_error = result.standard_error.numpy()
  assert abs(error.mean()) < 0.05, error
  assert abs(error.mean()) < 4 * np.sqrt(np.sum(standard_error**2)) / len(error) + 0.01
  assert 0.3 < float(tf.reduce_mean(result.acceptance_rate)) < 0.95


def test_same_seed_same_estimate_and_seeds_differ():
  x = data(2)
  run = lambda seed: ais.ais_log_marginal_likelihood(TRUTH.as_vae(), x, num_steps=20, num_chains=4, seed=seed)
  np.testing.assert_array_equal(run(1).log_weights.numpy(), run(1).log_weights.numpy())
  assert not np.array_equal(run(1).log_weights.numpy(), run(2).log_weights.numpy())


def test_bdmc_brackets_exact_value_and_gap_shrinks():
  gaps = []
  for num_steps in (10, 300):
    result = ais.bdmc(TRUTH.as_vae(), 16, num_steps=num_steps, num_chains=16, seed=11)
    exact = TRUTH.log_marginal(result.x).numpy()
    lower, upper = result.lower.numpy(), result.upper.numpy()
    # Stochastic bounds: in expectation lower <= log p(x) <= upper; on the mean over 16 examples
    # the slack allowed is a few Monte Carlo standard errors.
    slack = 3 * np.sqrt(np.mean(result.forward.standard_error.numpy() ** 2) / 16) + 0.02
    assert lower.mean() <= exact.mean() + slack
    assert upper.mean() >= exact.mean() - slack - 0.03
    gaps.append(float(result.gap.numpy().mean()))
  assert gaps[0] > 0.5 and gaps[1] < 0.2 * gaps[0], gaps


def hierarchical_truth():
  """z1 ~ N(0, 1), z2 | z1 ~ N(z1, 0.5^2), x | z ~ N(z1 + z2, 0.3^2): a nested (dict) latent.

  x = z1 + z2 + e is Gaussian with variance Var(2 z1 + (z2 - z1)) + 0.09 = 4 + 0.25 + 0.09.
  """
  prior = tfd.JointDistributionNamed({"z1": tfd.Normal(0.0, 1.0), "z2": lambda z1: tfd.Normal(z1, 0.5)})

  def decoder(z):
    return tfd.Independent(tfd.Normal((z["z1"] + z["z2"])[..., None], 0.3), 1)

  def encoder(x):
    batch = tf.shape(x)[0]
    return tfd.JointDistributionNamed(
      {"z1": tfd.Normal(tf.zeros([batch]), 1.5), "z2": tfd.Normal(tf.zeros([batch]), 2.0)}
    )

  return tfpvi.VAE(encoder, decoder, prior), tfd.Normal(0.0, math.sqrt(4.34))


def test_nested_latents():
  model, marginal = hierarchical_truth()
  x = tf.constant([[-1.0], [0.5], [3.0]])
  result = ais.ais_log_marginal_likelihood(model, x, num_steps=1000, num_chains=16, seed=2)
  assert set(result.final_state) == {"z1", "z2"}
  error = result.log_px.numpy() - marginal.log_prob(x[:, 0]).numpy()
  assert np.all(np.abs(error) < 4 * result.standard_error.numpy() + 0.03), (error, result.standard_error.numpy())


def bernoulli_model():
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([8], 2), tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]), tfpvi.standard_normal_prior(2)
  )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_refuses_out_of_support_data_on_every_path(jit_compile):
  model = bernoulli_model()
  eight_bit = np.full([3, 4, 4, 1], 200.0, np.float32)
  grey = np.full([3, 4, 4, 1], 0.5, np.float32)
  for images, words in ((eight_bit, "outside \\[0, 1\\]"), (grey, "strictly between 0 and 1")):
    with pytest.raises(tf.errors.InvalidArgumentError, match=words):
      ais.ais_log_marginal_likelihood(model, images, num_steps=2, num_chains=2, jit_compile=jit_compile)
    with pytest.raises(tf.errors.InvalidArgumentError, match=words):
      evaluation.evaluate_dataset(model, images, estimator=ais.AIS(num_steps=2, num_chains=2), jit_compile=jit_compile)
    with pytest.raises(tf.errors.InvalidArgumentError, match=words):
      evaluation.evaluate_dataset(model, images, 10, jit_compile=jit_compile)
    with pytest.raises(tf.errors.InvalidArgumentError, match=words):
      evaluation.log_marginal_likelihood(model, images, 10)


def test_refuses_discrete_latents_and_bad_settings():
  model = tfpvi.VAE(
    lambda x: tfd.Independent(tfd.OneHotCategorical(logits=tf.zeros([tf.shape(x)[0], 2, 3]), dtype=tf.int32), 1),
    lambda z: tfd.Independent(tfd.Normal(tf.cast(tf.reduce_sum(z, [-1, -2]), tf.float32)[..., None], 1.0), 1),
    tfd.Independent(tfd.OneHotCategorical(logits=tf.zeros([2, 3]), dtype=tf.int32), 1),
  )
  with pytest.raises(ValueError, match="continuous latents"):
    ais.ais_log_marginal_likelihood(model, tf.zeros([2, 1]), num_steps=2, num_chains=2)
  with pytest.raises(ValueError, match="num_steps must be >= 1"):
    ais.AIS(num_steps=0)
  with pytest.raises(ValueError, match="start must be one of"):
    ais.AIS(start="middle")
  with pytest.raises(ValueError, match="increasing strictly from exactly 0 to exactly 1"):
    ais.AIS(schedule=(0.0, 0.7, 0.5, 1.0))
  with pytest.raises(ValueError, match="estimator must be 'importance' or a tfpvi.evaluation.ais.AIS"):
    evaluation.evaluate_dataset(TRUTH.as_vae(), data(2).numpy(), estimator="ais")


def test_evaluate_dataset_with_ais_and_its_reading():
  x = data(6).numpy()
  summary, per_example = evaluation.evaluate_dataset(
    TRUTH.as_vae(TRUTH.perturbed_posterior()), x, estimator=ais.AIS(num_steps=200, num_chains=16), batch_size=4
  )
  assert per_example["log_px"].shape == (6,) and np.all(np.isnan(per_example["khat"]))
  assert abs(summary["log_px"] - float(tf.reduce_mean(TRUTH.log_marginal(x)))) < 0.1
  assert summary["estimator"] == "ais" and summary["num_steps"] == 200
  assert "AIS with 200 annealing steps and 16 chains" in evaluation.reading(summary)
  importance, _ = evaluation.evaluate_dataset(TRUTH.as_vae(TRUTH.perturbed_posterior()), x, 5, batch_size=4)
  sentence = evaluation.comparison(importance, summary)
  assert "nats above importance sampling (K = 5)" in sentence, sentence


def test_killed_evaluation_resumes_with_the_same_numbers(tmp_path):
  x = data(10).numpy()
  model = TRUTH.as_vae(TRUTH.perturbed_posterior())
  settings = dict(estimator=ais.AIS(num_steps=30, num_chains=4), batch_size=3, seed=4)
  uninterrupted, _ = evaluation.evaluate_dataset(model, x, **settings)
  path = tmp_path / "progress.jsonl"
  evaluation.evaluate_dataset(model, x[:7], **settings, progress_file=str(path))  # the header will differ
  with pytest.raises(ValueError, match="holds the progress of another evaluation .*num_examples"):
    evaluation.evaluate_dataset(model, x, **settings, progress_file=str(path))
  path.unlink()
  # A run "killed" after two batches and in the middle of writing the third line.
  evaluation.evaluate_dataset(model, x[:6], **settings, progress_file=str(tmp_path / "scratch.jsonl"))
  lines = (tmp_path / "scratch.jsonl").read_text().splitlines()
  header = json.loads(lines[0])
  header["settings"].update(num_examples=10, fingerprint=evaluation.marginal._fingerprint(model, x))
  path.write_text(json.dumps(header) + "\n" + "\n".join(lines[1:3]) + "\n" + '{"start": 6, "log_p')
  kept = path.read_text().splitlines()[:3]
  resumed, _ = evaluation.evaluate_dataset(model, x, **settings, progress_file=str(path))
  assert path.read_text().splitlines()[:3] == kept  # the batches done before the "kill" are used as they were
  # Equal up to TensorFlow's multi-threaded CPU kernels, which now and then differ by 1 ulp.
  assert abs(resumed["log_px"] - uninterrupted["log_px"]) < 4 * uninterrupted["monte_carlo_standard_error"]
  assert len(path.read_text().splitlines()) == 1 + 4  # header and the 4 batches, the torn line replaced
  path.write_text(path.read_text().replace('"start": 3', '"begin": 3'))
  with pytest.raises(ValueError, match="line 3 is not a batch of results"):
    evaluation.evaluate_dataset(model, x, **settings, progress_file=str(path))


def test_an_explicit_schedule_is_the_named_one_it_equals():
  x = data(2)
  run = lambda schedule: ais.ais_log_marginal_likelihood(
    TRUTH.as_vae(), x, num_steps=10, num_chains=3, schedule=schedule, seed=4
  ).log_weights.numpy()
  np.testing.assert_array_equal(run(np.linspace(0.0, 1.0, 11)), run("linear"))
  assert ais.AIS(schedule=np.linspace(0.0, 1.0, 5)).num_steps == 4
