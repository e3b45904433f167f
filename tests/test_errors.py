"""Bad input gets one plain sentence that names what was expected and what came."""

import numpy as np
import pytest
import tensorflow as tf

import tfpvi

RAW_WRAPPING = ("Expected 'tf.Tensor(False", "Summarized data", "function_node", "[Op:")


def model_28x28(decoder=None):
  model = tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([8], 3),
    decoder or tfpvi.decoders.BernoulliMLP([8], [28, 28, 1]),
    tfpvi.standard_normal_prior(3),
  )
  model.log_weights(tf.zeros([2, 28, 28, 1]), 1)  # builds the variables for 28x28 images
  return model


def assert_plain(message):
  for wrapping in RAW_WRAPPING:
    assert wrapping not in message, f"TensorFlow's wrapping {wrapping!r} in: {message}"


def test_images_of_another_size_name_the_expected_shape():
  with pytest.raises(ValueError, match=r"expected x with shape \[batch, 28, 28, 1\].*got shape \[8, 32, 32, 1\]"):
    tfpvi.evaluation.log_marginal_likelihood(model_28x28(), tf.zeros([8, 32, 32, 1]), 10)


def test_an_unbatched_image_asks_for_a_batch_dimension():
  unbatched = r"got shape \[28, 28, 1\] \(one example without its batch dimension\? use x\[None\]\)"
  with pytest.raises(ValueError, match=unbatched):
    tfpvi.evaluation.log_marginal_likelihood(model_28x28(), tf.zeros([28, 28, 1]), 10)
  # A model that has not been built yet says the same (the decoder's output_shape is known).
  fresh = tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([8], 3), tfpvi.decoders.BernoulliMLP([8], [28, 28, 1]), tfpvi.standard_normal_prior(3)
  )
  with pytest.raises(ValueError, match=r"use x\[None\]"):
    tfpvi.evaluation.log_marginal_likelihood(fresh, tf.zeros([28, 28, 1]), 10)


def test_nan_x_with_the_logistic_decoder_blames_x_not_the_scale():
  model = model_28x28(tfpvi.decoders.DiscretizedLogisticMLP([8], [28, 28, 1]))
  x = tf.fill([2, 28, 28, 1], np.nan)
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    model.log_weights(x, 1)
  message = error.value.message
  assert "x: expected finite values, got 1568 NaN or Inf" in message and "scale" not in message
  assert_plain(message)
  with pytest.raises(tf.errors.InvalidArgumentError, match="x: expected finite values"):
    tf.function(lambda x: model.log_weights(x, 1))(x)


def test_grey_data_for_a_bernoulli_likelihood_says_binarize_first():
  model = model_28x28()
  grey = tf.fill([2, 28, 28, 1], 0.5)
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    model.log_weights(grey, 1)
  message = error.value.message
  assert "values strictly between 0 and 1 found; binarize first" in message, message
  assert_plain(message)
  # Inside a graph the same sentence arrives (TensorFlow adds its "assertion failed" frame).
  with pytest.raises(tf.errors.InvalidArgumentError, match="values strictly between 0 and 1 found; binarize first"):
    tf.function(lambda x: model.log_weights(x, 1))(grey)
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"values outside \[0, 1\] found \(8-bit intensities"):
    model.log_weights(tf.fill([2, 28, 28, 1], 255.0), 1)


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(batch_size=0), "batch_size must be >= 1, got 0"),
    (dict(chunk_size=0), "chunk_size must be >= 1, got 0"),
    (dict(num_samples=0), "num_samples must be >= 1, got 0"),
  ],
)
def test_evaluate_dataset_rejects_sizes_below_one(kwargs, message):
  kwargs = {"num_samples": 10, **kwargs}
  with pytest.raises(ValueError, match=message):
    tfpvi.evaluation.evaluate_dataset(model_28x28(), np.zeros([4, 28, 28, 1], np.float32), **kwargs)


def test_evaluation_on_zero_examples():
  with pytest.raises(ValueError, match="expected at least one example in images, got 0"):
    tfpvi.evaluation.evaluate_dataset(model_28x28(), np.zeros([0, 28, 28, 1], np.float32), 10)


def test_booleans_are_not_sample_counts():
  with pytest.raises(ValueError, match="num_samples must be a Python integer >= 1, got the boolean True"):
    tfpvi.checks.check_num_samples(True)
  with pytest.raises(ValueError, match="got the boolean"):
    tfpvi.evaluation.log_marginal_likelihood(model_28x28(), tf.zeros([2, 28, 28, 1]), True)
  assert tfpvi.checks.check_num_samples(np.int64(3)) == 3


