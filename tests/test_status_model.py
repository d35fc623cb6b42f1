"""The task state machine: the transition table, the commands per status, and a real run that keeps to them."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from pathlib import Path

import pytest

from tests.conftest import git
from tests.test_headless import write_project
from tuiorch import events as ev
from tuiorch.config import load_config
from tuiorch.model import status as sm
from tuiorch.model.status import COMMANDS, TRANSITIONS, IllegalTransition, TaskStatus, check_transition
from tuiorch.orchestrator import Orchestrator
from tuiorch.tasks import load_tasks

S = TaskStatus

#: The ways out of a final status, each on the user's word or after a git error: retry, requeue, send
#: back, the resolver or the user resolving a conflict, a re-run check. Merged has none.
FINAL_EXITS = {
    S.MERGED: set(),
    S.FAILED: {S.QUEUED},  # retry
    S.CANCELLED: {S.QUEUED},  # retry
    S.EMPTY: {S.QUEUED},  # retry
    # retry re-runs the check (merging); send back / requeue queue it; a git error fails it.
    S.CHECK_FAILED: {S.MERGING, S.QUEUED, S.FAILED},
    # resolving by hand or by agent, merging the resolution, requeue, a new conflict, a git error.
    S.CONFLICT: {S.RESOLVING, S.MERGING, S.QUEUED, S.CONFLICT, S.FAILED},
}


def test_every_status_has_a_row_and_every_target_is_a_status() -> None:
    assert set(TRANSITIONS) == set(TaskStatus)
    for targets in TRANSITIONS.values():
        assert targets <= set(TaskStatus)


def test_every_status_is_reachable_from_queued() -> None:
    seen = {S.QUEUED}
    todo = deque([S.QUEUED])
    while todo:
        for target in TRANSITIONS[todo.popleft()] - seen:
            seen.add(target)
            todo.append(target)
    assert seen == set(TaskStatus)


def test_final_statuses_leave_only_by_the_documented_paths() -> None:
    assert set(FINAL_EXITS) == set(sm.FINAL)
    for status, exits in FINAL_EXITS.items():
        assert TRANSITIONS[status] == exits, status


def test_merged_is_the_end() -> None:
    for target in TaskStatus:
        with pytest.raises(IllegalTransition, match="merged -> "):
            check_transition("7", S.MERGED, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.QUEUED, S.MERGED),  # never merged without running
        (S.QUEUED, S.RUNNING),  # a slot first
        (S.FINISHED, S.RUNNING),
        (S.RUNNING, S.MERGING),  # finished first
        (S.FAILED, S.MERGING),
        (S.CANCELLED, S.RUNNING),
        (S.EMPTY, S.FINISHED),
    ],
)
def test_an_illegal_move_raises_naming_the_task_and_both_statuses(current: TaskStatus, target: TaskStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"task 7: {current.value} -> {target.value}"):
        check_transition("7", current, target)


def test_restoring_only_puts_a_fresh_record_into_a_restorable_status() -> None:
    for target in (S.QUEUED, S.FINISHED, S.MERGED):
        check_transition("1", S.QUEUED, target, restoring=True)
    with pytest.raises(IllegalTransition):
        check_transition("1", S.QUEUED, S.RUNNING, restoring=True)
    with pytest.raises(IllegalTransition):
        check_transition("1", S.RUNNING, S.QUEUED, restoring=True)


def test_the_named_sets_agree_with_the_status_properties() -> None:
    assert {s for s in TaskStatus if s.is_active} == sm.ACTIVE
    assert {s for s in TaskStatus if s.is_final} == sm.FINAL
    assert sm.IN_SLOT < sm.ACTIVE and sm.IN_SLOT < sm.UNMERGED
    assert not sm.UNMERGED & {S.QUEUED, S.MERGED, S.FAILED, S.EMPTY, S.CANCELLED}
    assert sm.AGENT_AT_WORK < sm.ACTIVE and S.STARTING not in sm.AGENT_AT_WORK
    assert ev.TaskStatus is TaskStatus  # the old import keeps working


@pytest.mark.parametrize(
    ("command", "applies_in"),
    [
        ("cancel", {S.STARTING, S.RUNNING, S.STUCK}),
        ("retry", {S.FAILED, S.CANCELLED, S.EMPTY, S.CHECK_FAILED}),
        ("move", {S.QUEUED}),
        ("merge", {S.FINISHED}),
        ("send_back", {S.CONFLICT, S.RESOLVING, S.CHECK_FAILED}),
        ("requeue", {S.CONFLICT, S.RESOLVING, S.CHECK_FAILED, S.BLOCKED}),
        ("triage", {S.CONFLICT, S.RESOLVING}),
        ("review", {S.FINISHED, S.CHECK_FAILED}),
    ],
)
def test_a_command_applies_exactly_where_the_table_says(command: str, applies_in: set[TaskStatus]) -> None:
    assert COMMANDS[command] == applies_in
    for status in TaskStatus:
        why = sm.command_refusal(command, "3", status)
        if status in applies_in:
            assert why is None
        else:
            assert why is not None and why.startswith(f"task 3 is {sm.words(status)}")


def test_a_refusal_says_why_in_the_users_words() -> None:
    assert sm.command_refusal("cancel", "2", S.CHECK_FAILED) == (
        "task 2 is check failed; only a running task can be cancelled"
    )
    with pytest.raises(ValueError, match="unknown command"):
        sm.command_refusal("explode", "2", S.QUEUED)


def test_every_command_that_leaves_a_status_has_a_transition_for_it() -> None:
    """A command offered in a status must lead somewhere the table allows."""
    leads_to = {"retry": {S.QUEUED, S.MERGING}, "send_back": {S.QUEUED, S.CONFLICT}, "requeue": {S.QUEUED},
                "merge": {S.MERGING}, "cancel": {S.CANCELLED}, "triage": {S.RESOLVING}, "review": {S.QUEUED}}
    for command, targets in leads_to.items():
        for status in COMMANDS[command]:
            assert TRANSITIONS[status] & targets or status in targets, (command, status)


RUN_TASKS = """\
    ## Task 1: Hello README
    ```write README.md
    hello from one
    ```

    ## Task 2: Goodbye README
    sleep: 0.3
    linger: 1
    ```write README.md
    goodbye from two
    ```

    ## Task 3: Nothing to do
    nothing

    ## Task 4: Fails every time
    exit: 3

    ## Task 5: Quiet for a while
    sleep: 3
    ```write quiet.txt
    quiet
    ```
