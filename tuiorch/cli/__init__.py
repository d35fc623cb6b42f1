"""The command line, one module per group of subcommands; `main` is the `tuiorch` entry point."""

from tuiorch.cli.main import main

__all__ = ["main"]