def test_nan_images_are_never_binarized_silently():
  images = np.full([2, 4, 4, 1], 0.5, np.float32)
  images[1, 2, 2, 0] = np.nan
  one_nan = r"expected grey levels in \[0, 1\], got 1 NaN"
  with pytest.raises(tf.errors.InvalidArgumentError, match="binarize_dynamic: " + one_nan):
    tfpvi.data.binarize_dynamic(images, tf.constant([1, 2]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="binarize_dynamic: expected finite grey levels"):
    tf.function(tfpvi.data.binarize_dynamic)(images, tf.constant([1, 2]))
  with pytest.raises(ValueError, match=r"binarize_static: expected grey levels in \[0, 1\], got 1 NaN"):
    tfpvi.data.binarize_static(images)
  with pytest.raises(ValueError, match=r"got values from 0 to 255 \(8-bit intensities\? divide by 255 first\)"):
    tfpvi.data.binarize_static(np.array([[0.0, 255.0]]))
  # Under XLA the assertion is compiled away, but the NaN stays a NaN for fit's non-finite stop.
  compiled = tf.function(tfpvi.data.binarize_dynamic, jit_compile=True)
  out = compiled(images, tf.constant([1, 2])).numpy()
  assert np.isnan(out[1, 2, 2, 0]) and np.isin(out[0], [0.0, 1.0]).all()


def test_eight_bit_decoders_set_the_encoder_input_scale_and_refuse_raw_intensities():
  auto = tfpvi.encoders.GaussianMLP([8], 3)
  tfpvi.VAE(auto, tfpvi.decoders.DiscretizedLogisticMLP([8], [4, 4, 1]), tfpvi.standard_normal_prior(3))
  assert auto.effective_input_scale == pytest.approx(1 / 255) and auto.input_scale is None  # the spec keeps None
  binary = tfpvi.encoders.GaussianMLP([8], 3)
  tfpvi.VAE(binary, tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]), tfpvi.standard_normal_prior(3))
  assert binary.effective_input_scale == 1.0  # data in [0, 1]
  with pytest.raises(ValueError, match=r"input_scale=1 feeds the encoder inputs up to 255 .* pass input_scale=1/255"):
    tfpvi.VAE(
      tfpvi.encoders.GaussianMLP([8], 3, input_scale=1.0),
      tfpvi.decoders.DiscretizedLogisticMixtureMLP([8], [4, 4, 1], 2),
      tfpvi.standard_normal_prior(3),
    )
  explicit = tfpvi.encoders.GaussianMLP([8], 3, input_scale=1 / 255)
  tfpvi.VAE(explicit, tfpvi.decoders.DiscretizedLogisticMLP([8], [4, 4, 1]), tfpvi.standard_normal_prior(3))
  assert explicit.effective_input_scale == pytest.approx(1 / 255)


def test_eight_bit_elbo_is_of_a_sensible_size_with_the_default_encoder():
  model = tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([32], 4),
    tfpvi.decoders.DiscretizedLogisticMLP([32], [28, 28, 1]),
    tfpvi.standard_normal_prior(4),
  )
  x = tf.constant(tfpvi.data.load_arrays("mnist", "test").images[:16], tf.float32)
  elbo = tfpvi.objectives.elbo(model, x, num_samples=1, seed=[0, 1])
  # An untrained model is poor: about 13 nats per pixel (784 pixels); raw 0..255 inputs gave -1e6 to -2e8.
  assert np.all(elbo.numpy() > -784 * 25), elbo.numpy()


def test_plotting_into_a_missing_folder(tmp_path):
  history = __import__("pandas").DataFrame({"step": [1, 2], "loss": [3.0, 2.0]})
  with pytest.raises(FileNotFoundError, match="does not exist"):
    tfpvi.plot.loss_curves(history, path=str(tmp_path / "missing" / "loss.png"))


def test_an_output_dir_that_is_a_file_is_refused_in_one_sentence(tmp_path, capsys):
  import sonnet as snt

  from experiments import beta_vae

  a_file = tmp_path / "notes.txt"
  a_file.write_text("not a run folder")
  x = np.zeros([4, 28, 28, 1], np.float32)
  cases = ((a_file, "is an existing file, not a folder"), (a_file / "run", "lies under .*notes.txt, which is a file"))
  for path, words in cases:
    with pytest.raises(ValueError, match=words):
      tfpvi.train.fit(
        model_28x28(),
        tfpvi.objectives.elbo,
        x,
        optimizer=snt.optimizers.Adam(1e-3),
        steps=1,
        batch_size=2,
        output_dir=str(path),
        logging=tfpvi.train.Logging(progress=False),
      )
    with pytest.raises(SystemExit):
      beta_vae.main(["--smoke", "--output_dir", str(path)])
    err = capsys.readouterr().err
    assert "--output_dir" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
  assert a_file.read_text() == "not a run folder"


