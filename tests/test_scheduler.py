"""The scheduler: which tasks start, and the reason shown for each one that waits."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuiorch.scheduler import normalise_path, pick_tasks, touches_overlap, wait_reason, wait_reasons
from tuiorch.tasks import Priority, Task


def _ids(tasks: list[Task]) -> list[str]:
    return [t.id for t in tasks]


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        (["src/x.py"], ["src/x.py"], True),
        (["./a/"], ["a"], True),
        (["src/"], ["src/x.py"], True),
        (["src"], ["src/deep/x.py"], True),
        (["src/deep/x.py"], ["./src"], True),
        (["src/a"], ["src/ab"], False),
        (["src/ab/x"], ["src/a"], False),
        (["docs", "README.md"], ["src", "tests/"], False),
        (["docs", "README.md"], ["src", "README.md"], True),
        ([], ["src"], False),
        (["."], ["anything/at/all"], True),
        (["./"], [], False),
        (["src/*.py"], ["src/ui/app.py"], True),  # a glob counts as its whole directory
        (["src/*.py"], ["tests/x.py"], False),
        (["a/./b/../c"], ["a/c/d"], True),
    ],
)
def test_touches_overlap(a: list[str], b: list[str], overlap: bool) -> None:
    assert touches_overlap(a, b) is overlap
    assert touches_overlap(b, a) is overlap


def test_normalise_path() -> None:
    assert normalise_path("./src/") == normalise_path("src") == normalise_path("/src") == "src"
    assert normalise_path("./") == normalise_path("") == "."


def test_priority_then_queue_order_and_slot_limit() -> None:
    queue = [
        Task("p1", "polish", priority=Priority.POLISH),
        Task("f1", "feature"),
        Task("base", "foundation", priority=Priority.FOUNDATION),
        Task("f2", "feature"),
    ]
    assert _ids(pick_tasks(queue, [], set(), 3)) == ["base", "f1", "f2"]
    assert _ids(pick_tasks(queue, [], set(), 10)) == ["base", "f1", "f2", "p1"]
    assert pick_tasks(queue, [], set(), 0) == []
    assert pick_tasks(queue, [], set(), -2) == []  # pool shrunk below the running count
    assert wait_reason(queue[0], queue, [], set(), 3) == "pool full"
    assert wait_reason(queue[2], queue, [], set(), 3) is None
    # A full pool doesn't hide the real blocker: it would still wait with a free slot.
    assert wait_reason(queue[1], queue, [], set(), 0, held={"f1"}) == "held"
    blocked = Task("late", "needs f1", depends=("f1",))
    assert wait_reason(blocked, queue, [], set(), 0) == "waiting for f1 (not merged)"


def test_every_wait_reason_the_queue_pane_shows() -> None:
    running = [Task("5", "running", touches=("src/ui/",))]
    queue = [
        Task("h", "held one"),
        Task("d", "needs deps", depends=("1", "2", "5")),
        Task("o", "overlaps running", touches=("src/ui/app.py",)),
        Task("c", "predicted conflict", touches=("src/core/",)),
        Task("s", "starts", touches=("docs/",)),
        Task("after", "overlaps the one starting", touches=("docs/index.md",)),
        Task("free", "no touches at all"),
        Task("full", "eligible but no slot left"),
    ]
    reasons = wait_reasons(queue, running, {"1"}, 2, held={"h"}, avoid_paths=["src/core/x.py"])
    assert reasons == {
        "h": "held",
        "d": "waiting for 2, 5 (not merged)",
        "o": "touches overlap with running task 5",
        "c": "predicted conflict on src/core/x.py",
        "s": None,
        "after": "touches overlap with starting task s",
        "free": None,
        "full": "pool full",
    }
    picked = pick_tasks(queue, running, {"1"}, 2, held={"h"}, avoid_paths=["src/core/x.py"])
    assert _ids(picked) == ["s", "free"]
    for task in queue:
        assert wait_reason(task, queue, running, {"1"}, 2, {"h"}, ["src/core/x.py"]) == reasons[task.id]
    # Once 2 is merged too, the dependency list shrinks to what is still missing.
    assert wait_reason(queue[1], queue, running, {"1", "2"}, 2) == "waiting for 5 (not merged)"


def test_task_without_touches_never_overlaps_and_avoid_paths_need_touches() -> None:
    running = [Task("r", "everything", touches=(".",))]
    queue = [Task("a", "no touches"), Task("b", "some", touches=("x",))]
    assert _ids(pick_tasks(queue, running, set(), 5, avoid_paths=["x"])) == ["a"]


def test_ten_thousand_queued_tasks_in_linear_time() -> None:
    running = [Task(f"r{i}", "r", touches=(f"src/busy{i}/",)) for i in range(8)]
    queue = [
        Task(str(i), "t", depends=(str(i - 1),) if i % 2 else (), touches=(f"src/busy{i % 10}/f{i}.py",))
        for i in range(10_000)
    ]
    started = time.perf_counter()
    reasons = wait_reasons(queue, running, set(), 4)
    picked = pick_tasks(queue, running, set(), 4)
    # Generous bound: a quadratic scan would take many seconds here.
    assert time.perf_counter() - started < 2
    # Only even ids have no dependencies; busy0..7 are taken by running tasks; distinct files never clash.
    assert _ids(picked) == ["8", "18", "28", "38"]
    assert sum(reason is None for reason in reasons.values()) == 4
    assert reasons["1"] == "waiting for 0 (not merged)"
    assert reasons["2"] == "touches overlap with running task r2"
    assert reasons["48"] == "pool full"


# --- properties -------------------------------------------------------------------------------------------

_paths = st.sampled_from(["src", "src/a", "src/a/x.py", "src/ab", "docs/", "./docs/i.md", "README.md", "."])


@st.composite
def _situations(draw: st.DrawFn) -> dict:
    count = draw(st.integers(0, 12))
    ids = [str(i) for i in range(count)]
    tasks = [
        Task(
            task_id,
            f"task {task_id}",
            depends=tuple(
                draw(
                    st.lists(st.sampled_from(ids), max_size=2, unique=True).map(
                        lambda deps, me=task_id: [d for d in deps if d != me]
                    )
                )
            )
            if ids
            else (),
            priority=draw(st.sampled_from(list(Priority))),
            touches=tuple(draw(st.lists(_paths, max_size=2, unique=True))),
        )
        for task_id in ids
    ]
    running_count = draw(st.integers(0, min(3, count)))
    running, queue = tasks[:running_count], tasks[running_count:]
    return {
        "queue": draw(st.permutations(queue)),
        "running": running,
        "merged": set(draw(st.lists(st.sampled_from(ids), unique=True))) if ids else set(),
        "free_slots": draw(st.integers(0, 5)),
        "held": set(draw(st.lists(st.sampled_from(ids), unique=True, max_size=3))) if ids else set(),
        "avoid_paths": draw(st.lists(_paths, max_size=2, unique=True)),
    }


@settings(max_examples=300, deadline=None)
@given(_situations())
def test_scheduler_properties(situation: dict) -> None:
    queue: list[Task] = situation["queue"]
    running: list[Task] = situation["running"]
    args = (situation["merged"], situation["free_slots"], situation["held"], situation["avoid_paths"])
    picked = pick_tasks(queue, running, *args)
    reasons = wait_reasons(queue, running, *args)

    assert len(picked) <= max(situation["free_slots"], 0)
    for task in picked:
        assert task.id not in situation["held"]
        assert set(task.depends) <= situation["merged"]
        assert not touches_overlap(task.touches, situation["avoid_paths"])
        assert reasons[task.id] is None
    busy = running + picked
    for i, first in enumerate(busy):
        for second in busy[i + 1 :]:
            if first in picked or second in picked:
                assert not touches_overlap(first.touches, second.touches), (first, second)

    unpicked = [t for t in queue if t not in picked]
    for task in unpicked:
        assert reasons[task.id] is not None
        assert wait_reason(task, queue, running, *args) == reasons[task.id]
    if len(picked) < situation["free_slots"]:
        assert all(reasons[t.id] != "pool full" for t in unpicked)

    # Greedy: walking the queue by (priority, position), the first eligible task is always taken.
    position = {t.id: i for i, t in enumerate(queue)}
    assert picked == sorted(picked, key=lambda t: (t.priority, position[t.id]))
    chosen: list[Task] = []
    for task in sorted(queue, key=lambda t: (t.priority, position[t.id])):
        if len(chosen) == situation["free_slots"]:
            break
        eligible = (
            task.id not in situation["held"]
            and set(task.depends) <= situation["merged"]
            and not touches_overlap(task.touches, situation["avoid_paths"])
            and not any(touches_overlap(task.touches, other.touches) for other in running + chosen)
        )
        if eligible:
            chosen.append(task)
    assert picked == chosen
