"""Landing a finished branch on the base branch: merge lock, optional check gate, compare-and-swap.

One landing, in order: take the merge lock (one landing at a time, so two finished tasks never race
for the base tip); re-land a commit that already passed the check if the last try was blocked only by
the user's checkout; else prepare the `--no-ff` merge in memory, run `[merge] check` on exactly that
commit when one is configured, and move base to it only if base still is the tip it was made from.

The step returns a `LandingOutcome`; it never writes a task's status, emits, saves or touches the
queue. Its hooks (`on_locked`, `on_check`, `on_line`) let the caller show progress as it happens.

Retry policy, the only one for landing:
- a ref lock held by another git process: the git layer waits and retries (briefly, in its thread);
- base moved between preparing and landing (someone committed): recomputed at once. Without a check
  the git layer does it inside one locked call (so a worktree prepared meanwhile for the next task
  waits and starts from the merged base); with a check this step recomputes and re-checks, up to
  `RetryPolicy.moved_rounds` times. Either way a base that keeps moving ends `blocked`;
- `blocked` (the user's uncommitted files or a busy checkout stand in the way, or base kept moving):
  the caller lands it again every `RetryPolicy.blocked_interval` seconds, handing back the checked
  commit so an unchanged base needs no second check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tuiorch.gate import CheckResult, run_check
from tuiorch.git import GitRepo, MergeOutcome, PreparedMerge

LandingKind = Literal["merged", "conflict", "blocked", "check_failed"]
#: What a policy does with a conflict or a failed check: requeue once, hand it to an agent, or leave it to the user.
PolicyAction = Literal["requeue", "agent", "stay"]


@dataclass(frozen=True)
class RetryPolicy:
    #: Recomputations when base keeps moving under a landing, before reporting it blocked.
    moved_rounds: int = 5
    #: Seconds between landings of a blocked merge (the caller's loop waits this long).
    blocked_interval: float = 1.0


@dataclass(frozen=True)
class LandingRequest:
    """What to land and how."""

    branch: str
    base: str
    #: The merge commit's message.
    message: str
    #: `[merge] check` as an argv (never a shell); empty: land without a check.
    check: tuple[str, ...] = ()
    #: Scratch worktree the checked commit is checked out in.
    scratch: Path | None = None
    #: The task's log: the check's output and the recomputations are appended to it.
    log_path: Path | None = None
    timeout: float | None = None
    #: Paths a reused scratch worktree keeps between checks (`[slots] keep`).
    keep: tuple[str, ...] = ()
    #: A commit that passed the check and was blocked: landed again as is unless base moved.
    checked: PreparedMerge | None = None


@dataclass(frozen=True)
class LandingHooks:
    #: Called once the merge lock is held, before anything is computed.
    on_locked: Callable[[], None] | None = None
    #: Called with the merge commit about to be checked (once per check run).
    on_check: Callable[[PreparedMerge], None] | None = None
    #: Called with each line the check prints.
    on_line: Callable[[str], None] | None = None


@dataclass(frozen=True)
class LandingOutcome:
    """How a landing ended. Exactly the fields of its `kind` are meaningful.

    merged: `commit` is base's new tip, or the commit that already holds the branch.
    conflict: `paths` conflict, `kinds` says how each does; base untouched.
    blocked: `message` says why and `paths` are the user's files in the way; `prepared` is the
    commit that passed the check, if one did (hand it back as `LandingRequest.checked`).
    check_failed: `check` holds the failing run and `prepared` the commit it ran on; base untouched.
    """

    kind: LandingKind
    commit: str | None = None
    paths: tuple[str, ...] = ()
    kinds: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    check: CheckResult | None = None
    prepared: PreparedMerge | None = None
    checks_run: int = 0

    @property
    def reason(self) -> str:
        """The line the task's row shows for this outcome ("" once merged)."""
        if self.kind == "conflict":
            return "conflict in " + ", ".join(self.paths)
        if self.kind == "check_failed" and self.check is not None:
            return f"check failed: {self.check.reason or 'exit ' + str(self.check.exit)}"
        if self.kind == "blocked":
            return self.message
        return ""


