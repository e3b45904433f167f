"""The site's experiment pages, generated from the runs' results.json and figures (no number copied by hand).

A run's results are collected into the repository with

    python docs/experiment_pages.py collect runs/iwae [runs/flows ...]     # or: make docs-results RUNS="..."

which copies its results.json and figures into docs/results/FOLDER/ (a smoke run, or a folder
without a finished results.json, is refused, saying why). `make docs` then writes one page per
experiment module, experiments/NAME.md, from everything collected for it (docs/hooks.py calls
`pages`): what the experiment does (its module docstring), and for each collected run the command
that produced it, the machine and the date, its numbers as tables, the papers' numbers where the
experiment records them, and its figures. An experiment with nothing collected yet says how to
collect it.
"""

from __future__ import annotations

import ast
import json
import math
import pathlib
import shutil
import sys
import tempfile
from typing import Any, Iterable

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
EXPERIMENTS = ROOT / "experiments"
NOT_EXPERIMENTS = {"__init__", "common"}


class CollectError(ValueError):
  """A run folder that cannot be collected: the message names the file and what to do."""


# -- collecting ------------------------------------------------------------------------------------


def collect(run_dir, results_dir: pathlib.Path = RESULTS) -> pathlib.Path:
  """Copies run_dir's results.json and figures (*.png) into results_dir/<run_dir's name>/, replacing it.

  Raises:
    CollectError: if run_dir has no results.json (the run has not finished), holds a smoke run, or
      its results.json predates the command, machine and date records (rerun it).
  """
  run_dir = pathlib.Path(run_dir)
  results_file = run_dir / "results.json"
  if not results_file.is_file():
    raise CollectError(f"{results_file} does not exist: the run has not finished; run it to the end, then collect it.")
  results = json.loads(results_file.read_text())
  record = run_dir / "run.json"
  if record.is_file() and (json.loads(record.read_text()).get("experiment") or {}).get("smoke"):
    raise CollectError(f"{run_dir} holds a --smoke run (a tiny model, not a result); collect a real run's folder.")
  missing = [key for key in ("experiment", "command", "machine", "finished") if not results.get(key)]
  if missing:
    raise CollectError(
      f"{results_file} has no {', '.join(missing)} (written before results.json recorded them); rerun "
      f"{results.get('experiment') or 'the experiment'} into that folder (it resumes and rewrites results.json)."
    )
  target = results_dir / run_dir.resolve().name
  results_dir.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=results_dir))
  try:
    shutil.copy2(results_file, staging / "results.json")
    for figure in sorted(run_dir.glob("*.png")):
      shutil.copy2(figure, staging / figure.name)
    if target.exists():
      shutil.rmtree(target)
    staging.rename(target)
  finally:
    if staging.exists():
      shutil.rmtree(staging)
  return target


# -- what is collected -------------------------------------------------------------------------


def experiment_modules(experiments: pathlib.Path = EXPERIMENTS) -> list[str]:
  """The experiment modules' names (iwae, flows, ...), from the files in experiments/."""
  return sorted(p.stem for p in experiments.glob("*.py") if p.stem not in NOT_EXPERIMENTS)


def module_docstring(name: str, experiments: pathlib.Path = EXPERIMENTS) -> str:
  """The module's docstring, read without importing it (the site builds without TensorFlow running)."""
  tree = ast.parse((experiments / f"{name}.py").read_text())
  return ast.get_docstring(tree) or ""


def docstring_markdown(doc: str) -> str:
  """A module docstring as markdown: its lists and its References section become markdown lists.

  A docstring starts a list on the line after its sentence ("... estimated\n- by ...") and indents its
  references under "References:" (continuation lines deeper); markdown needs a blank line before a
  list, and would run the references together into one paragraph. Indented command lines after a
  blank line are left as they are (code blocks).
  """
  out: list[str] = []
  lines = doc.splitlines()
  i = 0
  while i < len(lines):
    line = lines[i]
    if line.strip() == "References:":
      if out and out[-1].strip():
        out.append("")
      out += ["**References**", ""]
      i += 1
      while i < len(lines) and (lines[i].startswith("  ") or not lines[i].strip()):
        text = lines[i]
        if text.startswith("  ") and not text.startswith("    "):  # a new reference
          out.append(f"- {text.strip()}")
        elif text.strip():  # its continuation
          out[-1] += f" {text.strip()}"
        i += 1
      continue
    starts_list = line.startswith("- ") and not _in_list(out)
    ends_list = line.strip() and not line.startswith((" ", "- ")) and _in_list(out)
    if out and out[-1].strip() and (starts_list or ends_list):
      out.append("")
    out.append(line)
    i += 1
  return "\n".join(out)


