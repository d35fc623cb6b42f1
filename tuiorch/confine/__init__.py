"""Agents confined to their worktree and task branch: a bubblewrap sandbox and a private repository."""