def conflict_action(on_conflict: str, requeues: int) -> PolicyAction:
    """What `[merge] on_conflict` does with a conflict: requeue once, hand it to the resolver, or wait."""
    if on_conflict == "requeue" and requeues < 1:
        return "requeue"
    if on_conflict == "agent":
        return "agent"
    return "stay"


def check_failed_action(on_check_fail: str, requeues: int, check_fixes: int, fix_limit: int) -> PolicyAction:
    """What `[merge] on_check_fail` does: requeue once, send the branch back to its agent, or wait."""
    if on_check_fail == "requeue" and requeues < 1:
        return "requeue"
    if on_check_fail == "agent" and check_fixes < fix_limit:
        return "agent"
    return "stay"


class Lander:
    """Lands branches on base, one at a time."""

    def __init__(self, git: GitRepo, policy: RetryPolicy | None = None) -> None:
        self.git = git
        self.policy = policy or RetryPolicy()
        self._lock = asyncio.Lock()

    async def land(self, request: LandingRequest, hooks: LandingHooks | None = None) -> LandingOutcome:
        hooks = hooks or LandingHooks()
        async with self._lock:
            if hooks.on_locked is not None:
                hooks.on_locked()
            if request.checked is not None:
                landed = await asyncio.to_thread(self.git.land_merge, request.checked)
                if landed.status != "moved":
                    return _outcome(landed, prepared=request.checked)
            if not request.check:
                merged = await asyncio.to_thread(self.git.merge, request.branch, request.base, request.message)
                return _outcome(merged)
            return await self._gated_rounds(request, hooks)

    async def _gated_rounds(self, request: LandingRequest, hooks: LandingHooks) -> LandingOutcome:
        """Prepare, check, land exactly the checked commit; recompute while base moves, up to the policy's rounds."""
        last_check: CheckResult | None = None
        checked: PreparedMerge | None = None
        checks = 0
        for _round in range(self.policy.moved_rounds):
            computed = await asyncio.to_thread(self.git.prepare_merge, request.branch, request.base, request.message)
            if isinstance(computed, MergeOutcome):
                return _outcome(computed, check=last_check, prepared=checked, checks_run=checks)
            last_check = await self._run_check(request, computed, hooks)
            checks += 1
            if not last_check.passed:
                return LandingOutcome("check_failed", check=last_check, prepared=computed, checks_run=checks)
            checked = computed
            landed = await asyncio.to_thread(self.git.land_merge, computed)
            if landed.status != "moved":
                return _outcome(landed, check=last_check, prepared=checked, checks_run=checks)
            if request.log_path is not None:
                _append(request.log_path, f"tuiorch: {landed.message}")
        return LandingOutcome(
            "blocked",
            message=f"{request.base} kept moving while the check ran ({self.policy.moved_rounds} tries); "
            "tuiorch retries",
            check=last_check,
            prepared=checked,
            checks_run=checks,
        )

    async def _run_check(self, request: LandingRequest, prepared: PreparedMerge, hooks: LandingHooks) -> CheckResult:
        assert request.scratch is not None and request.log_path is not None
        await asyncio.to_thread(self.git.checkout_detached, request.scratch, prepared.commit, request.keep)
        if hooks.on_check is not None:
            hooks.on_check(prepared)
        return await run_check(
            request.check,
            request.scratch,
            request.log_path,
            request.timeout,
            commit=prepared.commit,
            on_line=hooks.on_line,
        )


def _outcome(
    merge: MergeOutcome,
    *,
    check: CheckResult | None = None,
    prepared: PreparedMerge | None = None,
    checks_run: int = 0,
) -> LandingOutcome:
    """A git merge outcome (never "moved") as a landing outcome; "already" counts as merged."""
    kind: LandingKind = "merged" if merge.status in ("merged", "already") else merge.status  # type: ignore[assignment]
    return LandingOutcome(
        kind,
        commit=merge.commit,
        paths=merge.paths,
        kinds=dict(merge.kinds),
        message=merge.message,
        check=check,
        prepared=prepared if kind == "blocked" else None,
        checks_run=checks_run,
    )


def _append(log_path: Path, line: str) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(line + "\n")
