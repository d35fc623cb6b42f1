"""Real-world repository setups: commits follow the repository's rules, and work tuiorch cannot commit is kept.

Each test builds the setup for real (hooks, a throwaway SSH signing key, Git LFS, submodules, split and
sparse indexes, nested repositories) and drives the engine or `tuiorch run --headless` against it.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tuiorch.config import load_config
from tuiorch.gitops import GitError, GitRepo, UncommittedWork
from tuiorch.headless import run_headless
from tuiorch.tasks import load_tasks


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def hook(repo: Path, name: str, body: str) -> None:
    """An executable hook script in the repository's hooks folder."""
    path = repo / ".git" / "hooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def project(repo: Path, tasks_md: str, *, extra: str = "", workers: int = 1) -> None:
    (repo / "tuiorch.toml").write_text(
        f'workers = {workers}\n\n[agent]\npreset = "demo"\ntimeout = "60s"\nstuck_after = "0"\n{extra}'
    )
    (repo / "TASKS.md").write_text(textwrap.dedent(tasks_md))
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "--no-verify", "-m", "add tasks")


def custom_agent(repo: Path, tmp_path: Path, script: str, tasks_md: str) -> None:
    """A project whose agent is a Python script run in the worktree (its first argument)."""
    agent = tmp_path / "agent.py"
    agent.write_text(textwrap.dedent(script))
    extra = f'\n[agent]\npreset = "custom"\ncommand = [{json.dumps(sys.executable)}, {json.dumps(str(agent))}, "{{worktree}}"]\n'
    (repo / "tuiorch.toml").write_text('workers = 1\n' + extra + 'timeout = "60s"\nstuck_after = "0"\n')
    (repo / "TASKS.md").write_text(textwrap.dedent(tasks_md))
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "--no-verify", "-m", "add tasks")


def run(repo: Path) -> tuple[int, list[dict]]:
    out = io.StringIO()
    code = run_headless(
        repo, load_config(repo), load_tasks(repo / "TASKS.md"), task_file=repo / "TASKS.md", as_json=True, out=out
    )
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def of(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


LEFTOVER_TASK = """\
    ## Task 1: Add notes
    no-commit

    ```write notes.txt
    {text}
    ```
"""


# ------------------------------------------------------------------ hooks


def test_a_pre_commit_hook_rejecting_leftovers_fails_the_task_and_keeps_the_work(repo: Path) -> None:
    hook(repo, "pre-commit", 'if git diff --cached --name-only | grep -q notes.txt; then echo "no notes allowed" >&2; exit 1; fi\n')
    project(repo, LEFTOVER_TASK.format(text="secret"))
    main_before = git(repo, "rev-parse", "main")
    code, events = run(repo)
    assert code == 1, events
    [failed] = of(events, "task_failed")
    assert "no notes allowed" in failed["reason"]
    assert git(repo, "rev-parse", "main") == main_before
    assert not (repo / "notes.txt").exists()
    # The reason names where the work is, and it is there, uncommitted.
    kept = Path(failed["reason"].rsplit("its work is kept in ", 1)[1])
    assert (kept / "notes.txt").read_text() == "secret\n"
    assert "notes.txt" in git(kept, "status", "--porcelain")


def test_commit_msg_hooks_run_for_leftovers_and_for_the_merge(repo: Path) -> None:
    hook(repo, "commit-msg", 'printf "\\nHook-Seen: yes\\n" >> "$1"\n')
    project(repo, LEFTOVER_TASK.format(text="notes"))
    code, events = run(repo)
    assert code == 0, events
    merge = of(events, "merged")[0]["commit"]
    assert "Hook-Seen: yes" in git(repo, "log", "-1", "--format=%B", merge)
    leftover = git(repo, "rev-parse", f"{merge}^2")
    assert "Hook-Seen: yes" in git(repo, "log", "-1", "--format=%B", leftover)
    assert (repo / "notes.txt").read_text() == "notes\n"


def test_a_pre_merge_commit_hook_rejection_fails_the_merge_and_keeps_main(repo: Path, tmp_path: Path) -> None:
    # The hook sees the merge through the index, as under `git merge`.
    hook(repo, "pre-merge-commit", 'if git diff --cached --name-only | grep -q bad.txt; then echo "bad.txt refused"; exit 1; fi\n')
    gr = GitRepo(repo)
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    write(wt, {"bad.txt": "x\n"})
    gr.commit_leftovers(wt, "add bad")
    before = git(repo, "rev-parse", "main")
    with pytest.raises(GitError, match="pre-merge-commit hook rejected the merge of task-1 into main.*bad.txt refused"):
        gr.merge("task-1", "main", "merge task-1")
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "status", "--porcelain") == ""  # the user's index was not used for the hook
    write(wt, {"good.txt": "y\n"})
    gr.remove_worktree(wt)
    gr.prepare_worktree(tmp_path / "wt2", "task-2", "main")
    write(tmp_path / "wt2", {"good.txt": "y\n"})
    gr.commit_leftovers(tmp_path / "wt2", "add good")
    assert gr.merge("task-2", "main", "merge task-2").status == "merged"


