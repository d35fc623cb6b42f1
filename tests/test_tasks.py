"""TASKS.md / tasks.toml: what users write, what they get back, and the errors they see."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuiorch.tasks import (
    Priority,
    Task,
    TaskFileError,
    append_task_md,
    load_tasks,
    parse_tasks_md,
    parse_tasks_toml,
    render_tasks_md,
    validate_tasks,
    write_priority,
)

DESIGN_EXAMPLE = """\
# My project tasks

Some intro text that is not a task.

## Task 1: Skeleton
priority: foundation

Make the package.

## Task 2: Engine
touches: src/engine.py

## Task 3: Conflict modal
depends: 1, 2
priority: feature          # foundation | feature | polish   (default: feature)
touches: tuiorch/ui/screens/, tuiorch/ui/app.tcss
type: feat                 # conventional-commit type for the merge message (default: feat)

Free text: the description handed to the agent.

It has two paragraphs.
"""


def _bare(tasks: list[Task]) -> list[Task]:
    return [dataclasses.replace(t, source="", line=0) for t in tasks]


def _error(text: str, *, toml: bool = False) -> str:
    with pytest.raises(TaskFileError) as info:
        (parse_tasks_toml if toml else parse_tasks_md)(text)
    return str(info.value)


# --- Markdown -----------------------------------------------------------------------------------------


def test_design_example_parses_with_metadata_comments_and_defaults() -> None:
    tasks = parse_tasks_md(DESIGN_EXAMPLE)
    assert [t.id for t in tasks] == ["1", "2", "3"]
    one, two, three = tasks
    assert (one.title, one.priority, one.description, one.line) == (
        "Skeleton",
        Priority.FOUNDATION,
        "Make the package.",
        5,
    )
    assert (two.priority, two.type, two.depends, two.touches, two.description) == (
        Priority.FEATURE,
        "feat",
        (),
        ("src/engine.py",),
        "",
    )
    assert three.depends == ("1", "2")
    assert three.priority is Priority.FEATURE
    assert three.touches == ("tuiorch/ui/screens/", "tuiorch/ui/app.tcss")
    assert three.type == "feat"
    assert three.description == "Free text: the description handed to the agent.\n\nIt has two paragraphs."
    assert three.source == "TASKS.md" and three.line == 13


def test_metadata_variants() -> None:
    text = """\
## Task a-1: Spaced metadata


Depends: none
PRIORITY: Polish
type: fix(ui)!

Body.
## Task b.2: Space separated deps
depends: a-1   c_3
touches: ./src/#weird, docs/
## Task c_3: Empty metadata values
depends:
priority:
type:
"""
    a, b, c = parse_tasks_md(text)
    assert (a.depends, a.priority, a.type, a.description) == ((), Priority.POLISH, "fix(ui)!", "Body.")
    assert b.depends == ("a-1", "c_3")
    assert b.touches == ("./src/#weird", "docs/")  # '#' not after a space is part of the path
    assert (c.depends, c.priority, c.type) == ((), Priority.FEATURE, "feat")


def test_unknown_key_after_heading_starts_the_body() -> None:
    (task,) = parse_tasks_md("## Task 1: Prose\nNote: this is prose, not metadata.\npriority: polish\n")
    assert task.priority is Priority.FEATURE
    assert task.description == "Note: this is prose, not metadata.\npriority: polish"


def test_headings_inside_code_fences_are_body_text() -> None:
    text = """\
Intro with an example:
~~~markdown
## Task 99: example in the intro
~~~

