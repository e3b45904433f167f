"""`python -m build` makes a wheel that installs and works outside the checkout.

The wheel is built from a copy of the sources (so the checkout gets no build/ folder) and installed
by the notebook's install cell into a fresh virtual environment that sees this environment's
packages (TensorFlow and the rest, so pip has nothing to download) through a .pth file, not the
editable tfpvi.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import venv

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "colab" / "tfpvi_quickstart.ipynb"


def run(*command, **kwargs):
  result = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
  assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
  return result


def test_wheel_builds_installs_and_runs(tmp_path):
  source = tmp_path / "source"
  source.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(ROOT / name, source / name)
  for package in ("tfpvi", "experiments"):
    shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
  run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(source))
  (wheel,) = (tmp_path / "dist").glob("tfpvi-*.whl")

  env_dir = tmp_path / "fresh"
  venv.create(env_dir, with_pip=True)
  python = env_dir / "bin" / "python"
  purelib = run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
  # This environment's dependencies, as a plain path (its editable tfpvi finder is not loaded from there).
  (pathlib.Path(purelib) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
  # The notebook's install cell, as a Colab user runs it with the wheel uploaded beside the notebook.
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  shutil.copy(wheel, tmp_path / wheel.name)
  cells = [c for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
  installed = run(str(python), "-c", cells[0].source, cwd=tmp_path, env=env).stdout
  assert installed.startswith(f"tfpvi from {env_dir}"), installed

  where = run(
    str(python),
    "-c",
    "import tfpvi, experiments; print(tfpvi.__file__); print(tfpvi.VAE.__name__)",
    cwd=tmp_path,
    env=env,
  ).stdout.split()
  assert where[0].startswith(str(env_dir)), where
  assert where[1] == "VAE"
  run(str(python), "-m", "tfpvi.cli.evaluate", "--help", cwd=tmp_path, env=env)
  run(str(env_dir / "bin" / "tfpvi-evaluate"), "--help", cwd=tmp_path, env=env)
  run(str(env_dir / "bin" / "tfpvi-data"), "fetch", "--help", cwd=tmp_path, env=env)
