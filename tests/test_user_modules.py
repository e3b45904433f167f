"""A user's own encoder, decoder and prior, in a module of the user's: trained, rebuilt in a fresh process,
evaluated by `python -m tfpvi.cli.evaluate` and resumed, with nothing registered in tfpvi."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

USER_MODULE = '''
"""my_models.py: modules a user writes in a file of their own."""
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

import tfpvi

tfd = tfp.distributions


@tfpvi.config.configurable
class FullCovarianceEncoder(snt.Module):
  """q(z|x) with a full covariance: a Sonnet module returning tfd.MultivariateNormalTriL."""

  def __init__(self, hidden_size, latent_size, name=None):
    super().__init__(name=name)
    self.latent_size = latent_size
    self.torso = snt.Sequential([snt.Flatten(), snt.Linear(hidden_size), tf.nn.tanh])
    self.loc = snt.Linear(latent_size)
    self.scale = snt.Linear(latent_size * (latent_size + 1) // 2)

  def __call__(self, x):
    h = self.torso(x)
    scale_tril = tfp.bijectors.FillScaleTriL(diag_shift=1e-3)(self.scale(h))
    return tfd.MultivariateNormalTriL(self.loc(h), scale_tril)


class BernoulliDecoder(snt.Module):
  """p(x|z) following the Keras convention instead: get_config() returns the constructor's arguments."""

  def __init__(self, hidden_size, image_shape, name=None):
    super().__init__(name=name)
    self.hidden_size, self.image_shape = hidden_size, list(image_shape)
    size = 1
    for d in image_shape:
      size *= d
    self.mlp = snt.nets.MLP([hidden_size, size], activation=tf.nn.tanh)

  def get_config(self):
    return {"hidden_size": self.hidden_size, "image_shape": self.image_shape}

  def __call__(self, z):
    logits = self.mlp(z)
    logits = tf.reshape(logits, tf.concat([tf.shape(logits)[:-1], self.image_shape], 0))
    return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32), len(self.image_shape))


@tfpvi.config.configurable
class LearnedGaussianPrior(snt.Module):
  """p(z) with a trained mean and diagonal scale."""

  def __init__(self, latent_size, name=None):
    super().__init__(name=name)
    self.loc = tf.Variable(tf.zeros([latent_size]), name="loc")
    self.raw_scale = tf.Variable(tf.zeros([latent_size]), name="raw_scale")

  def __call__(self):
    return tfd.MultivariateNormalDiag(self.loc, tf.nn.softplus(self.raw_scale) + 0.5)


class Unannounced(snt.Module):
  """An encoder that follows neither convention."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.linear = snt.Linear(3)

  def __call__(self, x):
    return tfd.MultivariateNormalDiag(self.linear(snt.flatten(x)), tf.ones([3]))
'''

TRAIN = """
import sys

import numpy as np
import sonnet as snt
import tfpvi

import my_models

folder, steps = sys.argv[1], int(sys.argv[2])
images = tfpvi.data.load_arrays("mnist", "train").images[:256]
x = tfpvi.data.binarize_static(images / 255.0)
model = tfpvi.VAE(my_models.FullCovarianceEncoder(32, 3), my_models.BernoulliDecoder(32, [28, 28, 1]),
                  my_models.LearnedGaussianPrior(3))
history = tfpvi.train.fit(model, tfpvi.objectives.iwae, x, optimizer=snt.optimizers.Adam(1e-3), steps=steps,
                          batch_size=32, objective_kwargs={"num_samples": 2}, output_dir=folder,
                          checkpoints=tfpvi.train.Checkpoints(every=5),
                          logging=tfpvi.train.Logging(every=5, progress=False))