def _in_list(lines: list[str]) -> bool:
  """Whether the last line belongs to a markdown list item (the item's line or its indented continuation)."""
  for line in reversed(lines):
    if not line.strip():
      return False
    if line.startswith("- "):
      return True
    if not line.startswith(" "):
      return False
  return False


def collected(results_dir: pathlib.Path = RESULTS) -> dict[str, list[tuple[str, dict, list[str]]]]:
  """{module name: [(folder name, results, figure file names), ...]} for everything collected."""
  runs: dict[str, list] = {}
  for folder in sorted(p for p in results_dir.glob("*") if p.is_dir() and not p.name.startswith(".")):
    results_file = folder / "results.json"
    if not results_file.is_file():
      continue
    results = json.loads(results_file.read_text())
    module = str(results.get("experiment", "")).rpartition(".")[2]
    runs.setdefault(module, []).append((folder.name, results, sorted(p.name for p in folder.glob("*.png"))))
  return runs


# -- rendering ---------------------------------------------------------------------------------


def _scalar(value) -> bool:
  return value is None or isinstance(value, (bool, int, float, str))


def number(value) -> str:
  """A table cell: floats to 4 significant digits (2 decimals from 10 on), None as a dash."""
  if value is None:
    return "-"
  if isinstance(value, bool):
    return "yes" if value else "no"
  if isinstance(value, float):
    if math.isnan(value):
      return "nan"
    if math.isinf(value):
      return "inf" if value > 0 else "-inf"
    return f"{value:,.2f}" if abs(value) >= 10 else f"{value:.4g}"
  if isinstance(value, int):
    return f"{value:,}" if abs(value) >= 10_000 else str(value)
  return str(value).replace("|", "\\|").replace("\n", " ")


def _flatten(row: dict, prefix: str = "") -> dict[str, Any]:
  """{"a": 1, "b": {"c": 2}} -> {"a": 1, "b c": 2}; lists of scalars joined; deeper nests dropped."""
  flat = {}
  for key, value in row.items():
    name = f"{prefix}{key}"
    if _scalar(value):
      flat[name] = value
    elif isinstance(value, dict) and not prefix:
      flat.update(_flatten(value, f"{name} "))
    elif isinstance(value, list) and all(_scalar(v) for v in value):
      flat[name] = ", ".join(number(v) for v in value)
  return flat


def table(rows: dict[str, dict], corner: str = "") -> str:
  """A markdown table of {row name: {column: value}}; transposed when there are more columns than rows."""
  columns: list[str] = []
  flat = {name: _flatten(row) for name, row in rows.items()}
  for row in flat.values():
    columns += [c for c in row if c not in columns]
  if not columns:
    return ""
  if len(columns) > len(flat):  # a few runs with many numbers each: one row per number
    header = [corner or "metric", *flat]
    body = [[column, *(number(row.get(column)) for row in flat.values())] for column in columns]
  else:
    header = [corner or "", *columns]
    body = [[name, *(number(row.get(column)) for column in columns)] for name, row in flat.items()]
  lines = ["| " + " | ".join(number(h) if not isinstance(h, str) else h for h in header) + " |"]
  lines.append("|" + "---|" + "---:|" * (len(header) - 1))
  lines += ["| " + " | ".join(cells) + " |" for cells in body]
  return "\n".join(lines)