# ---------------------------------------------------------------- signing


@pytest.fixture
def ssh_signing(repo: Path, tmp_path: Path) -> Path:
    """commit.gpgsign with a real throwaway SSH key; returns the allowed-signers file for verification."""
    key = tmp_path / "signing-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(key) + ".pub")
    git(repo, "config", "commit.gpgsign", "true")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"test@example.com {(tmp_path / 'signing-key.pub').read_text()}")
    return allowed


def test_signing_configuration_signs_the_merge_and_leftover_commits(repo: Path, ssh_signing: Path) -> None:
    project(repo, LEFTOVER_TASK.format(text="signed"))
    code, events = run(repo)
    assert code == 0, events
    merge = of(events, "merged")[0]["commit"]
    for commit in (merge, f"{merge}^2"):
        verified = subprocess.run(
            ["git", "-c", f"gpg.ssh.allowedSignersFile={ssh_signing}", "verify-commit", commit],
            cwd=repo, capture_output=True, text=True,
        )
        assert verified.returncode == 0, verified.stderr
        assert 'Good "git" signature for test@example.com' in verified.stderr


def test_signing_that_fails_names_the_setting_and_leaves_main(repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(tmp_path / "no-such-key.pub"))
    git(repo, "config", "commit.gpgsign", "true")
    gr = GitRepo(repo)
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    write(wt, {"x.txt": "x\n"})
    git(wt, "add", "x.txt")
    git(wt, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "x")
    before = git(repo, "rev-parse", "main")
    with pytest.raises(GitError, match="commit.gpgsign = true"):
        gr.merge("task-1", "main", "merge task-1")
    assert git(repo, "rev-parse", "main") == before


# ---------------------------------------------------------------- identity


def test_identity_only_in_the_environment_is_used(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Env Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@env.example")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Env Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@env.example")
    project(repo, LEFTOVER_TASK.format(text="env"))
    code, events = run(repo)
    assert code == 0, events
    merge = of(events, "merged")[0]["commit"]
    for commit in (merge, f"{merge}^2"):
        assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", commit) == (
            "Env Author <author@env.example>|Env Committer <committer@env.example>"
        )


def test_identity_from_an_include_if_is_used(repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    included = tmp_path / "work-identity"
    included.write_text("[user]\n\tname = Included Person\n\temail = included@work.example\n")
    git(repo, "config", f"includeIf.gitdir:{repo.resolve()}/.path", str(included))
    gr = GitRepo(repo)
    sig = gr.signature()
    assert (sig.name, sig.email) == ("Included Person", "included@work.example")
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    write(wt, {"x.txt": "x\n"})
    gr.commit_leftovers(wt, "x")
    outcome = gr.merge("task-1", "main", "merge task-1")
    assert git(repo, "log", "-1", "--format=%an <%ae>", outcome.commit) == "Included Person <included@work.example>"


# ---------------------------------------------------------------- LFS


def test_a_leftover_lfs_file_is_committed_as_a_pointer(repo: Path) -> None:
    git(repo, "lfs", "install", "--local")
    write(repo, {".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n"})
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "-m", "track bin with lfs")
    project(repo, """\
        ## Task 1: Add data
        no-commit

        ```write data.bin
        {}
        ```
    """.format("0123456789" * 300))
    code, events = run(repo)
    assert code == 0, events
    merge = of(events, "merged")[0]["commit"]
    stored = git(repo, "cat-file", "-p", f"{merge}:data.bin")
    assert stored.startswith("version https://git-lfs.github.com/spec/v1\noid sha256:")
    assert "size 3001" in stored


