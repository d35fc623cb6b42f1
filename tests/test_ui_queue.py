"""The queue pane on a big queue: J/K/T reorder the right rows at once, and what it shows is the engine's order."""

from __future__ import annotations

from pathlib import Path

from tests.test_ui_app import SIZE, make_app, quit_app, wait_for, write_project
from tuiorch.events import TaskStatus
from tuiorch.ui.app import TuiorchApp
from tuiorch.ui.format import NONE, QueueLine, queue_lines
from tuiorch.ui.widgets import QueuePane
from tuiorch.ui.widgets.queue_pane import moved_lines

TASKS = 300


def many_tasks(count: int) -> str:
    # Every tenth task depends on the one before, so wait reasons differ from row to row.
    blocks = []
    for n in range(1, count + 1):
        depends = f"depends: {n - 1}\n" if n % 10 == 0 else ""
        blocks.append(f"## Task {n}: Task number {n}\n{depends}\n```write t{n}.txt\n{n}\n```\n")
    return "\n".join(blocks)


def engine_queue(app: TuiorchApp) -> list[str]:
    return [tid for tid in app.orch.order if app.orch.records[tid].status is TaskStatus.QUEUED]


def shown_queue(pane: QueuePane) -> list[str]:
    return [line.id for line in pane.lines if line.order != NONE]


async def test_j_k_t_move_the_selected_row_and_the_pane_matches_the_engine_order(repo: Path) -> None:
    write_project(repo, many_tasks(TASKS), workers=2)
    app = make_app(repo, paused=True, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(QueuePane)
        await wait_for(pilot, lambda: pane.table.row_count == TASKS)
        assert shown_queue(pane) == [str(n) for n in range(1, TASKS + 1)]

        async def press_and_check(key: str, task: str, row: int) -> None:
            before = list(pane.lines)
            await pilot.press(key)
            # Shown at once, before the engine's queue view is read again: the task and its cursor moved,
            # the rows between swapped places, and the "#" column still numbers the rows.
            assert pane.selected_id == task and pane.table.cursor_row == row == pane.row_of(task)
            assert shown_queue(pane) == engine_queue(app)
            assert [line.order for line in pane.lines] == [line.order for line in before]
            await wait_for(pilot, lambda: app.queue_in_sync)
            lines = queue_lines(app.orch.queue_view(), app.orch.records, app.orch.slots)
            assert list(pane.lines) == lines
            assert pane.selected_id == task

        await pilot.press("down", "down", "down")  # on task 4
        await press_and_check("J", "4", 4)
        await press_and_check("J", "4", 5)
        await press_and_check("K", "4", 4)
        assert shown_queue(pane)[:6] == ["1", "2", "3", "5", "4", "6"]
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown", "pagedown", "pagedown")
        far = pane.table.cursor_row
        assert far > 50 and pane.table.scroll_y > 0  # the table scrolled with its cursor
        task = pane.selected_id
        assert task is not None
        await press_and_check("T", task, 0)
        assert pane.table.scroll_y == 0  # the cursor followed its task to the top
        assert shown_queue(pane)[:6] == [task, "1", "2", "3", "5", "4"]
        await pilot.press("end")
        last = shown_queue(pane)[-1]
        await press_and_check("J", last, TASKS - 1)  # the last one cannot go lower: nothing moves
        await press_and_check("K", last, TASKS - 2)
        assert shown_queue(pane)[-2:] == [last, engine_queue(app)[-1]]
        await quit_app(pilot, app)


def test_a_move_preview_keeps_row_numbers_and_stops_at_the_queue_ends() -> None:
    def line(task: str, order: str) -> QueueLine:
        return QueueLine(id=task, order=order, title=f"t{task}", priority="feature", deps=NONE,
                         state="queued" if order != NONE else "running", reason="")

    lines = [line("a", "1"), line("b", "2"), line("c", "3"), line("r", NONE)]
    assert [(x.id, x.order) for x in moved_lines(lines, 1, 2, 3) or []] == [("a", "1"), ("c", "2"), ("b", "3"),
                                                                          ("r", NONE)]
    assert [x.id for x in moved_lines(lines, 2, 0, 3) or []] == ["c", "a", "b", "r"]
    assert moved_lines(lines, 2, 3, 3) is None  # a queued task is never moved below the queue's last row
    assert moved_lines(lines, 0, -1, 3) is None
    assert moved_lines(lines, 3, 0, 3) is None  # not queued
