"""Command-line tools: `python -m tfpvi.cli.evaluate FOLDER` evaluates a trained model folder."""