# ----------------------------------------------------- work that cannot be committed


def test_a_nested_repository_fails_the_task_and_keeps_the_worktree(repo: Path, tmp_path: Path) -> None:
    custom_agent(repo, tmp_path, """\
        import pathlib, subprocess, sys
        tool = pathlib.Path(sys.argv[1]) / "tool"
        tool.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=tool, check=True)
        (tool / "main.py").write_text("print('tool')\\n")
        (pathlib.Path(sys.argv[1]) / "uses_tool.txt").write_text("see tool/\\n")
    """, "## Task 1: Make a tool\n\nMake it.\n")
    before = git(repo, "rev-parse", "main")
    code, events = run(repo)
    assert code == 1
    [failed] = of(events, "task_failed")
    assert "made a git repository inside its worktree (tool/)" in failed["reason"]
    kept = Path(failed["reason"].rsplit("its work is kept in ", 1)[1])
    assert (kept / "tool" / "main.py").read_text() == "print('tool')\n"
    assert (kept / "uses_tool.txt").exists()
    assert git(repo, "rev-parse", "main") == before
    # A later clean does not throw the kept work away unless told to.
    done = subprocess.run([sys.executable, "-m", "tuiorch", "clean"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"kept worktree {kept}: uncommitted work" in done.stdout
    assert (kept / "tool" / "main.py").exists()


@pytest.mark.parametrize("setting", ["core.splitIndex", "index.sparse"])
def test_split_and_sparse_index_settings_still_commit_leftovers_and_reuse_slots(repo: Path, setting: str) -> None:
    git(repo, "config", setting, "true")
    if setting == "index.sparse":
        git(repo, "config", "core.sparseCheckout", "true")
        git(repo, "config", "core.sparseCheckoutCone", "true")
    project(repo, """\
        ## Task 1: One
        no-commit

        ```write one/a.txt
        one
        ```

        ## Task 2: Two
        depends: 1
        no-commit

        ```write two/b.txt
        two
        ```
    """, extra="\n[slots]\nreuse = true\n")
    # The user works on another branch: this is about the task worktrees, not about updating a checkout.
    git(repo, "switch", "-q", "-c", "elsewhere")
    code, events = run(repo)
    assert code == 0, [e for e in events if e["event"] in ("task_failed", "merge_blocked")]
    assert git(repo, "show", "main:one/a.txt") == "one"
    assert git(repo, "show", "main:two/b.txt") == "two"


# ------------------------------------------------------- task worktree contents


def test_task_worktrees_are_full_checkouts_even_when_the_user_checkout_is_sparse(repo: Path, tmp_path: Path) -> None:
    write(repo, {"keep/a.txt": "a\n", "out/b.txt": "b\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two dirs")
    git(repo, "sparse-checkout", "set", "--cone", "keep")
    assert not (repo / "out" / "b.txt").exists()
    gr = GitRepo(repo)
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    assert (wt / "out" / "b.txt").read_text() == "b\n"
    write(wt, {"keep/new.txt": "n\n"})
    sha = gr.commit_leftovers(wt, "new file")
    assert sha is not None
    # The leftover commit adds the file and deletes nothing outside the user's cone.
    assert git(repo, "diff", "--name-status", f"{sha}^", sha) == "A\tkeep/new.txt"
    gr.release_worktree(wt)
    gr.prepare_worktree(wt, "task-2", "main")  # a warm slot stays a full checkout
    assert (wt / "out" / "b.txt").read_text() == "b\n"


def test_task_worktrees_get_populated_submodules(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # git refuses local-path submodule clones by default; this user allows them, as their setup needs.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.file.allow")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "always")
    lib = make_repo(tmp_path / "lib", {"lib.txt": "library\n"})
    git(repo, "submodule", "add", "-q", str(lib), "vendor/lib")
    git(repo, "commit", "-q", "-m", "add submodule")
    gr = GitRepo(repo)
    wt = tmp_path / "wts" / "slot"
    gr.prepare_worktree(wt, "task-1", "main")
    assert (wt / "vendor" / "lib" / "lib.txt").read_text() == "library\n"
    assert gr.commit_leftovers(wt, "nothing") is None  # a populated submodule is not a change
    gr.release_worktree(wt)
    gr.prepare_worktree(wt, "task-2", "main")
    assert (wt / "vendor" / "lib" / "lib.txt").read_text() == "library\n"


def test_git_run_by_the_agent_sees_the_task_worktree_settings(repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "core.splitIndex", "true")
    custom_agent(repo, tmp_path, """\
        import pathlib, subprocess, sys
        wt = pathlib.Path(sys.argv[1])
        (wt / "x.txt").write_text("x\\n")
        subprocess.run(["git", "add", "x.txt"], cwd=wt, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "x"], cwd=wt, check=True)
        split = subprocess.run(["git", "config", "core.splitIndex"], cwd=wt, capture_output=True, text=True)
        print("splitIndex=" + split.stdout.strip())
    """, "## Task 1: X\n\nDo it.\n")
    git(repo, "switch", "-q", "-c", "elsewhere")
    code, events = run(repo)
    assert code == 0, [e for e in events if e["event"] == "task_failed"]
    log = repo / ".git" / "tuiorch" / "logs" / "1.log"
    assert "splitIndex=false" in log.read_text()


def test_uncommitted_work_error_names_the_worktree(repo: Path, tmp_path: Path) -> None:
    gr = GitRepo(repo)
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    (wt / "inner").mkdir()
    git(wt / "inner", "init", "-q")
    write(wt, {"inner/work.txt": "the agent's\n"})
    with pytest.raises(UncommittedWork) as raised:
        gr.commit_leftovers(wt, "x")
    assert raised.value.worktree == wt
    assert str(wt) in str(raised.value)
    assert os.path.isdir(wt / "inner" / ".git")


# ------------------------------------------------------------ refused up front


def tuiorch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuiorch", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def assert_refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


ONE_TASK = """\
    ## Task 1: Add alpha

    ```write alpha.txt
    alpha
    ```
"""


def test_a_sha256_repository_is_refused_with_the_setting_named(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", "--object-format=sha256")
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.com")
    project(repo, ONE_TASK)
    done = tuiorch(repo, "run", "--headless")
    assert_refused(done, "extensions.objectFormat = sha256", "SHA-1")
    assert not (tmp_path / "repo-worktrees").exists()


def _separate_git_dir_repo(repo: Path, git_dir: Path) -> Path:
    """A repository made by `git init --separate-git-dir`, with one commit."""
    git(repo.parent, "init", "-q", "-b", "main", f"--separate-git-dir={git_dir}", str(repo))
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.com")
    write(repo, {"README.md": "# demo\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def test_a_separate_git_dir_repository_runs_in_its_real_work_tree(tmp_path: Path) -> None:
    repo = _separate_git_dir_repo(tmp_path / "work", tmp_path / "elsewhere.git")
    gr = GitRepo(repo / "sub" if (repo / "sub").mkdir() is None else repo)
    assert gr.root == repo.resolve()
    assert gr.git_dir == (tmp_path / "elsewhere.git").resolve()
    project(repo, ONE_TASK)
    done = tuiorch(repo, "run", "--headless")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert (repo / "alpha.txt").read_text() == "alpha\n"
    assert not (tmp_path / "alpha.txt").exists()
    assert git(repo, "status", "--porcelain") == ""


def test_a_separate_git_dir_named_dot_git_elsewhere_still_opens_its_real_work_tree(tmp_path: Path) -> None:
    """The git dir is another folder's `.git`: libgit2 takes that folder for the work tree, git does not."""
    holder = tmp_path / "holder"
    holder.mkdir()
    repo = _separate_git_dir_repo(tmp_path / "work", holder / ".git")
    assert GitRepo(repo).root == repo.resolve()
    assert GitRepo(repo).git_dir == (holder / ".git").resolve()


@pytest.mark.parametrize(
    ("template", "existing"), [("agent/{id}", "agent"), ("agent-{id}", "agent-1/experiment")]
)
def test_a_branch_template_clashing_with_a_branch_is_refused(repo: Path, template: str, existing: str) -> None:
    project(repo, ONE_TASK)
    (repo / "tuiorch.toml").write_text(f'branch = "{template}"\n' + (repo / "tuiorch.toml").read_text())
    git(repo, "commit", "-q", "-am", "template")
    git(repo, "branch", existing)
    done = tuiorch(repo, "run", "--headless")
    assert_refused(done, f"clashes with the existing branch '{existing}'", "tuiorch.toml")
    assert not (repo.parent / "repo-worktrees").exists()


def test_a_clash_appearing_mid_run_fails_only_that_task_with_the_reason(repo: Path, tmp_path: Path) -> None:
    gr = GitRepo(repo)
    git(repo, "branch", "agent")
    with pytest.raises(GitError, match="clashes with the existing branch 'agent'"):
        gr.prepare_worktree(tmp_path / "wt", "agent/1", "main")


@pytest.mark.parametrize("operation", ["merge", "cherry-pick"])
def test_an_operation_in_progress_at_start_is_refused(repo: Path, operation: str) -> None:
    project(repo, ONE_TASK)
    git(repo, "switch", "-q", "-c", "side")
    write(repo, {"README.md": "side\n"})
    git(repo, "commit", "-q", "-am", "side")
    git(repo, "switch", "-q", "main")
    write(repo, {"README.md": "main\n"})
    git(repo, "commit", "-q", "-am", "main")
    subprocess.run(["git", operation, "side"], cwd=repo, capture_output=True)  # stops on the conflict
    done = tuiorch(repo, "run", "--headless")
    assert_refused(done, f"a {operation} is in progress in {repo.resolve()}", f"git {operation} --abort")
    assert not (repo.parent / "repo-worktrees").exists()


# ------------------------------------------------------------------ input


def test_a_task_file_with_a_bom_and_crlf_loses_no_task(repo: Path) -> None:
    project(repo, ONE_TASK)
    text = textwrap.dedent("""\
        ## Task 1: Add alpha

        ```write alpha.txt
        alpha
        ```

        ## Task 2: Add beta
        priority: polish

        ```write beta.txt
        beta
        ```
    """)
    (repo / "TASKS.md").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    git(repo, "commit", "-q", "-am", "windows editor")
    code, events = run(repo)
    assert code == 0, events
    assert {e["task"] for e in of(events, "merged")} == {"1", "2"}
    assert (repo / "alpha.txt").read_text() == "alpha\n"  # no stray \r from the CRLF file


def test_a_tasks_toml_with_a_bom_and_crlf_loads_and_keeps_its_layout_when_written(tmp_path: Path) -> None:
    from tuiorch.tasks import Priority, write_priority

    path = tmp_path / "tasks.toml"
    text = '[[task]]\nid = "1"\ntitle = "First"\npriority = "feature"\n\n[[task]]\nid = "2"\ntitle = "Second"\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert [t.id for t in load_tasks(path)] == ["1", "2"]
    write_priority(path, "1", Priority.POLISH)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert b'priority = "polish"\r\n' in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert load_tasks(path)[0].priority == Priority.POLISH


def test_file_names_that_are_not_utf8_merge(repo: Path, tmp_path: Path) -> None:
    custom_agent(repo, tmp_path, """\
        import os, sys
        with open(os.path.join(os.fsencode(sys.argv[1]), b"caf\\xe9.txt"), "wb") as out:
            out.write(b"latin-1 name\\n")
    """, "## Task 1: Latin-1\n\nWrite it.\n")
    code, events = run(repo)
    assert code == 0, [e for e in events if e["event"] in ("task_failed", "merge_blocked")]
    assert b"caf\xe9.txt" in os.listdir(os.fsencode(repo))
    with open(os.path.join(os.fsencode(repo), b"caf\xe9.txt"), "rb") as merged:
        assert merged.read() == b"latin-1 name\n"
    assert git(repo, "status", "--porcelain") == ""


def test_headless_picks_up_tasks_added_to_the_file_during_the_run(repo: Path) -> None:
    project(repo, """\
        ## Task 1: Slow one
        sleep: 4

        ```write one.txt
        one
        ```
    """)
    run_ = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    try:
        assert run_.stdout is not None
        for line in run_.stdout:
            lines.append(line)
            if '"task_started"' in line:
                break
        time.sleep(0.5)  # the watcher is up once the run is
        with (repo / "TASKS.md").open("a") as tasks:
            tasks.write("\n## Task 2: Added while running\n\n```write two.txt\ntwo\n```\n")
        rest, err = run_.communicate(timeout=90)
    finally:
        if run_.poll() is None:
            run_.kill()
            run_.wait()
    lines += rest.splitlines()
    assert run_.returncode == 0, (lines, err)
    events = [json.loads(line) for line in lines]
    assert {e["task"] for e in of(events, "merged")} == {"1", "2"}
    assert any("TASKS.md reloaded: 2 tasks" in e.get("message", "") for e in of(events, "notice"))
    assert (repo / "two.txt").read_text() == "two\n"


def test_a_file_directory_conflict_is_named_so(repo: Path, tmp_path: Path) -> None:
    gr = GitRepo(repo)
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    write(wt, {"x/y.txt": "the task's directory\n"})
    gr.commit_leftovers(wt, "dir")
    write(repo, {"x": "main's file\n"})
    git(repo, "add", "x")
    git(repo, "commit", "-q", "-m", "file")
    outcome = gr.merge("task-1", "main", "merge")
    assert outcome.status == "conflict"
    assert outcome.kinds == {"x": "file/directory"}


def test_the_merge_check_sees_every_file_when_the_user_checkout_is_sparse(repo: Path, tmp_path: Path) -> None:
    write(repo, {"keep/a.txt": "a\n", "out/b.txt": "b\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two dirs")
    git(repo, "sparse-checkout", "set", "--cone", "keep")
    gr = GitRepo(repo)
    scratch = tmp_path / "check"
    gr.checkout_detached(scratch, git(repo, "rev-parse", "main"))
    assert (scratch / "out" / "b.txt").read_text() == "b\n"
    assert git(scratch, "status", "--porcelain") == ""


def test_a_failing_agent_whose_leftovers_cannot_be_committed_keeps_them(repo: Path, tmp_path: Path) -> None:
    custom_agent(repo, tmp_path, """\
        import pathlib, subprocess, sys
        tool = pathlib.Path(sys.argv[1]) / "tool"
        tool.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=tool, check=True)
        (tool / "half.py").write_text("half done\\n")
        sys.exit(3)
    """, "## Task 1: Half a tool\n\nMake it.\n")
    (repo / "tuiorch.toml").write_text((repo / "tuiorch.toml").read_text() + "retries = 2\n")
    git(repo, "commit", "-q", "-am", "retries")
    code, events = run(repo)
    assert code == 1
    [failed] = of(events, "task_failed")
    assert len(of(events, "task_started")) == 1  # no retry over the kept work
    kept = Path(failed["reason"].rsplit("its work is kept in ", 1)[1])
    assert (kept / "tool" / "half.py").read_text() == "half done\n"


def test_gpg_signing_signs_the_merge_and_leftover_commits(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    try:
        subprocess.run(
            ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Test User <test@example.com>", "ed25519",
             "sign", "never"],
            check=True, capture_output=True,
        )
        git(repo, "config", "user.signingkey", "test@example.com")
        git(repo, "config", "commit.gpgsign", "true")
        project(repo, LEFTOVER_TASK.format(text="gpg"))
        code, events = run(repo)
        assert code == 0, events
        merge = of(events, "merged")[0]["commit"]
        for commit in (merge, f"{merge}^2"):
            verified = subprocess.run(["git", "verify-commit", commit], cwd=repo, capture_output=True, text=True)
            assert verified.returncode == 0, verified.stderr
            assert 'Good signature from "Test User <test@example.com>"' in verified.stderr
    finally:
        # gpg starts an agent for the key: it must not outlive the test.
        subprocess.run(["gpgconf", "--kill", "all"], capture_output=True)
