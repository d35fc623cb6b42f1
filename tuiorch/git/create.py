"""A new repository with a first commit (the demo's)."""

from __future__ import annotations

from pathlib import Path

import pygit2

from tuiorch.git.errors import GitError


def create_repository(path: Path, files: dict[str, str], identity: tuple[str, str], message: str) -> None:
    """`git init -b main` at `path` with its own identity and `files` committed; GitError if git fails.

    The identity is the repository's own, so it works on machines (and CI) with no git identity.
    """
    try:
        repo = pygit2.init_repository(str(path), initial_head="main")
        repo.config["user.name"], repo.config["user.email"] = identity
        repo.config["commit.gpgsign"] = False
        for relative, text in files.items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        repo.index.add_all()
        repo.index.write()
        tree = repo.index.write_tree()
        signature = pygit2.Signature(*identity)
        repo.create_commit("HEAD", signature, signature, message, tree, [])
    except pygit2.GitError as exc:
        raise GitError(str(exc)) from None
