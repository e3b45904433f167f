"""MkDocs hooks of the tfpvi site: the experiment pages, and an "Open in Colab" link on every tutorial.

- The Experiments section lists one page per experiment module, generated at build time from the
  results collected in docs/results/ (`docs/experiment_pages.py`), so no number is copied by hand.
- Each tutorial page (a notebook of colab/, linked from docs/tutorials/) gets an "Open in Colab"
  link under its title, and the date and machine it was last run on (`make tutorials`).
- The Benchmarks page is the tables `make bench` last wrote (benchmarks/results_<device>.md).
"""

import importlib.util
import pathlib

from mkdocs.structure.files import File

COLAB = "https://colab.research.google.com/github/{repository}/blob/main/colab/{notebook}"
_spec = importlib.util.spec_from_file_location(
  "experiment_pages", pathlib.Path(__file__).with_name("experiment_pages.py")
)
experiment_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(experiment_pages)


def on_config(config):
  """Puts one nav entry per experiment module under "Experiments", after its overview page."""
  for entry in config["nav"]:
    if isinstance(entry, dict) and "Experiments" in entry:
      overview = entry["Experiments"]
      overview = overview if isinstance(overview, list) else [overview]
      generated = [{name: f"experiments/{name}.md"} for name in experiment_pages.experiment_modules()]
      entry["Experiments"] = [
        o for o in overview if not (isinstance(o, dict) and str(next(iter(o.values()))).startswith("experiments/"))
      ] + generated
  return config


def on_files(files, config):
  """Adds the generated experiment pages and the benchmarks page to the site's files."""
  for path, content in experiment_pages.pages().items():
    files.append(File.generated(config, path, content=content))
  files.append(File.generated(config, "benchmarks.md", content=benchmarks_page()))
  return files


def benchmarks_page() -> str:
  """The Benchmarks page: what `make bench` measures (benchmarks.core's docstring), then the tables it wrote."""
  benchmarks = pathlib.Path(__file__).parents[1] / "benchmarks"
  results = sorted(benchmarks.glob("results_*.md"))
  parts = [
    "# Benchmarks",
    "",
    experiment_pages.docstring_markdown(experiment_pages.module_docstring("core", benchmarks)),
  ]
  if not results:
    parts += ["", "No results yet: run `make bench`."]
  for path in results:
    text = path.read_text().split("\n", 1)[1]  # below the file's own title
    *suite, device = path.stem.removeprefix("results_").split("_")  # results_cpu.md, results_conv_cpu.md
    heading = f"{(' '.join(suite) or 'core').capitalize()} benchmarks, {device.upper()}"
    parts += ["", f"## {heading}", "", text.replace("\n## ", "\n### ")]
  return "\n".join(parts) + "\n"


def on_post_page(output: str, page, config) -> str:
  """Adds the Colab link (and when the stored outputs were made) under a tutorial's title."""
  source = page.file.src_uri
  if not (source.startswith("tutorials/") and source.endswith(".ipynb")):
    return output
  notebook = pathlib.PurePosixPath(source).name
  link = COLAB.format(repository=config["extra"]["repository"], notebook=notebook)
  badge = f'<p class="tfpvi-colab"><a href="{link}">Open in Colab</a>'
  ran = _ran(pathlib.Path(config["docs_dir"]) / source)
  badge += f" &middot; outputs below from a run on {ran}</p>" if ran else "</p>"
  title_end = output.find("</h1>")
  return output if title_end < 0 else output[: title_end + 5] + badge + output[title_end + 5 :]


def _ran(path: pathlib.Path) -> str:
  import json  # noqa: PLC0415

  try:
    meta = json.loads(path.read_text()).get("metadata", {}).get("tfpvi", {})
  except (OSError, ValueError):
    return ""
  return f"{meta['executed']} ({meta['machine']}, {meta['seconds']} s)" if meta.get("executed") else ""
