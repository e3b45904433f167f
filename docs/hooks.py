"""MkDocs hooks of the tfpvi site: an "Open in Colab" link at the top of every tutorial page."""

import pathlib

COLAB = "https://colab.research.google.com/github/{repository}/blob/main/colab/{notebook}"


def on_post_page(output: str, page, config) -> str:
  """Adds the Colab link under a tutorial's title (the notebooks live in colab/, linked from docs/tutorials/)."""
  source = page.file.src_uri
  if not (source.startswith("tutorials/") and source.endswith(".ipynb")):
    return output
  link = COLAB.format(repository=config["extra"]["repository"], notebook=pathlib.PurePosixPath(source).name)
  badge = f'<p class="tfpvi-colab"><a href="{link}">Open in Colab</a></p>'
  title_end = output.find("</h1>")
  return output if title_end < 0 else output[: title_end + 5] + badge + output[title_end + 5 :]
