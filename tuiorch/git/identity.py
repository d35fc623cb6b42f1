"""Who commits and how: the identity, signing and hooks git itself would use in this repository."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pygit2

from tuiorch.git import proc
from tuiorch.git.repo import Repo

IDENTITY_FALLBACK = ("tuiorch", "tuiorch@localhost")


@dataclass(frozen=True)
class CommitRules:
    """How git would make a commit in this repository: who, signed or not, which hooks.

    author/committer are None when git knows no identity (it would refuse to commit); tuiorch then
    uses IDENTITY_FALLBACK.
    """

    author: tuple[str, str] | None
    committer: tuple[str, str] | None
    sign: bool
    hooks_dir: Path

    def hook(self, name: str) -> Path | None:
        """The hook git would run, or None (git skips a hook file that is not executable)."""
        path = self.hooks_dir / name
        return path if path.is_file() and os.access(path, os.X_OK) else None


def parse_ident(line: str) -> tuple[str, str] | None:
    """("Name", "email") from `git var`'s "Name <email> 1700000000 +0000"."""
    name, sep, rest = line.partition(" <")
    email, sep2, _ = rest.partition(">")
    return (name.strip(), email.strip()) if sep and sep2 else None


class Identity:
    """The repository's commit rules, asked of git once (git processes only, no libgit2 handle)."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._rules: CommitRules | None = None

    def rules(self) -> CommitRules:
        """Asked of git itself once: it alone resolves GIT_*_NAME/EMAIL, includeIf and core.hooksPath.

        Asked by two threads at once (a locked merge and an unlocked leftovers commit), git is asked
        twice and the answers are the same: no lock needed.
        """
        if self._rules is None:
            self._rules = self._ask_git()
        return self._rules

    def _ask_git(self) -> CommitRules:
        author = self._ident("GIT_AUTHOR_IDENT")
        committer = self._ident("GIT_COMMITTER_IDENT")
        sign = self.repo.git(["config", "--type=bool", "--get", "commit.gpgsign"])
        return CommitRules(
            author=author,
            committer=committer,
            sign=sign.returncode == 0 and sign.stdout.strip() == b"true",
            hooks_dir=self._hooks_dir(),
        )

    def _ident(self, variable: str) -> tuple[str, str] | None:
        """(name, email) of git's GIT_AUTHOR_IDENT or GIT_COMMITTER_IDENT; None when git knows nobody."""
        done = self.repo.git(["var", variable])
        return parse_ident(done.stdout.decode(errors="replace").strip()) if done.returncode == 0 else None

    def _hooks_dir(self) -> Path:
        hooks = self.repo.git(["rev-parse", "--git-path", "hooks"])
        hooks_dir = Path(os.fsdecode(hooks.stdout.strip())) if hooks.returncode == 0 else self.repo.git_dir / "hooks"
        return hooks_dir if hooks_dir.is_absolute() else (self.repo.root / hooks_dir)

    def signatures(self) -> tuple[pygit2.Signature, pygit2.Signature]:
        """(author, committer) as git would record them, else IDENTITY_FALLBACK."""
        rules = self.rules()
        author = rules.author or rules.committer or IDENTITY_FALLBACK
        committer = rules.committer or rules.author or IDENTITY_FALLBACK
        return pygit2.Signature(*author), pygit2.Signature(*committer)

    def env(self) -> dict[str, str]:
        """The environment for a git that commits: IDENTITY_FALLBACK only where git knows nobody."""
        env = proc.clean_env()
        rules = self.rules()
        if rules.author is None:
            env["GIT_AUTHOR_NAME"], env["GIT_AUTHOR_EMAIL"] = rules.committer or IDENTITY_FALLBACK
        if rules.committer is None:
            env["GIT_COMMITTER_NAME"], env["GIT_COMMITTER_EMAIL"] = rules.author or IDENTITY_FALLBACK
        return env