"""


def test_a_full_run_takes_only_allowed_transitions(repo: Path) -> None:
    """Merge (with the [merge] check), conflict resolved by the agent, empty, failed after a retry, stuck:
    each task's statuses, as the front ends see them after every event, move only along the table."""
    check = f"{sys.executable} -c pass"
    write_project(
        repo,
        RUN_TASKS,
        workers=3,
        extra=f'retries = 1\n\n[merge]\non_conflict = "agent"\ncheck = "{check}"\n',
    )
    config_file = repo / "tuiorch.toml"
    config_file.write_text(config_file.read_text().replace('stuck_after = "0"', 'stuck_after = "1s"'))
    seen: dict[str, list[TaskStatus]] = {}
    orchestrator: Orchestrator | None = None

    def sink(event: ev.Event) -> None:
        assert orchestrator is not None
        for task_id, rec in orchestrator.records.items():
            history = seen.setdefault(task_id, [S.QUEUED])
            if rec.status is not history[-1]:
                history.append(rec.status)

    orchestrator = Orchestrator(repo, load_config(repo), load_tasks(repo / "TASKS.md"), sink)
    asyncio.run(orchestrator.run())
    for task_id, history in seen.items():
        for current, target in zip(history, history[1:], strict=False):
            assert target in TRANSITIONS[current], (task_id, history)
    finals = {task_id: history[-1] for task_id, history in seen.items()}
    assert finals == {"1": S.MERGED, "2": S.MERGED, "3": S.EMPTY, "4": S.FAILED, "5": S.MERGED}
    # Whichever of 1 and 2 lands second conflicts (2 as a rule; 1 if a loaded machine slows it).
    assert any({S.CHECKING, S.CONFLICT, S.RESOLVING} <= set(seen[t]) for t in ("1", "2")), seen
    assert S.STUCK in seen["5"]
    assert seen["4"].count(S.STARTING) == 2  # one retry


def test_a_merged_task_stays_merged_when_its_branch_cannot_be_deleted(repo: Path, tmp_path: Path) -> None:
    """The user checks the task's branch out elsewhere while its agent finishes: the merge lands, git then
    refuses to delete the branch; the task is merged (and the user told why the branch stays), not failed."""
    write_project(repo, "## Task 1: Hello\nlinger: 3\n```write hello.txt\nhello\n```\n", workers=1)
    events: list[ev.Event] = []
    orchestrator = Orchestrator(repo, load_config(repo), load_tasks(repo / "TASKS.md"), events.append)
    elsewhere = tmp_path / "users-checkout"

    async def scenario() -> None:
        run = asyncio.create_task(orchestrator.run())
        rec = orchestrator.records["1"]
        deadline = time.monotonic() + 60
        while not (rec.branch and rec.base_sha and git(repo, "rev-parse", rec.branch) != rec.base_sha):
            # The agent has committed and lingers; a run that ends first fails the test, never hangs it.
            assert not run.done() and time.monotonic() < deadline, (rec.status, events)
            await asyncio.sleep(0.05)
        git(repo, "worktree", "add", "-f", str(elsewhere), rec.branch)
        await run

    asyncio.run(scenario())
    assert orchestrator.records["1"].status is S.MERGED
    assert "hello" in git(repo, "show", "main:hello.txt")
    notices = [e.message for e in events if isinstance(e, ev.Notice)]
    assert any("task 1 is merged, but then:" in n and "checked out" in n for n in notices), notices
    assert not [e for e in events if isinstance(e, ev.TaskFailed)]