def metric_tables(metrics: dict) -> list[tuple[str, str]]:
  """(title, markdown table) for each part of a results.json's metrics, generically.

  Scalars make one table; entries whose values are all dicts make a table each (rows = their
  keys); other dict entries are the rows of the main table (one row per model, say); lists of dicts
  make a table each (one row per item).
  """
  scalars = {k: v for k, v in metrics.items() if _scalar(v)}
  rows, blocks = {}, []
  for key, value in metrics.items():
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
      blocks.append((key, table(value)))
    elif isinstance(value, dict):
      rows[key] = value
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
      blocks.append((key, table({str(i + 1): item for i, item in enumerate(value)}, corner="#")))
    elif isinstance(value, list):
      scalars[key] = ", ".join(number(v) for v in value if _scalar(v))
  out = []
  if rows:
    out.append(("", table(rows)))
  if scalars:
    out.append(
      ("", table({"value": scalars}) if len(scalars) > 1 else table({key: {"value": v} for key, v in scalars.items()}))
    )
  return [block for block in out + blocks if block[1]]


def run_section(folder: str, results: dict, figures: Iterable[str], heading: str) -> str:
  versions = results.get("versions") or {}
  lines = [
    f"## {heading}",
    "",
    "```bash",
    results.get("command", f"python -m {results.get('experiment', '')}"),
    "```",
    "",
    f"Ran on {results.get('machine', 'an unrecorded machine')}, "
    f"finished {results.get('finished', '(date not recorded)')}, "
    f"{number(results.get('seconds'))} s in all (tfpvi {versions.get('tfpvi', '?')}, TensorFlow "
    f"{versions.get('tensorflow', '?')}, devices: {', '.join(versions.get('devices', [])) or '?'}). "
    f"Collected from `runs/{folder}/` ([results.json](../results/{folder}/results.json)).",
    "",
  ]
  for title, block in metric_tables(results.get("metrics") or {}):
    if title:
      lines += [f"**{title.replace('_', ' ')}**", ""]
    lines += [block, ""]
  published = results.get("published")
  if published and published.get("values"):
    lines += [f"**Published:** {published.get('source', '')}", "", table(published["values"]), ""]
    if published.get("note"):
      lines += [f"_{published['note']}_", ""]
  trained = {name: record for name, record in (results.get("trained") or {}).items() if isinstance(record, dict)}
  if trained:
    lines += ["**What ran** (steps asked for and trained, training seconds)", "", table(trained), ""]
  for figure in figures:
    lines += [f"![{figure}](../results/{folder}/{figure})", ""]
  return "\n".join(lines)


def page(name: str, runs: list[tuple[str, dict, list[str]]], experiments: pathlib.Path = EXPERIMENTS) -> str:
  """The markdown page of experiment module `name`, from its collected runs (maybe none)."""
  doc = docstring_markdown(module_docstring(name, experiments))
  summary, _, rest = doc.partition("\n")
  lines = [f"# experiments.{name}", "", summary.strip(), ""]
  if rest.strip():
    lines += [rest.strip("\n"), ""]  # markdown: its indented commands become code blocks
  if not runs:
    lines += [
      "## Results",
      "",
      "No run of this experiment has been collected yet. Run it, then collect its folder:",
      "",
      "```bash",
      f"python -m experiments.{name}",
      f'make docs-results RUNS="runs/{name}"',
      "```",
      "",
    ]
  for folder, results, figures in runs:
    heading = "Results" if len(runs) == 1 else f"Results: {folder}"
    lines.append(run_section(folder, results, figures, heading))
  return "\n".join(lines)


def pages(results_dir: pathlib.Path = RESULTS, experiments: pathlib.Path = EXPERIMENTS) -> dict[str, str]:
  """{"experiments/NAME.md": markdown} for every experiment module."""
  runs = collected(results_dir)
  return {
    f"experiments/{name}.md": page(name, runs.get(name, []), experiments) for name in experiment_modules(experiments)
  }


def main(argv: list[str]) -> int:
  if len(argv) < 2 or argv[0] != "collect":
    print("usage: python docs/experiment_pages.py collect RUN_DIR [RUN_DIR ...]", file=sys.stderr)
    return 2
  for run_dir in argv[1:]:
    try:
      target = collect(run_dir)
    except CollectError as error:
      print(f"experiment_pages: error: {error}", file=sys.stderr)
      return 1
    print(f"{run_dir} -> {target.relative_to(ROOT)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