## Task 1: Real
````
```
## Task 2: still inside the four-backtick fence
```
````
## Task 3: Also real
"""
    tasks = parse_tasks_md(text)
    assert [t.id for t in tasks] == ["1", "3"]
    assert "## Task 2: still inside" in tasks[0].description


def test_unclosed_fence_hiding_tasks_is_an_error_not_lost_tasks() -> None:
    message = _error("## Task 1: A\n```python\ncode\n\n## Task 2: B\n")
    assert message.startswith("TASKS.md:2: code fence is never closed")


def test_text_before_first_task_and_empty_queue() -> None:
    assert parse_tasks_md("") == []
    assert parse_tasks_md("# Tasks\n\nNothing yet.\n## Tasks overview\n") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# T\n## Task : x\n", "TASKS.md:2: malformed task heading '## Task : x'"),
        ("## Task 3\n", "TASKS.md:1: malformed task heading '## Task 3'"),
        ("## Task 1: A\nbody\n\n## Task2: B\n", "TASKS.md:4: malformed task heading '## Task2: B'"),
        ("## Task 3:   \n", "TASKS.md:1: task 3: empty title"),
        ("## Task a/b: Slash\n", "TASKS.md:1: unsafe task id 'a/b'"),
        ("## Task -x: Dash first\n", "TASKS.md:1: unsafe task id '-x'"),
        ("## Task a..b: Dots\n", "TASKS.md:1: unsafe task id 'a..b'"),
        ("## Task x.lock: Lock\n", "TASKS.md:1: unsafe task id 'x.lock'"),
        ("## Task 1: A\n\n## Task 1: B\n", "TASKS.md:3: duplicate task id '1' (first at line 1)"),
        ("## Task 1: A\ndepends: 7\n", "TASKS.md:1: task 1 depends on unknown task '7'"),
        ("## Task 1: A\ndepends: 1\n", "TASKS.md:1: task 1 depends on itself"),
        (
            "## Task 1: A\npriority: urgent\n",
            "TASKS.md:2: unknown priority 'urgent' (expected foundation, feature, polish)",
        ),
        (
            "## Task 1: A\ndepends: 2\ndepends: 3\n",
            "TASKS.md:3: task 1: 'depends' given twice (first at line 2)",
        ),
        ("## Task 1: A\ntype: not a type\n", "TASKS.md:1: task 1: bad type 'not a type'"),
        ("## Task 1: A\ntouches: a,, b # c\n", None),  # fine: empty entries and comments dropped
    ],
)
def test_markdown_errors_name_file_and_line(text: str, expected: str | None) -> None:
    if expected is None:
        assert parse_tasks_md(text)[0].touches == ("a", "b")
    else:
        assert _error(text).startswith(expected)


def test_cycle_is_printed_in_dependency_order() -> None:
    text = "## Task 1: A\ndepends: 3\n\n## Task 2: B\n\n## Task 3: C\ndepends: 2, 1\n"
    assert _error(text) == "TASKS.md:1: dependency cycle: 1 -> 3 -> 1"
    long_cycle = "## Task a: A\ndepends: b\n## Task b: B\ndepends: c\n## Task c: C\ndepends: a\n"
    assert _error(long_cycle).endswith("dependency cycle: a -> b -> c -> a")


def test_ten_thousand_tasks_with_a_ten_thousand_deep_chain() -> None:
    count = 10_000
    sections = ["## Task 0: start\npriority: foundation\n\nfirst\n"]
    sections += [
        f"## Task {i}: step {i}\ndepends: {i - 1}\ntouches: src/m{i % 50}.py\n\nDo {i}.\n"
        for i in range(1, count)
    ]
    tasks = parse_tasks_md("\n".join(sections))
    assert len(tasks) == count
    assert tasks[-1].depends == (str(count - 2),) and tasks[-1].description == f"Do {count - 1}."
    # Closing the chain into a loop is found without recursion errors, naming all 10k steps.
    looped = "\n".join(sections).replace("## Task 0: start\n", f"## Task 0: start\ndepends: {count - 1}\n")
    message = _error(looped)
    assert message.startswith("TASKS.md:1: dependency cycle: 0 -> 9999 -> 9998")
    assert message.count("->") == count


def test_validate_accepts_known_ids_for_deleted_merged_tasks() -> None:
    text = "## Task 3: Later\ndepends: 1\n"
    assert _error(text).endswith("depends on unknown task '1'")
    (task,) = parse_tasks_md(text, known_ids={"1"})
    assert task.depends == ("1",)
    assert parse_tasks_md(text, validate=False)[0].depends == ("1",)


# --- render / append ------------------------------------------------------------------------------------


def test_render_round_trips_the_design_example() -> None:
    tasks = parse_tasks_md(DESIGN_EXAMPLE)
    rendered = render_tasks_md(tasks, header="# My project tasks")
    assert rendered.startswith(
        "# My project tasks\n\n## Task 1: Skeleton\npriority: foundation\n\nMake the package.\n"
    )
    assert _bare(parse_tasks_md(rendered)) == _bare(tasks)


def test_render_protects_bodies_that_look_like_metadata_headings_or_open_fences() -> None:
    tricky = [
        Task("1", "Metadata-looking body", description="priority: polish\ndepends: 2"),
        Task("2", "Heading-looking body", description="## Task 9: not a task\n\\## Task 8: escaped"),
        Task("3", "Open fence", description="```\ncode"),
        Task("4", "After", depends=("3",)),
    ]
    tasks = parse_tasks_md(render_tasks_md(tricky))
    assert [t.id for t in tasks] == ["1", "2", "3", "4"]
    assert tasks[0].priority is Priority.FEATURE and tasks[0].description == "priority: polish\ndepends: 2"
    assert tasks[1].description == "## Task 9: not a task\n\\## Task 8: escaped"
    assert tasks[2].description == "```\ncode\n```"  # closed, so task 4 is not swallowed
    assert tasks[3].depends == ("3",)


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,8}", fullmatch=True)
_line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=0, max_size=30
)
_path = st.from_regex(r"[a-z0-9_./-]{1,12}", fullmatch=True)
_body_line = st.one_of(
    _line_text,
    st.sampled_from(
        ["## Task 5: looks like a heading", "```", "~~~~", "depends: 1", "  # not a comment", ""]
    ),
)


@st.composite
def _task_lists(draw: st.DrawFn) -> list[Task]:
    ids = draw(st.lists(_ids, min_size=0, max_size=6, unique=True))
    tasks = []
    for position, task_id in enumerate(ids):
        body_lines = draw(st.lists(_body_line, max_size=6))
        while body_lines and not body_lines[0].strip():  # the parser trims blank edge lines
            body_lines.pop(0)
        while body_lines and not body_lines[-1].strip():
            body_lines.pop()
        body = "\n".join(body_lines)
        tasks.append(
            Task(
                id=task_id,
                title=draw(_line_text.map(str.strip).filter(bool)),
                description=body,
                depends=tuple(draw(st.lists(st.sampled_from(ids[:position]), unique=True)))
                if position
                else (),
                priority=draw(st.sampled_from(list(Priority))),
                touches=tuple(draw(st.lists(_path, unique=True, max_size=3))),
                type=draw(st.sampled_from(["feat", "fix", "docs", "refactor(ui)", "feat!"])),
            )
        )
    return tasks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_task_lists())
def test_render_parse_round_trip(tasks: list[Task]) -> None:
    back = _bare(parse_tasks_md(render_tasks_md(tasks)))
    assert [t.id for t in back] == [t.id for t in tasks]
    for original, parsed in zip(tasks, back, strict=True):
        if parsed.description != original.description:
            # The one allowed change: a fence left open by the description is closed on the way out.
            added = parsed.description.removeprefix(original.description + "\n")
            assert added != parsed.description and re.fullmatch(r"`{3,}|~{3,}", added)
        assert dataclasses.replace(parsed, description=original.description) == original


def test_append_task_md_adds_a_parseable_task(tmp_path: Path) -> None:
    tasks_file = tmp_path / "TASKS.md"
    tasks_file.write_text("# Tasks\n\n## Task 1: First\nBody")  # no trailing newline
    append_task_md(tasks_file, Task("2", "Second", description="Do two.", depends=("1",)))
    text = tasks_file.read_text()
    assert "Body\n\n## Task 2: Second\n" in text
    loaded = load_tasks(tasks_file)
    assert [(t.id, t.description, t.depends) for t in loaded] == [("1", "Body", ()), ("2", "Do two.", ("1",))]

    with pytest.raises(TaskFileError, match=r"TASKS.md:\d+: duplicate task id '2'"):
        append_task_md(tasks_file, Task("2", "Again"))
    with pytest.raises(TaskFileError, match="depends on unknown task '9'"):
        append_task_md(tasks_file, Task("3", "Bad dep", depends=("9",)))
    assert tasks_file.read_text() == text  # refused appends write nothing

    fresh = tmp_path / "new" / "TASKS.md"
    fresh.parent.mkdir()
    append_task_md(fresh, Task("1", "Only"))
    assert [t.title for t in load_tasks(fresh)] == ["Only"]


# --- TOML -----------------------------------------------------------------------------------------------

TOML_EXAMPLE = """\
# tasks for the demo

