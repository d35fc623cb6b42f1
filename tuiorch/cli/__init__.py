"""The command line, one module per group of subcommands; `main` is the `tuiorch` entry point."""

from tuiorch.cli.entry import main

__all__ = ["main"]
