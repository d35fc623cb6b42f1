"""The benchmark scripts still run: each in --quick mode, as a user would start it, prints its figures."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
TIMEOUT = 50.0


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run bench/<script> in its own process group; on a timeout, stop the whole group."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # tuiorch stops its agents on SIGINT
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"{script} {' '.join(args)} took over {TIMEOUT}s\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_throughput_quick_runs_both_arms_and_prints_the_speedup() -> None:
    done = run_bench("throughput.py", "--quick")
    assert done.returncode == 0, done.stderr
    line = re.search(
        r"^files=50 tasks=4 workers=2  tuiorch (\d+\.\d+)s  git-cli (\d+\.\d+)s  speedup (\d+\.\d+)x$",
        done.stdout,
        re.MULTILINE,
    )
    assert line is not None, done.stdout
    tuiorch_time, cli_time, speedup = (float(value) for value in line.groups())
    assert tuiorch_time > 0 and cli_time > 0
    # The times are printed to 0.01 s and the speedup to 0.01: allow exactly that much rounding.
    rounding = (cli_time / tuiorch_time) * (0.005 / tuiorch_time + 0.005 / cli_time) + 0.005
    assert speedup == pytest.approx(cli_time / tuiorch_time, abs=rounding)
    assert re.search(r"first merge: tuiorch \d", done.stdout), done.stdout
    floor = re.search(
        r"agents alone (\d+\.\d+)s .*git-cli / agents alone = (\d+\.\d+)x$", done.stdout, re.MULTILINE
    )
    assert floor is not None, done.stdout
    # The agents alone do less than either arm: below both, and the ceiling is the git-CLI arm over it.
    alone, ceiling = float(floor.group(1)), float(floor.group(2))
    assert 0 < alone < cli_time
    assert ceiling == pytest.approx(cli_time / alone, rel=0.1)


def test_throughput_rejects_a_bad_files_list_with_a_usage_error() -> None:
    done = run_bench("throughput.py", "--files-list", "200,lots")
    assert done.returncode == 2
    assert "--files-list" in done.stderr
    assert "Traceback" not in done.stderr


def test_queue_scale_quick_prints_load_pick_scaling_and_ui_lines() -> None:
    done = run_bench("queue_scale.py", "--quick")
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"^load_tasks +1,000 tasks: median .* \(target <= 1s: ok\)$", done.stdout, re.MULTILINE
    ), done.stdout
    assert re.search(
        r"^pick_tasks scaling ratio  100->1,000 x\d+\.\d  1,000->10,000 x\d+\.\d", done.stdout, re.MULTILINE
    ), done.stdout
    # The TUI line, or an explicit skip: never silence.
    assert re.search(
        r"^ui(?: queue 100 tasks, key to screen .* J p50 .* K p50|: skipped)", done.stdout, re.MULTILINE
    ), done.stdout


def test_leftovers_quick_prints_both_arms_and_the_ratio() -> None:
    done = run_bench("leftovers.py", "--quick")
    assert done.returncode == 0, done.stderr
    assert re.search(r"git add -A \+ git commit [\d.]+ ms  libgit2 [\d.]+ ms  ratio [\d.]+x", done.stdout), done.stdout


def test_wide_merge_quick_prints_the_three_arms_and_the_ratio() -> None:
    done = run_bench("wide_merge.py", "--quick")
    assert done.returncode == 0, done.stderr
    line = re.search(
        r"^changed=200 runs=1  tuiorch (\d+\.\d+)s  git merge --no-ff (\d+\.\d+)s  ratio (\d+\.\d+)x "
        r"\(target <= 1\.2x: (?:ok|over)\)  libgit2 checkout \d+\.\d+s  best runs: ratio \d+\.\d+x$",
        done.stdout,
        re.MULTILINE,
    )
    assert line is not None, done.stdout
    tuiorch_time, git_time, ratio = (float(value) for value in line.groups())
    assert tuiorch_time > 0 and git_time > 0
    # Times are printed to 1 ms and the ratio to 0.01: allow exactly that much rounding.
    rounding = (tuiorch_time / git_time) * (0.0005 / tuiorch_time + 0.0005 / git_time) + 0.005
    assert ratio == pytest.approx(tuiorch_time / git_time, abs=rounding)


def test_throughput_tmpfs_rounds_prints_the_medians_of_interleaved_rounds() -> None:
    done = run_bench("throughput.py", "--quick", "--tmpfs", "--rounds", "2")
    assert done.returncode == 0, done.stderr
    line = re.search(
        r"^files=50 tasks=4 workers=2 \(tmpfs, median of 2 interleaved\)  tuiorch (\d+\.\d+)s  "
        r"git-cli (\d+\.\d+)s  speedup \d+\.\d+x$",
        done.stdout,
        re.MULTILINE,
    )
    assert line is not None, done.stdout
    for arm in ("tuiorch", "git-cli"):
        rounds = re.search(rf"^  {arm} +rounds: (\d+\.\d+)s  (\d+\.\d+)s$", done.stdout, re.MULTILINE)
        assert rounds is not None, done.stdout
        # Two rounds: the median is their mean.
        median = float(line.group(1 if arm == "tuiorch" else 2))
        assert median == pytest.approx(sum(float(value) for value in rounds.groups()) / 2, abs=0.011)


def test_engine_profile_quick_names_where_the_time_went() -> None:
    done = run_bench("engine_profile.py", "--quick", "--top", "100")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^files=50 tasks=4 workers=2 ", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"first agent started at \d+ ms; run ended at \d+ ms", done.stdout), done.stdout
    # The git work runs in worker threads: it must show, with the agent's run and the merge.
    for name in (r"AgentProcess\.run", r"Landings\.merge", r"subprocess git \w"):
        assert re.search(rf"^ +\d+\.\d +\d+ +\d+\.\d+  \S*{name}", done.stdout, re.MULTILINE), (name, done.stdout)