[[task]]
id = 1
title = "Skeleton"
priority = "foundation"
description = \"\"\"
Make the package.
\"\"\"

[[task]]
id = "ui-2"
title = "  Conflict modal  "
depends = [1]
touches = ["tuiorch/ui/screens/", "tuiorch/ui/app.tcss"]
type = "fix"
"""


def test_toml_tasks() -> None:
    one, two = parse_tasks_toml(TOML_EXAMPLE)
    assert (one.id, one.title, one.priority, one.description, one.line) == (
        "1",
        "Skeleton",
        Priority.FOUNDATION,
        "Make the package.",
        3,
    )
    assert (two.id, two.title, two.depends, two.type, two.line) == (
        "ui-2",
        "Conflict modal",
        ("1",),
        "fix",
        11,
    )
    assert two.touches == ("tuiorch/ui/screens/", "tuiorch/ui/app.tcss")
    assert parse_tasks_toml("") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[task]]\nid = 1\ntitle = "a"\nowner = "me"\n', "tasks.toml:4: unknown key 'owner' in [[task]]"),
        (
            '[[task]]\nid = 1\ntitle = "a"\n\n[[task]]\nid = 1\ntitle = "b"\n',
            "tasks.toml:5: duplicate task id '1' (first at line 1)",
        ),
        ('[[task]]\nid = 1\ntitle = ""\n', "tasks.toml:1: task 1: empty title"),
        ('[[task]]\ntitle = "no id"\n', "tasks.toml:1: [[task]] without an id"),
        ('[[task]]\nid = "../x"\ntitle = "a"\n', "tasks.toml:1: unsafe task id '../x'"),
        ('[[task]]\nid = 1\ntitle = "a"\npriority = "high"\n', "tasks.toml:1: unknown priority 'high'"),
        ('[[task]]\nid = 1\ntitle = "a"\ndepends = "2"\n', "tasks.toml:1: task 1: depends must be a list"),
        ('[[task]]\nid = 1\ntitle = "a"\ndepends = [1]\n', "tasks.toml:1: task 1 depends on itself"),
        ('[[task]]\nid = true\ntitle = "a"\n', "tasks.toml:1: id must be a string or an integer"),
        ('title = "stray"\n', "tasks.toml: unknown key 'title'"),
        ("[[task]\nid = 1\n", "tasks.toml: invalid TOML: "),
        (
            '[[task]]\nid = "a"\ntitle = "A"\ndepends = ["b"]\n[[task]]\nid = "b"\ntitle = "B"\ndepends = ["a"]\n',
            "tasks.toml:1: dependency cycle: a -> b -> a",
        ),
    ],
)
def test_toml_errors(text: str, expected: str) -> None:
    assert _error(text, toml=True).startswith(expected)


def test_toml_syntax_error_carries_tomllib_line() -> None:
    assert "(at line 3" in _error('[[task]]\nid = 1\ntitle = "unterminated\n', toml=True)


# --- files ----------------------------------------------------------------------------------------------


def test_load_tasks_by_suffix_and_file_errors(tmp_path: Path) -> None:
    (tmp_path / "TASKS.md").write_text(DESIGN_EXAMPLE)
    (tmp_path / "tasks.toml").write_text(TOML_EXAMPLE)
    md = load_tasks(tmp_path / "TASKS.md")
    assert md[2].source == str(tmp_path / "TASKS.md")
    assert [t.id for t in load_tasks(tmp_path / "tasks.toml")] == ["1", "ui-2"]

    with pytest.raises(TaskFileError) as missing:
        load_tasks(tmp_path / "nope.md")
    assert str(missing.value) == f"{tmp_path / 'nope.md'}: cannot read: No such file or directory"

    (tmp_path / "binary.md").write_bytes(b"\xff\xfe## Task 1: x\n")
    with pytest.raises(TaskFileError, match="not UTF-8 text"):
        load_tasks(tmp_path / "binary.md")

    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.md"
        locked.write_text("## Task 1: x\n")
        locked.chmod(0)
        with pytest.raises(TaskFileError, match="cannot read: Permission denied"):
            load_tasks(locked)


def test_validate_tasks_on_programmatic_tasks() -> None:
    validate_tasks([Task("1", "A"), Task("2", "B", depends=("1",))], "ui")
    with pytest.raises(TaskFileError, match="^ui: task 1: the title must be one line$"):
        validate_tasks([Task("1", "two\nlines")], "ui")
    with pytest.raises(TaskFileError, match="can't contain a comma"):
        validate_tasks([Task("1", "A", touches=("a,b",))], "ui")


# -- mistakes a newcomer makes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "near"),
    [
        ("## Task 1: A\npriorty: polish\n\nbody\n", 2, "priority"),
        ("## Task 1: A\n\ndepend: 2\n\n## Task 2: B\n", 3, "depends"),
        ("## Task 1: A\npriority: polish\ntouch: src/\n", 3, "touches"),
        ("## Task 1: A\nDeps: 2\n\n## Task 2: B\n", 2, "depends"),
    ],
)
def test_a_misspelt_key_under_a_heading_names_the_line_and_the_key_meant(text: str, line: int, near: str) -> None:
    with pytest.raises(TaskFileError) as caught:
        parse_tasks_md(text)
    assert str(caught.value).startswith(f"TASKS.md:{line}: ")
    assert f"did you mean `{near}`?" in str(caught.value)


def test_prose_under_a_heading_is_still_the_description() -> None:
    (task,) = parse_tasks_md("## Task 1: A\nNote: keep the API stable.\n")
    assert task.description == "Note: keep the API stable."


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("## Task 1: A\nbody\n\n### Task 3: Swallowed\nmore\n", 4),
        ("# Task 3\n\n## Task 1: A\n", 1),
        ("## Task 1: A\n#### task 2: deep\n", 2),
        ("## Task 1: A\nbody\n### Task2: Swallowed\n", 3),
    ],
)
def test_a_heading_that_looks_like_a_task_but_is_not_level_two_is_an_error(text: str, line: int) -> None:
    with pytest.raises(TaskFileError) as caught:
        parse_tasks_md(text)
    assert str(caught.value).startswith(f"TASKS.md:{line}: ")
    assert "## Task <id>: <title>" in str(caught.value)


def test_other_headings_and_fenced_lookalikes_are_fine_and_round_trip() -> None:
    tasks = parse_tasks_md("# Tasks\n\n# Task list\n\n## Tasks\n\n## Task 1: A\n```\n### Task 2: in code\n```\n")
    assert [t.id for t in tasks] == ["1"]
    task = Task(id="1", title="A", description="### Task 3: quoted\n# Task 4")
    assert parse_tasks_md(render_tasks_md([task]))[0].description == task.description


def test_a_misspelt_key_in_tasks_toml_names_its_line_and_the_key_meant() -> None:
    with pytest.raises(TaskFileError) as caught:
        parse_tasks_toml('[[task]]\nid = 1\ntitle = "a"\n\n[[task]]\nid = 2\ntitle = "b"\ndepend = [1]\n')
    assert str(caught.value).startswith("tasks.toml:8: unknown key 'depend'")
    assert "did you mean `depends`?" in str(caught.value)


MD_WITH_STYLE = """\
# My tasks   <!-- keep -->