def test_a_keras_schedule_inside_a_sonnet_optimizer_and_a_list_of_images_say_what_to_do():
  import sonnet as snt
  import tf_keras

  x = (np.random.default_rng(0).uniform(size=[8, 28, 28, 1]) > 0.5).astype(np.float32)
  schedule = tf_keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=10, decay_rate=0.5)
  with pytest.raises(TypeError, match="ExponentialDecay \\(a schedule\\); Sonnet optimizers take a float") as raised:
    tfpvi.train.fit(
      model_28x28(),
      tfpvi.objectives.elbo,
      x,
      optimizer=snt.optimizers.Adam(schedule),
      steps=2,
      batch_size=4,
      logging=tfpvi.train.Logging(progress=False),
    )
  assert len(str(raised.value)) < 400
  # What the message advises works: the schedule given to fit, the rate a tf.Variable.
  optimizer = snt.optimizers.Adam(tf.Variable(1e-3))
  history = tfpvi.train.fit(
    model_28x28(),
    tfpvi.objectives.elbo,
    x,
    optimizer=optimizer,
    steps=4,
    batch_size=4,
    logging=tfpvi.train.Logging(every=1, progress=False),
    loop=tfpvi.train.Loop(learning_rate=schedule),
  )
  np.testing.assert_allclose(
    history["learning_rate"].to_numpy(), [1e-3 * 0.5 ** (s / 10) for s in history["step"]], rtol=1e-5
  )
  with pytest.raises(TypeError, match="a Python list of 8 arrays of shape \\[28, 28, 1\\].*np.stack"):
    tfpvi.train.fit(
      model_28x28(),
      tfpvi.objectives.elbo,
      list(x),
      optimizer=snt.optimizers.Adam(1e-3),
      steps=2,
      batch_size=4,
      logging=tfpvi.train.Logging(progress=False),
    )


@pytest.mark.parametrize(
  "flags, message",
  [
    (
      ["--eval_examples", "100000"],
      "--eval_examples must be <= 10000 (the size of the data it is drawn from), got 100000",
    ),
    (["--batch_size", "100000", "--train_examples", "500"], "--batch_size 100000 is larger than --train_examples 500"),
  ],
)
def test_experiment_numbers_beyond_the_data_are_refused_before_anything_is_written(
  tmp_path, monkeypatch, capsys, flags, message
):
  from experiments import iwae

  monkeypatch.chdir(tmp_path)
  with pytest.raises(SystemExit) as error:
    iwae.main(flags + ["--output_dir", "out"])
  assert error.value.code == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "out").exists()  # refused before the folder, plan or record is written


def test_a_billion_samples_say_how_long_they_will_take_before_they_start(tmp_path):
  import subprocess
  import sys

  script = (
    "import numpy as np, tfpvi\n"
    "model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([8], 2), tfpvi.decoders.BernoulliMLP([8], [4, 4, 1]), "
    "tfpvi.standard_normal_prior(2))\n"
    "tfpvi.evaluation.log_marginal_likelihood(model, np.ones([2, 4, 4, 1], np.float32), 10**9)\n"
  )
  process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
  try:
    for line in process.stderr:
      if line.startswith("tfpvi: 1,000,000,000 samples per example"):
        break
    else:
      raise AssertionError("no estimate before the long run")
  finally:
    process.kill()
    process.wait()
  assert "take 2,000,000 chunks of 500: about" in line and ("hours" in line or "days" in line), line
  assert "Ctrl-C stops it" in line


def test_ctrl_c_in_an_experiment_ends_in_one_line_without_a_traceback(capsys, monkeypatch):
  """Training has printed what it saved; the command line adds one line and exits with status 130."""
  monkeypatch.setenv("TFPVI_SHOW_STARTUP_LOG", "1")  # this test process keeps its own stderr
  from experiments import beta_vae
  from experiments import common as experiment_common

  def interrupted(argv):
    raise KeyboardInterrupt

  interrupted.__module__ = beta_vae.__name__
  with pytest.raises(SystemExit) as error:
    experiment_common.run(interrupted, [])
  assert error.value.code == 130
  err = capsys.readouterr().err
  assert err == (
    "python -m experiments.beta_vae: stopped by Ctrl-C; run the same command again to go on from what was saved.\n"
  )
