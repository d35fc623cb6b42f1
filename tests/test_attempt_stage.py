"""The attempt stage alone, with a fake runner: which outcome each way an attempt can end gives, and
that the workspace is always handed back (or kept for uncommitted work). The real runner and the
real pool are covered by test_local_runner.py and the headless suites."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tuiorch.agent import AgentExit
from tuiorch.gitops import GitError, UncommittedWork
from tuiorch.runners.base import AgentCommand, AgentHooks, AgentSpec, Attachment, Collected, StartFailed
from tuiorch.steps.attempt import AttemptPlan, run_attempt

PLAN = AttemptPlan(commit_message="feat: x", wip_message="wip: x", may_retry=False)


@dataclass
class FakeHandle:
    exit: AgentExit = field(default_factory=lambda: AgentExit(code=0))
    collected: Collected = field(default_factory=lambda: Collected(tip="abc", has_new_commits=True))
    collect_error: BaseException | None = None
    wait_error: BaseException | None = None
    workspace: str = "/ws"
    base_sha: str = "base"
    where: str = "local"
    confined: bool = False
    conflicted: tuple[str, ...] = ()
    calls: list[str] = field(default_factory=list)

    async def wait(self) -> AgentExit:
        self.calls.append("wait")
        if self.wait_error is not None:
            raise self.wait_error
        return self.exit

    def cancel(self) -> None:
        self.calls.append("cancel")

    async def collect(self, message: str, *, failed: bool) -> Collected:
        self.calls.append(f"collect {message} failed={failed}")
        if self.collect_error is not None:
            raise self.collect_error
        return self.collected

    async def release(self) -> None:
        self.calls.append("release")

    def attachment(self) -> Attachment:
        return Attachment(workspace=self.workspace)


@dataclass
class FakeRunner:
    handle: FakeHandle | None = None
    start_error: BaseException | None = None
    kind: str = "fake"
    #: What `reattach` gives back (None: the saved run is gone).
    reattached: FakeHandle | None = None
    calls: list[str] = field(default_factory=list)

    async def reattach(self, saved: Attachment, spec: AgentSpec, hooks: AgentHooks) -> FakeHandle | None:
        self.calls.append(f"reattach {saved.ref}")
        return self.reattached

    async def clean_up(self, saved: Attachment, *, leftovers_message: str | None = None) -> str | None:
        self.calls.append(f"clean_up {saved.ref} {leftovers_message}")
        return None

    async def start(self, spec: AgentSpec, hooks: AgentHooks) -> FakeHandle:
        self.calls.append("start")
        if self.start_error is not None:
            raise self.start_error
        assert self.handle is not None
        return self.handle


@dataclass
class FakeHost:
    failure: str | None = None
    seen: list[str] = field(default_factory=list)

    def ready(self, handle: FakeHandle) -> None:
        assert handle.calls == []  # marked running before the agent runs
        self.seen.append("ready")

    def ended(self, exit_: AgentExit) -> str | None:
        self.seen.append(f"ended {exit_.code}")
        return self.failure


def spec() -> AgentSpec:
    return AgentSpec(
        task_id="1",
        kind="task",
        attempt=1,
        slot=0,
        branch="task-1",
        base="main",
        keep_commits=False,
        command=lambda ws: AgentCommand(argv=("true",), prompt=""),
        log_path=Path("/dev/null"),
    )


def attempt(runner: FakeRunner, host: FakeHost | None = None, plan: AttemptPlan = PLAN):
    return asyncio.run(run_attempt(runner, spec(), AgentHooks(), host or FakeHost(), plan))


def test_a_successful_agent_with_commits_finishes_with_the_branch_tip() -> None:
    handle = FakeHandle()
    host = FakeHost()
    outcome = attempt(FakeRunner(handle), host)
    assert (outcome.end, outcome.tip, outcome.reason) == ("finished", "abc", "")
    assert host.seen == ["ready", "ended 0"]
    assert handle.calls == ["wait", "collect feat: x failed=False", "release"]


def test_a_successful_agent_without_commits_is_empty() -> None:
    handle = FakeHandle(collected=Collected(tip="base", has_new_commits=False))
    outcome = attempt(FakeRunner(handle))
    assert outcome.end == "empty"
    assert outcome.reason == "agent exited 0 without changing anything"
    assert handle.calls[-1] == "release"


def test_a_failure_keeps_the_work_as_wip_and_retries_while_attempts_are_left() -> None:
    handle = FakeHandle(exit=AgentExit(code=3))
    plan = AttemptPlan(commit_message="feat: x", wip_message="wip: x", may_retry=True)
    outcome = attempt(FakeRunner(handle), FakeHost(failure="rate limited (exit 3)"), plan)
    assert (outcome.end, outcome.reason, outcome.exit) == ("retry", "rate limited (exit 3)", AgentExit(code=3))
    assert handle.calls == ["wait", "collect wip: x failed=True", "release"]


def test_a_failure_without_attempts_left_fails() -> None:
    outcome = attempt(FakeRunner(FakeHandle(exit=AgentExit(code=3))), FakeHost(failure="boom"))
    assert (outcome.end, outcome.reason) == ("failed", "boom")
    assert outcome.failed


def test_a_cancelled_agent_is_cancelled_even_if_it_exited_cleanly() -> None:
    handle = FakeHandle(exit=AgentExit(code=0, cancelled=True))
    outcome = attempt(FakeRunner(handle))
    assert outcome.end == "cancelled"
    assert handle.calls == ["wait", "collect wip: x failed=True", "release"]


def test_a_setup_failure_or_refused_command_fails_without_an_agent() -> None:
    outcome = attempt(FakeRunner(start_error=StartFailed("slot setup `make` exited 2")))
    assert (outcome.end, outcome.reason, outcome.exit) == ("failed", "slot setup `make` exited 2", None)
    outcome = attempt(FakeRunner(start_error=GitError("cannot check out task-1")))
    assert (outcome.end, outcome.reason) == ("failed", "cannot check out task-1")


def test_uncommitted_work_keeps_the_workspace_and_names_it() -> None:
    kept = UncommittedWork("work in /kept/slot-1 could not be committed", Path("/kept/slot-1"))
    handle = FakeHandle(collect_error=kept)
    outcome = attempt(FakeRunner(handle))
    assert (outcome.end, outcome.kept) == ("failed", "/kept/slot-1")
    assert "release" not in handle.calls  # never reset or reused


def test_a_commit_that_fails_after_success_fails_and_gives_the_workspace_back() -> None:
    handle = FakeHandle(collect_error=GitError("pre-commit hook refused"))
    outcome = attempt(FakeRunner(handle))
    assert (outcome.end, outcome.reason, outcome.exit) == ("failed", "pre-commit hook refused", None)
    assert handle.calls[-1] == "release"


def test_a_bug_gives_the_workspace_back_and_goes_up() -> None:
    handle = FakeHandle(wait_error=RuntimeError("bug"))
    with pytest.raises(RuntimeError):
        attempt(FakeRunner(handle))
    assert handle.calls == ["wait", "release"]


def test_cancelling_the_attempt_goes_through_and_leaves_the_workspace() -> None:
    handle = FakeHandle(wait_error=asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        attempt(FakeRunner(handle))
    assert handle.calls == ["wait"]


def test_the_stage_changes_no_run_state_it_only_returns_an_outcome() -> None:
    outcome = attempt(FakeRunner(FakeHandle()))
    with pytest.raises(AttributeError):
        outcome.end = "failed"  # type: ignore[misc]



def test_a_run_stopped_before_its_agent_starts_gives_the_workspace_back() -> None:
    class StoppingHost(FakeHost):
        def ready(self, handle: FakeHandle) -> None:
            raise asyncio.CancelledError

    handle = FakeHandle()
    with pytest.raises(asyncio.CancelledError):
        attempt(FakeRunner(handle), StoppingHost())
    assert handle.calls == ["release"]  # never waited on: the agent did not start


SAVED_RUN = Attachment(runner="fake", where="node-b", ref="run-1")


def test_a_run_that_outlived_tuiorch_is_taken_up_not_started_and_saved_again() -> None:
    handle = FakeHandle(workspace="/node/slots/0")
    runner = FakeRunner(reattached=handle)
    started: list[Attachment] = []
    hooks = AgentHooks(on_started=started.append)
    host = FakeHost()
    outcome = asyncio.run(run_attempt(runner, spec(), hooks, host, PLAN, resume=SAVED_RUN))
    assert outcome.end == "finished"
    assert runner.calls == ["reattach run-1"]  # no new agent
    assert host.seen == ["ready", "ended 0"]
    assert handle.calls == ["wait", "collect feat: x failed=False", "release"]
    assert started == [Attachment(workspace="/node/slots/0")]


def test_a_run_gone_by_then_is_cleaned_up_and_a_new_agent_starts_on_its_work() -> None:
    runner = FakeRunner(handle=FakeHandle())
    outcome = asyncio.run(run_attempt(runner, spec(), AgentHooks(), FakeHost(), PLAN, resume=SAVED_RUN))
    assert outcome.end == "finished"
    assert runner.calls == ["reattach run-1", "clean_up run-1 wip: x", "start"]


def test_a_run_stopped_as_it_is_reattached_stops_its_agent() -> None:
    class StoppingHost(FakeHost):
        def ready(self, handle: FakeHandle) -> None:
            raise asyncio.CancelledError

    handle = FakeHandle()
    with pytest.raises(asyncio.CancelledError):
        runner = FakeRunner(reattached=handle)
        asyncio.run(run_attempt(runner, spec(), AgentHooks(), StoppingHost(), PLAN, resume=SAVED_RUN))
    assert handle.calls == ["cancel", "release"]
