"""The central side of moving commits to and from nodes with git bundles.

Out: a bundle of the commit a task starts from, without everything the node's cache already has (the
first task on a node carries the history, later ones a few KB). In: an agent's result bundle is fetched
into the quarantine ref refs/tuiorch/incoming/<task>, verified to descend from the attempt's base, and only
then moves the task branch (compare-and-swap), so nothing from a node reaches a branch unchecked.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

INCOMING_PREFIX = "refs/tuiorch/incoming/"
SHIP_PREFIX = "refs/tuiorch/ship/"


class ShippingError(Exception):
    """A bundle could not be made or taken in; the message says why."""


def _git(root: Path, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    if check and done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise ShippingError(f"git {' '.join(args[:2])} failed in {root}: {said}")
    return done


def known_commits(root: Path, shas: Iterable[str]) -> list[str]:
    """The commits among `shas` that the central repository has (a node may hold ones it lacks)."""
    wanted = [sha for sha in shas if sha]
    if not wanted:
        return []
    done = subprocess.run(
        ["git", "cat-file", "--batch-check=%(objectname) %(objecttype)"],
        cwd=root,
        input="\n".join(wanted).encode() + b"\n",
        capture_output=True,
        check=False,
    )
    return [line.split()[0] for line in done.stdout.decode().splitlines() if line.endswith(" commit")]


def ship_bundle(
    root: Path, task_id: str, start: str, node_tips: Iterable[str], also: Sequence[str] = ()
) -> tuple[bytes | None, str]:
    """(bundle or None when the node has everything already, the ref it carries `start` in) for a node
    with `node_tips`. `also`: more commits the node needs (a resolver's base), in refs named after it."""
    ref = SHIP_PREFIX + task_id
    have = known_commits(root, node_tips)
    wanted = {ref: start, **{f"{ref}-also-{n}": sha for n, sha in enumerate(also)}}
    wanted = {name: sha for name, sha in wanted.items() if sha not in have}
    if not wanted:
        return None, ref
    for name, sha in wanted.items():
        _git(root, ["update-ref", name, sha])
    try:
        done = _git(root, ["bundle", "create", "-q", "-", *wanted, "--not", *have], check=False)
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip()
            if "empty bundle" in said:
                return None, ref
            raise ShippingError(f"git bundle create failed in {root}: {said}")
        return done.stdout, ref
    finally:
        for name in wanted:
            _git(root, ["update-ref", "-d", name], check=False)


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    return _git(root, ["merge-base", "--is-ancestor", older, newer], check=False).returncode == 0


def common_git_dir(root: Path) -> str:
    """The central repository's git directory (shared by its worktrees), absolute: its caches' name."""
    return _git(root, ["rev-parse", "--path-format=absolute", "--git-common-dir"]).stdout.decode().strip()


def branch_tip(root: Path, branch: str) -> str | None:
    done = _git(root, ["rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}"], check=False)
    return done.stdout.decode().strip() or None


def take_result(root: Path, task_id: str, branch: str, bundle: bytes, base_sha: str) -> str:
    """Fetch a node's result bundle into quarantine, verify it, move `branch` there; returns the new tip.

    The result must descend from `base_sha` (the attempt's start) and from the branch's current tip when
    that is not the base (commits fetched earlier are never dropped); anything else is refused.
    """
    incoming = INCOMING_PREFIX + task_id
    with tempfile.NamedTemporaryFile(suffix=".bundle", delete=False) as out:
        out.write(bundle)
    try:
        _git(root, ["fetch", "-q", "--no-write-fetch-head", out.name, f"+refs/heads/{branch}:{incoming}"])
    finally:
        os.unlink(out.name)
    new = _git(root, ["rev-parse", incoming]).stdout.decode().strip()
    if not is_ancestor(root, base_sha, new):
        raise ShippingError(
            f"the node's {branch} ({new[:10]}) does not descend from its base {base_sha[:10]}"
        )
    old = branch_tip(root, branch)
    if old is not None and old != new and not is_ancestor(root, old, new):
        raise ShippingError(f"the node's {branch} ({new[:10]}) drops commits of {old[:10]}; refused")
    _git(
        root, ["update-ref", "-m", "tuiorch: result from a Ray node", f"refs/heads/{branch}", new, old or ""]
    )
    return new