## Task 1: First

depends: 2   # after two

Body of one.

## Task 2: Second
PRIORITY:   polish   # later
Body of two.
"""


def test_a_priority_written_back_keeps_the_users_formatting(tmp_path: Path) -> None:
    path = tmp_path / "TASKS.md"
    path.write_text(MD_WITH_STYLE)
    write_priority(path, "2", Priority.FOUNDATION)
    write_priority(path, "1", Priority.POLISH)
    text = path.read_text()
    assert text == MD_WITH_STYLE.replace("PRIORITY:   polish", "PRIORITY:   foundation").replace(
        "depends: 2   # after two", "priority: polish\ndepends: 2   # after two"
    )
    assert {t.id: t.priority for t in load_tasks(path)} == {"1": Priority.POLISH, "2": Priority.FOUNDATION}


def test_a_priority_written_back_to_tasks_toml_changes_one_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks.toml"
    original = '# mine\n[[task]]\nid = 1\ntitle = "A"   # first\n\n[[task]]\nid = 2\ntitle = "B"\npriority = "polish"  # p\n'
    path.write_text(original)
    write_priority(path, "2", Priority.FEATURE)
    write_priority(path, "1", Priority.FOUNDATION)
    assert path.read_text() == original.replace('"polish"  # p', '"feature"  # p').replace(
        'title = "A"   # first\n', 'title = "A"   # first\npriority = "foundation"\n'
    )


def test_the_first_mistake_in_the_file_is_the_one_named() -> None:
    with pytest.raises(TaskFileError, match=r"^TASKS.md:2: .*priorty"):
        parse_tasks_md("## Task 1: A\npriorty: polish\n\n### Task 2: B\n")
    with pytest.raises(TaskFileError, match=r"^TASKS.md:1: '### Task 1: A'"):
        parse_tasks_md("### Task 1: A\n\n## Task 2: B\npriorty: polish\n")
