"""Run state in .git/tuiorch/state.toml: round trip, atomic replacement, clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tuiorch.events import TaskStatus
from tuiorch.state import StateError, clean_for_toml, load_state, log_dir, save_state, state_path
from tuiorch.tasks import Priority


@pytest.fixture
def git_dir(repo: Path) -> Path:
    return repo / ".git"


def test_paths_live_in_the_git_dir(git_dir: Path, repo: Path) -> None:
    assert state_path(git_dir) == git_dir / "tuiorch" / "state.toml"
    logs = log_dir(git_dir)
    assert logs == git_dir / "tuiorch" / "logs" and logs.is_dir()
    assert load_state(git_dir) is None
    save_state(git_dir, {"order": ["1"]})
    # Nothing tuiorch keeps shows up as a change in the user's repo.
    done = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert done.stdout == ""


def test_round_trip_drops_none_and_converts_types(git_dir: Path) -> None:
    data = {
        "order": ("3", "1", "2"),
        "holds": {"2", "1"},
        "priorities": {"3": Priority.POLISH},
        "workers": 3,
        "paused": False,
        "tasks": {
            "1": {
                "status": TaskStatus.MERGED,
                "attempts": 1,
                "commit": "abc1234",
                "ended": 12.5,
                "reason": None,
            },
            "3": {
                "status": TaskStatus.RUNNING,
                "branch": "task-3",
                "worktree": Path("/tmp/wt/slot-1"),
                "commit": None,
            },
        },
        "slots": [{"path": "/tmp/wt/slot-1", "task": "3", "pgid": 4242}, None],
        "nothing": None,
    }
    save_state(git_dir, data)
    assert load_state(git_dir) == {
        "order": ["3", "1", "2"],
        "holds": ["1", "2"],
        "priorities": {"3": 2},
        "workers": 3,
        "paused": False,
        "tasks": {
            "1": {"status": "merged", "attempts": 1, "commit": "abc1234", "ended": 12.5},
            "3": {"status": "running", "branch": "task-3", "worktree": "/tmp/wt/slot-1"},
        },
        "slots": [{"path": "/tmp/wt/slot-1", "task": "3", "pgid": 4242}],
    }
    save_state(git_dir, {"order": []})  # a later save replaces the whole file
    assert load_state(git_dir) == {"order": []}


def test_clean_for_toml_is_recursive() -> None:
    assert clean_for_toml({"a": [(1, None, {"b": None, "c": (2,)})], "d": None}) == {"a": [[1, {"c": [2]}]]}


def test_corrupt_file_names_the_path(git_dir: Path) -> None:
    path = state_path(git_dir)
    path.parent.mkdir(parents=True)
    path.write_text('order = ["1", \n')
    with pytest.raises(StateError) as info:
        load_state(git_dir)
    message = str(info.value)
    assert message.startswith(f"{path}: run state is corrupt (")
    assert "delete the file" in message
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(StateError, match="run state is corrupt"):
        load_state(git_dir)


def test_failed_save_leaves_the_old_state(git_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_state(git_dir, {"order": ["1", "2"]})
    before = state_path(git_dir).read_bytes()

    with pytest.raises(StateError, match="cannot save run state"):
        save_state(git_dir, {"order": ["1"], "bad": object()})  # TOML can't hold it

    def crash(src: str, dst: str) -> None:  # the process dies between writing the temp file and renaming
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StateError, match="Input/output error"):
        save_state(git_dir, {"order": ["2", "1"], "big": "x" * 100_000})
    monkeypatch.undo()
    assert state_path(git_dir).read_bytes() == before
    assert sorted(p.name for p in state_path(git_dir).parent.iterdir()) == ["state.toml"]  # no temp left


def test_unwritable_state_dir_is_a_clear_error(git_dir: Path) -> None:
    (git_dir / "tuiorch").write_text("a file where the folder should be")
    with pytest.raises(StateError, match=r"tuiorch/state.toml: cannot save run state"):
        save_state(git_dir, {"order": []})


WRITER = """
import sys
from pathlib import Path
from tuiorch.state import save_state
git_dir = Path(sys.argv[1])
n = 0
while True:
    n += 1
    save_state(git_dir, {"n": n, "blob": [str(n) * 50] * 2000, "end": n})
"""


def test_readers_and_crashes_never_see_a_torn_file(git_dir: Path) -> None:
    """A writer saving in a loop is read concurrently, then killed mid-flight (SIGKILL) several times:
    every load sees a whole state, never a partial one."""
    seen: set[int] = set()
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(git_dir)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 0.6
            while time.monotonic() < deadline:
                state = load_state(git_dir)
                if state is not None:
                    assert state["n"] == state["end"] and len(state["blob"]) == 2000
                    seen.add(state["n"])
            os.killpg(writer.pid, signal.SIGKILL)
        finally:
            if writer.poll() is None:
                os.killpg(writer.pid, signal.SIGKILL)
            writer.wait(timeout=10)
            assert writer.stderr is not None
            stderr = writer.stderr.read().decode()
            writer.stderr.close()
        assert "Traceback" not in stderr, stderr
        state = load_state(git_dir)
        assert state is not None and state["n"] == state["end"]
    assert len(seen) > 3  # the reader really overlapped many writes


def test_a_running_agents_attachment_is_saved_for_the_next_run() -> None:
    from tuiorch.model.status import TaskStatus
    from tuiorch.queue import RunQueue
    from tuiorch.runners.base import Attachment
    from tuiorch.state import dump
    from tuiorch.tasks import Task

    queue = RunQueue([Task(id="1", title="T")])
    rec = queue.records["1"]
    rec.status, rec.branch, rec.worktree = TaskStatus.RUNNING, "task-1", Path("/wt/slot-1")
    rec.attachment = Attachment(runner="ray", where="node-2", workspace="/wt/slot-1", pgid=42, ref="tuiorch-run-1")
    rec.pgid, rec.where = 42, "node-2"
    entry = dump(queue, base="main", base_at_start=None, workers=1, finished=False)["tasks"]["1"]
    assert Attachment.from_state(entry) == rec.attachment


def test_successive_saves_each_hold_the_whole_state(git_dir: Path) -> None:
    """A run saves at every transition, and each save re-encodes only the task entries that changed: what
    is loaded back is always exactly the last state saved, entry by entry."""
    import tomli_w

    states = [
        {"order": ["1", "2", "3"], "tasks": {"1": {"status": "running", "usage": {"tokens": 5}}, "2": {}}},
        {"order": ["1", "2", "3"], "tasks": {"1": {"status": "merged", "usage": {"tokens": 5}}, "2": {"held": True}}},
        # True == 1 in Python: the entry must still be encoded again (`held = 1` is not `held = true`).
        {"order": ["1", "2", "3"], "tasks": {"1": {"status": "merged", "usage": {"tokens": 5}}, "2": {"held": 1}}},
        {"order": ["2", "1", "3"], "tasks": {"3": {"usage": {"tokens": 7}}, "2": {"held": 1}}},  # 1 dropped
        {"order": ["2"], "finished": True, "tasks": {}},
    ]
    for data in states:
        save_state(git_dir, data)
        assert load_state(git_dir) == tomllib.loads(tomli_w.dumps(clean_for_toml(data)))
        if data is states[2]:
            assert "held = 1\n" in state_path(git_dir).read_text()  # the loaded dicts can't tell
    assert load_state(git_dir) == {"order": ["2"], "finished": True, "tasks": {}}