print("prior loc", np.asarray(model.prior.mean()).tolist())
"""


def _run(args, cwd, timeout=600):
  env = dict(os.environ, PYTHONPATH=str(cwd), TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("user")
  (folder / "my_models.py").write_text(textwrap.dedent(USER_MODULE))
  (folder / "train.py").write_text(textwrap.dedent(TRAIN))
  return folder


def test_user_modules_train_evaluate_in_a_fresh_process_and_resume(user_dir):
  run = user_dir / "run"
  trained = _run(["train.py", str(run), "10"], user_dir)
  assert trained.returncode == 0, trained.stderr[-3000:]
  record = json.loads((run / "run.json").read_text())["model"]["config"]
  assert record["encoder"]["class"] == "my_models:FullCovarianceEncoder"
  assert record["decoder"] == {
    "class": "my_models:BernoulliDecoder",
    "config": {"hidden_size": 32, "image_shape": [28, 28, 1]},
  }
  assert record["prior"]["class"] == "my_models:LearnedGaussianPrior"

  # A fresh process rebuilds the model by importing my_models, and evaluates it.
  evaluated = _run(
    [
      "-m",
      "tfpvi.cli.evaluate",
      str(run),
      "--data",
      "mnist",
      "--format",
      "binary",
      "--num_samples",
      "8",
      "--examples",
      "16",
      "--batch_size",
      "16",
    ],
    user_dir,
  )
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  assert f"written to     {run / 'evaluation.json'}" in evaluated.stdout
  summary = json.loads((run / "evaluation.json").read_text())
  assert summary["num_examples"] == 16 and summary["checkpoint"] == "ckpt-10"
  assert -600 < summary["log_px"] < -100  # 10 steps of a 3-d model: poor, but a log-likelihood in nats

  # The trained weights are those rebuilt: the prior's trained mean comes back from the checkpoint.
  check = _run(
    [
      "-c",
      "import sys, numpy as np, tfpvi; m = tfpvi.load_model(sys.argv[1]); print(np.asarray(m.prior.mean()).tolist())",
      str(run),
    ],
    user_dir,
  )
  assert check.returncode == 0, check.stderr[-3000:]
  trained_loc = trained.stdout.split("prior loc", 1)[1].strip()
  assert check.stdout.strip() == trained_loc and trained_loc != "[0.0, 0.0, 0.0]"

  # A resumed fit in another fresh process continues from step 10: each step once in the history.
  resumed = _run(["train.py", str(run), "20"], user_dir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resuming {run} from step 10 (ckpt-10)" in resumed.stderr
  steps = [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]
  assert steps == [5, 10, 15, 20]


def test_a_module_that_does_not_describe_itself_is_refused_by_evaluate_with_what_to_add(user_dir):
  script = TRAIN.replace("my_models.FullCovarianceEncoder(32, 3)", "my_models.Unannounced()")
  (user_dir / "train_unannounced.py").write_text(textwrap.dedent(script))
  run = user_dir / "unannounced"
  trained = _run(["train_unannounced.py", str(run), "2"], user_dir)
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert "encoder: the Unannounced does not describe itself" in trained.stderr  # said at training time too
  evaluated = _run(["-m", "tfpvi.cli.evaluate", str(run), "--data", "mnist", "--format", "binary"], user_dir)
  assert evaluated.returncode == 2
  err = evaluated.stderr.strip().splitlines()
  assert len(err) == 1 and "Traceback" not in evaluated.stderr, evaluated.stderr
  assert "encoder: the Unannounced does not describe itself" in err[0]
  assert "@tfpvi.config.configurable" in err[0] and "get_config()" in err[0]


def test_a_module_defined_in_the_training_script_is_recorded_with_where_to_move_it(user_dir):
  script = USER_MODULE + TRAIN.replace("import my_models\n", "").replace("my_models.", "")
  (user_dir / "all_in_one.py").write_text(textwrap.dedent(script))
  run = user_dir / "all_in_one"
  trained = _run(["all_in_one.py", str(run), "2"], user_dir)
  assert trained.returncode == 0, trained.stderr[-3000:]
  note = json.loads((run / "run.json").read_text())["model_note"]
  assert "is defined in __main__" in note and "move it into a module file" in note
  assert pathlib.Path(run, "checkpoints").is_dir()


def test_a_module_defined_in_a_script_run_with_python_m_is_recorded_by_the_name_it_was_run_as(user_dir):
  """`python -m all_in_one_m` makes its classes importable as all_in_one_m.X: another process rebuilds them."""
  training = textwrap.dedent(TRAIN.replace("import my_models\n", "").replace("my_models.", ""))
  script = textwrap.dedent(USER_MODULE) + 'if __name__ == "__main__":\n' + textwrap.indent(training, "  ")
  (user_dir / "all_in_one_m.py").write_text(script)
  run = user_dir / "all_in_one_m_run"
  trained = _run(["-m", "all_in_one_m", str(run), "2"], user_dir)
  assert trained.returncode == 0, trained.stderr[-3000:]
  record = json.loads((run / "run.json").read_text())
  assert "model_note" not in record, record.get("model_note")
  assert record["model"]["config"]["encoder"]["class"] == "all_in_one_m:FullCovarianceEncoder"
  check = _run(
    ["-c", "import sys, tfpvi; m = tfpvi.load_model(sys.argv[1]); print(type(m.encoder).__module__)", str(run)],
    user_dir,
  )
  assert check.returncode == 0, check.stderr[-3000:]
  assert check.stdout.strip() == "all_in_one_m"
