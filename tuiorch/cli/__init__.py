"""The command line, one module per group of subcommands; `main` is the `tuiorch` entry point."""

import gc

# The commands' modules make many objects that all live as long as the program: the collector, walking
# them again and again as they come, added about 10% to the start-up.
gc.disable()
try:
    from tuiorch.cli.entry import main
finally:
    gc.enable()

__all__ = ["main"]
