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


def test_commands_start_without_tensorflow_startup_lines():
  """`python -m tfpvi.cli.evaluate --help` prints no oneDNN / CUDA / cpu_feature_guard lines."""
  import os
  import pathlib
  import subprocess
  import sys

  env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFPVI_SHOW_STARTUP_LOG")}
  root = pathlib.Path(__file__).resolve().parent.parent
  use_tensorflow = "import tfpvi; import tensorflow as tf; tf.constant(1.0) + 1"
  for command in (["-m", "tfpvi.cli.evaluate", "--help"], ["-c", use_tensorflow]):
    result = subprocess.run([sys.executable, *command], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in ("cuInit", "oneDNN", "cpu_feature_guard", "cuda drivers", "absl::InitializeLog"):
      assert noise not in result.stderr, f"{command}: {noise!r} in stderr:\n{result.stderr}"
  # The filter passes other lines through.
  code = (
    "import os\nfrom tfpvi import _startup\nwith _startup.filtered_native_stderr():\n  os.write(2, b'real error\\n')"
  )
  result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300)
  assert "real error" in result.stderr


def test_tfpvi_works_without_the_plotting_stack_and_plot_says_how_to_get_it():
  """Without plotnine and matplotlib (the plot extra), tfpvi imports and trains; only tfpvi.plot needs them."""
  import subprocess
  import sys

  blocked = (
    "import sys\nfor name in ('plotnine', 'matplotlib'): sys.modules[name] = None  # not installed\n"
    "import numpy as np, tfpvi\n"
    "model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([4], 2), tfpvi.decoders.BernoulliMLP([4], [2, 2, 1]), "
    "tfpvi.standard_normal_prior(2))\n"
    "value = tfpvi.objectives.elbo(model, np.ones([3, 2, 2, 1], np.float32), seed=0)\n"
    "print(float(value.numpy().mean()) < 0)\n"
    "print('plotnine' in sys.modules and sys.modules['plotnine'] is not None)\n"
    "tfpvi.plot\n"
  )
  result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=300)
  assert result.stdout.split() == ["True", "False"], result.stderr[-2000:]
  assert result.returncode == 1
  assert "tfpvi.plot needs plotnine and matplotlib" in result.stderr and "pip install 'tfpvi[plot]'" in result.stderr
