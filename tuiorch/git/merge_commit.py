"""Writing a --no-ff merge commit object as `git merge --no-ff` would: its hooks run and
commit.gpgsign is honoured. No ref moves here."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pygit2

from tuiorch.git.errors import GitError
from tuiorch.git.identity import Identity
from tuiorch.git.repo import Repo

# Hooks `git merge --no-ff` runs before it writes the merge commit.
_MERGE_HOOKS = ("pre-merge-commit", "prepare-commit-msg", "commit-msg")


def write_merge_commit(
    repo: Repo,
    identity: Identity,
    tree_id: pygit2.Oid,
    parent_ids: list[pygit2.Oid],
    message: str,
    branch: str,
    base: str,
) -> pygit2.Oid:
    """Write the --no-ff merge commit object as `git merge --no-ff` would (no ref moves).

    Its hooks run (pre-merge-commit against an index holding the merge, then prepare-commit-msg
    and commit-msg, which may rewrite the message) and commit.gpgsign is honoured through
    `git commit-tree -S`. Without hooks or signing libgit2 writes it directly (no process to start).
    The caller holds the repository lock.
    """
    rules = identity.rules()
    hooks = {name: rules.hook(name) for name in _MERGE_HOOKS}
    if not rules.sign and not any(hooks.values()):
        author, committer = identity.signatures()
        return repo.handle.create_commit(None, author, committer, message, tree_id, parent_ids)
    scratch = repo.git_dir / "tuiorch"
    scratch.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{threading.get_ident()}"
    msg_file = scratch / f"MERGE_MSG-{tag}"
    index_file = scratch / f"merge-index-{tag}"
    env = identity.env()
    try:
        msg_file.write_text(message, encoding="utf-8")
        _HookRunner(repo.root, branch, base).run_all(repo, hooks, tree_id, msg_file, index_file, env)
        return _commit_tree(repo, tree_id, parent_ids, msg_file, env, rules.sign, f"{branch} into {base}")
    finally:
        msg_file.unlink(missing_ok=True)
        index_file.unlink(missing_ok=True)


def _commit_tree(
    repo: Repo,
    tree_id: pygit2.Oid,
    parent_ids: list[pygit2.Oid],
    msg_file: Path,
    env: dict[str, str],
    sign: bool,
    what: str,
) -> pygit2.Oid:
    args = ["commit-tree", *(["-S"] if sign else []), str(tree_id)]
    for parent in parent_ids:
        args += ["-p", str(parent)]
    done = repo.git([*args, "-F", str(msg_file)], env=env)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise GitError(
            f"git could not write the merge commit of {what}"
            f"{' (commit.gpgsign = true: signing failed)' if sign else ''}: {detail}"
        )
    return pygit2.Oid(hex=done.stdout.decode().strip())


class _HookRunner:
    """Runs a merge hook in the working tree; GitError naming the hook when it refuses."""

    def __init__(self, cwd: Path, branch: str, base: str) -> None:
        self.cwd, self.branch, self.base = cwd, branch, base

    def run_all(
        self,
        repo: Repo,
        hooks: dict[str, Path | None],
        tree_id: pygit2.Oid,
        msg_file: Path,
        index_file: Path,
        env: dict[str, str],
    ) -> None:
        """The merge's hooks that are installed, in git's order."""
        pre_merge = hooks["pre-merge-commit"]
        if pre_merge is not None:
            # The hook inspects the merge through the index, as under `git merge`; the user's is untouched.
            hook_env = {**env, "GIT_INDEX_FILE": str(index_file)}
            repo.git(["read-tree", str(tree_id)], env=hook_env)
            self.run(pre_merge, [], hook_env)
        for name, args in (("prepare-commit-msg", [str(msg_file), "merge"]), ("commit-msg", [str(msg_file)])):
            hook = hooks[name]
            if hook is not None:
                self.run(hook, args, env)

    def run(self, hook: Path, args: list[str], env: dict[str, str]) -> None:
        done = subprocess.run([str(hook), *args], cwd=self.cwd, env=env, capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise GitError(
                f"the {hook.name} hook rejected the merge of {self.branch} into {self.base} (exit {done.returncode})"
                + (f": {output}" if output else "")
            )
