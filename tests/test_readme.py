"""Every code block of the README and of the documentation pages (docs/*.md) runs as printed.

Python blocks (the README's, then docs/index.md's, docs/guide.md's, ...) run in order in one fresh
interpreter, in a temporary folder, with tests/doc_sizes
on PYTHONPATH (`fit` runs at most 20 steps and importance sampling at most 50 samples; see
tests/doc_sizes/sitecustomize.py):
the text a user copies is the text that runs. Bash blocks are checked, not run (`make run` trains
for half an hour): every `make` target exists in the Makefile, and every `python -m MODULE ...`
line names a module whose --help works and lists each flag the line uses.
"""

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The README first: the user guide's blocks continue its Quick start.
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
DOC_SIZES = str(ROOT / "tests" / "doc_sizes")  # its sitecustomize caps fit and importance sampling


def code_blocks(language, pages=PAGES):
  return [
    block
    for page in pages
    for block in re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.MULTILINE | re.DOTALL)
  ]


def command_lines():
  for block in code_blocks("bash"):
    for line in block.splitlines():
      line = line.split("#", 1)[0].strip()
      if line:
        yield line


def test_the_readme_has_the_blocks_this_test_runs():
  assert len(code_blocks("python", [README])) >= 1  # the Quick start
  assert len(code_blocks("python")) >= 5  # and the user guide's
  assert any(line.startswith("make run") for line in command_lines())
  assert len(README.read_text().encode()) < 10_000, "the README is what a newcomer reads in five minutes"


def test_python_blocks_run_as_printed(tmp_path):
  script = "\n\n".join(code_blocks("python"))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([DOC_SIZES, str(ROOT)]), CUDA_VISIBLE_DEVICES="")
  result = subprocess.run(
    [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
  )
  assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-5000:]}"
  assert "tests/doc_sizes: fit runs at most 20 steps" in result.stderr  # the toy sizes were in force
  log_px = re.search(r"test log p\(x\) = (\S+) nats per image", result.stdout)
  assert log_px and float(log_px.group(1)) < 0, f"log p(x) of binary images must be negative:\n{result.stdout}"
  bits = re.search(r"untrained: (\S+) bits/dim bound", result.stdout)
  # -log2 p(x) / dims of 8-bit images: positive (a sign error makes it negative)
  assert bits and 0 < float(bits.group(1)) < 100, f"bits/dim must be positive:\n{result.stdout}"
  iwae = re.search(r"IWAE-5 bound (\S+) nats", result.stdout)
  assert iwae and float(iwae.group(1)) < 0, f"a bound on log p(x) of binary images must be negative:\n{result.stdout}"
  assert (tmp_path / "runs" / "mine" / "loss.png").stat().st_size > 0
  assert (tmp_path / "runs" / "mine").is_dir()


def test_make_targets_exist():
  makefile = (ROOT / "Makefile").read_text()
  for line in command_lines():
    if line.startswith("make "):
      target = shlex.split(line)[1]
      assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.MULTILINE), f"no make target {target!r}"


@pytest.mark.parametrize("line", [line for line in command_lines() if line.startswith("python -m ")])
def test_commands_exist_with_their_flags(line):
  words = shlex.split(line)
  module = words[2]
  result = subprocess.run(
    [sys.executable, "-m", module, "--help"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=str(ROOT)),
  )
  assert result.returncode == 0, result.stderr[-3000:]
  for flag in (word.split("=")[0] for word in words[3:] if word.startswith("--")):
    assert flag in result.stdout, f"{module} --help does not list {flag}"
  if module == "tfpvi.data":  # sub-commands: their own --help
    sub = subprocess.run(
      [sys.executable, "-m", module, words[3], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert sub.returncode == 0, sub.stderr[-3000:]


def test_make_targets_named_in_the_docs_exist():
  makefile = (ROOT / "Makefile").read_text()
  for page in sorted((ROOT / "docs").glob("*.md")):
    for target in re.findall(r"make ([a-z][a-z-]*)", page.read_text()):
      assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), f"{page.name}: make {target}"


def test_every_tutorial_is_a_notebook_of_colab_and_every_notebook_a_tutorial():
  """docs/tutorials/ links each notebook of colab/ (the site renders them; docs/hooks.py adds the Colab link)."""
  tutorials = {p.name: p.resolve() for p in (ROOT / "docs" / "tutorials").glob("*.ipynb")}
  notebooks = {p.name: p.resolve() for p in (ROOT / "colab").glob("*.ipynb")}
  assert tutorials == notebooks
  nav = (ROOT / "mkdocs.yml").read_text()
  assert all(f"tutorials/{name}" in nav for name in notebooks)


def test_the_main_jobs_table_is_the_collected_run():
  """The README's results table is docs/results/iwae/results.json (the run the iwae page shows), not typed."""
  import json

  results = json.loads((ROOT / "docs" / "results" / "iwae" / "results.json").read_text())
  assert results["command"] in ("python -m experiments.iwae", "python -m experiments.iwae --output_dir runs/iwae"), (
    "not the CPU default"
  )
  rows = re.findall(r"^\| (VAE|IWAE) k=(\d+) \| (.*) \|$", README.read_text(), flags=re.MULTILINE)
  assert len(rows) == len(results["metrics"]) == 3
  for name, k, cells in rows:
    metrics = results["metrics"][f"{name.lower()}_k{k}"]
    expected = [
      f"{metrics['test_log_px']:.2f} +- {metrics['test_log_px_standard_error']:.2f}",
      f"{metrics['test_bits_per_dim']:.4f}",
      str(metrics["active_units"]),
      f"{metrics['train_seconds']:.0f} s",
    ]
    assert [c.strip() for c in cells.split("|")] == expected, (name, k)
