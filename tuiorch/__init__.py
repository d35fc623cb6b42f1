"""tuiorch: supervise a pool of coding agents, each in its own git worktree."""

__version__ = "0.1.0"
