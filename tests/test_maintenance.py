"""git's automatic repacking: never inside an agent's commit during a run, once when the run ends."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import git
from tests.test_faults import run_headless, write_project

# Commits its file, then notes how many packs the shared object store holds right after its commit.
AGENT = textwrap.dedent(
    """
    import subprocess, sys
    from pathlib import Path

    notes, worktree = Path(sys.argv[1]), Path(sys.argv[2])
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=worktree, capture_output=True,
                            text=True, check=True).stdout.strip()
    (worktree / f"{branch}.txt").write_text("work\\n")
    subprocess.run(["git", "add", "-A"], cwd=worktree, check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"feat: {branch}"], cwd=worktree, check=True)
    common = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=worktree, capture_output=True,
                            text=True, check=True).stdout.strip()
    packs = len(list((worktree / common / "objects" / "pack").glob("*.pack")))
    (notes / f"{branch}.packs").write_text(str(packs))
    """
)


def _loose_objects(repo: Path) -> int:
    return sum(1 for d in (repo / ".git" / "objects").glob("[0-9a-f][0-9a-f]") for _ in d.iterdir())


def test_agents_commits_do_not_repack_the_repository_the_run_does_it_once_at_the_end(
    repo: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    command = json.dumps([sys.executable, str(script), str(notes), "{worktree}"])
    write_project(
        repo,
        "# Tasks\n\n## Task 1: one\n\nWrite.\n\n## Task 2: two\n\nWrite.\n\n## Task 3: three\n\nWrite.\n",
        agent=f'[agent]\npreset = "custom"\ncommand = {command}\n',
    )
    # A repository whose next `git gc --auto` surely repacks: many loose objects, a threshold of one,
    # and the repacking done in the foreground, so what the test sees is what happened.
    for key, value in (("gc.auto", "1"), ("gc.autoDetach", "false"), ("maintenance.autoDetach", "false")):
        git(repo, "config", key, value)
    _side_branch_of_loose_objects(repo, tmp_path, 3000)
    assert _loose_objects(repo) > 2500
    assert not list((repo / ".git" / "objects" / "pack").glob("*.pack"))

    code, events, stderr = run_headless(repo)

    assert code == 0, stderr
    assert len([e for e in events if e.get("event") == "merged"]) == 3
    # Each agent's commit left the object store as it was (no pack appeared under the running agents)...
    assert sorted(p.read_text() for p in notes.glob("*.packs")) == ["0", "0", "0"]
    # ...and the run's end repacked it, as the repository's own settings ask.
    assert list((repo / ".git" / "objects" / "pack").glob("*.pack"))
    assert _loose_objects(repo) < 100


def _side_branch_of_loose_objects(repo: Path, folder: Path, count: int) -> None:
    """A branch `side` whose commit holds `count` files, all loose objects (made by plumbing commands,
    which never start git's automatic repacking)."""
    blob_dir = folder / "blobs"
    blob_dir.mkdir()
    paths = []
    for n in range(count):
        path = blob_dir / f"{n}.txt"
        path.write_text(f"loose object number {n}\n")
        paths.append(str(path))
    run = functools.partial(subprocess.run, cwd=repo, check=True, capture_output=True, text=True)
    blobs = run(["git", "hash-object", "-w", "--stdin-paths"], input="\n".join(paths)).stdout.split()
    env = {**os.environ, "GIT_INDEX_FILE": str(folder / "side-index")}
    run(
        ["git", "update-index", "--add", "--index-info"],
        input="".join(f"100644 {blob}\tside/{n}.txt\n" for n, blob in enumerate(blobs)),
        env=env,
    )
    tree = run(["git", "write-tree"], env=env).stdout.strip()
    commit = run(["git", "commit-tree", "-m", "side", tree]).stdout.strip()
    run(["git", "update-ref", "refs/heads/side", commit])
