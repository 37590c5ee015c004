"""The comparison benchmark (issue #7) measures what it claims: its resume columns come from real
runs, so check them on a fast version of the same suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compare  # noqa: E402
import cost  # noqa: E402
from pytest_resumable.journal import codec  # noqa: E402
from pytest_resumable.journal.records import ResultRecord, StartRecord  # noqa: E402


def run_script(name: str, *args: str) -> str:
    """Run ``benchmarks/<name>`` with ``args``; its output, once it has exited 0."""
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_count_run_leaves_carried_results_out() -> None:
    line = "=== 1 failed (1 carried), 27 passed (7 carried), 2 deselected in 4.04s ==="
    assert compare._count_run(line) == 20
    assert compare._count_run("=== 3 passed, 1 xfailed in 0.1s ===") == 4


def test_resume_comparison_counts_what_each_tool_ran() -> None:
    rows = {row.tool: row for row in compare.resume_savings(0.05, lambda message: None)}
    # 60 tests, interrupted in the 31st, test 5 fails
    ours = rows["pytest-resumable"]
    assert (ours.ran, ours.remaining, ours.missing, ours.repeated, ours.code) == (30, 30, 0, 0, 1)
    # the recipes resume too, but run the failure again
    for recipe in ("JSON status file (recipe)", "SQLite row per test (recipe)"):
        row = rows[recipe]
        assert (row.ran, row.missing, row.repeated, row.code) == (31, 0, 1, 1), recipe
    # --lf runs the last failure only: the 30 tests without a result are never run
    lf = rows["--lf (cannot resume)"]
    assert (lf.ran, lf.missing) == (1, 30)
    full = rows["full re-run (no plugin)"]
    assert (full.ran, full.code) == (60, 1)


def test_cost_table_runs_every_row_on_a_tiny_suite() -> None:
    # the figures of a 40-test suite mean nothing; the script must still produce every row
    # (it runs real pytest sessions, with and without xdist, resumed and ideal)
    out = run_script(
        "cost.py", "--tests", "40", "--pairs", "1", "--only", "overhead,resume", "--concurrent"
    )
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    labels = [row.split(" | ")[0] for row in rows]
    assert labels == [
        "| measure",
        "| recording overhead, CPU (wall)",
        "| recording overhead, CPU, both sides at once (pinned)",
        "| the floor (two O_APPEND writes a test, nothing else) vs off, both at once (pinned)",
        "| recording vs the floor, both at once (pinned)",
        "| resume at 50% done vs ideal, CPU (wall)",
        "| CPU per carried test at 50%",
        "| resume at 98% done vs ideal, CPU (wall)",
        "| CPU per carried test at 98%",
    ]
    assert all(row.count(" | ") == 2 for row in rows)  # label, single, -n 2


def test_phases_accounts_every_phase_of_both_sides() -> None:
    # a 30-test suite: the figures mean nothing, but every phase must be there, the phases
    # must add up to the whole process, and the exit after atexit must be measured
    out = run_script("phases.py", "--tests", "30", "--pairs", "1")
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")]
    figures = {row[0][2:]: row[1:] for row in rows[1:]}
    assert list(figures) == [
        "pytest and plugins loaded",
        "configure, session start",
        "collection",
        "between",
        "test loop",
        "session end, atexit",
        "exit after atexit (module teardown)",
        "whole process",
    ]
    for column in (0, 1):  # off, on
        values = {k: float(v[column].split()[0]) for k, v in figures.items()}
        whole = values.pop("whole process")
        assert whole > 0.05
        assert abs(sum(values.values()) - whole) < 0.005, values


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
@pytest.mark.timeout(300)  # five pytest sessions under valgrind: >120 s on a loaded machine
def test_instruction_counts_see_the_plugin_record() -> None:
    # counts of the whole process tree under cachegrind: recording executes more instructions
    # than -p no:resumable, and the row says how many per test
    out = run_script(
        "instructions.py", "--tests", "20", "--modes", "single", "--variants", "2", "--with-clock"
    )
    row = next(line for line in out.splitlines() if line.startswith("| single |"))
    cells = [cell.strip() for cell in row.split("|")][2:-1]
    off, still, still_per_test, still_overhead, spread, on, per_test, overhead = cells
    assert float(still.rstrip(" G")) > float(off.rstrip(" G")) > 0
    assert float(on.rstrip(" G")) > float(off.rstrip(" G"))
    low, high = (float(x.strip(" %")) for x in spread.split(" to "))
    assert 0 < low <= float(still_overhead.strip(" %")) <= high, row
    for cell in (per_test, overhead, still_per_test, still_overhead):
        assert cell.startswith("+"), row


def test_floor_plugin_writes_what_recording_writes(tmp_path: Path) -> None:
    # the floor row is only a floor if its plugin makes the same writes as recording: one start
    # line before each test and one result line after it, of the real layout and size
    ids = cost.make_suite(tmp_path, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    floor = tmp_path / "floor.jsonl"
    journal = tmp_path / "j" / "journal.jsonl"
    for args, extra in (
        (["-p", "no:resumable", "-p", "bench_floor"], {"BENCH_FLOOR": str(floor)}),
        ([f"--resume-journal={journal}"], {}),
    ):
        done = subprocess.run(
            cost.pytest_command(["-p", "no:xdist", *args]),
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(tmp_path), **extra},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    written = floor.read_bytes().splitlines(keepends=True)
    kinds = [type(codec.decode(line)) for line in written]
    assert kinds == [StartRecord, ResultRecord] * len(ids)
    recorded = [
        line
        for line in journal.read_bytes().splitlines(keepends=True)
        if f'"test":"{ids[-1]}"'.encode() in line
    ]
    assert [type(codec.decode(line)) for line in recorded] == [StartRecord, ResultRecord]
    assert [len(line) for line in recorded] == [len(line) for line in written[-2:]]
