"""compact: one record per test per run, atomic under kills, safe while sessions append
(issue #6), and the automatic compaction at session end."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import SUITE_28, Suite, interrupt, lock_holder, node
from pytest_resumable.history import read_durations, read_history
from pytest_resumable.journal.errors import JournalLockTimeout, JournalVersionError
from pytest_resumable.journal.records import (
    AttemptRecord,
    EndRecord,
    ResultRecord,
    RunRecord,
    StartRecord,
)
from pytest_resumable.journal.rewrite import compact, leftover_temps
from pytest_resumable.journal.writer import JournalWriter

ALL_28 = [node(i) for i in range(28)]


def build(path: Path, runs: int = 5, tests: int = 20, repeats: int = 2) -> None:
    """``runs`` complete runs of ``repeats`` attempts each, then one unfinished run: half its
    tests passed in attempt 1 (interrupted), attempt 2 died while test_10 ran."""
    w = JournalWriter(path, fsync="never")
    t = 1000.0
    for r in range(runs):
        run = f"run{r}"
        w.append(RunRecord(run, t + r))
        for attempt in range(1, repeats + 1):
            w.append(AttemptRecord(run, attempt, t + r))
            for i in range(tests):
                w.append(StartRecord(run, attempt, f"t.py::test_{i}"))
                w.append(
                    ResultRecord(run, attempt, f"t.py::test_{i}", "passed", 0.001 * (i + r + 1))
                )
            w.append(EndRecord(run, attempt, t + r, 0, tests, tests, attempt == repeats))
    run = f"run{runs}"
    w.append(RunRecord(run, t + runs))
    w.append(AttemptRecord(run, 1, t + runs))
    for i in range(tests // 2):
        w.append(StartRecord(run, 1, f"t.py::test_{i}"))
        w.append(ResultRecord(run, 1, f"t.py::test_{i}", "failed", 0.5, message="boom"))
    w.append(EndRecord(run, 1, t + runs, 2, tests, tests // 2, False))
    w.append(AttemptRecord(run, 2, t + runs))
    w.append(StartRecord(run, 2, f"t.py::test_{tests // 2}"))
    w.close()


def older_and_newer(path: Path) -> Path:
    """Two unfinished runs, "older" and "newer": test_a passed in each, test_b in flight."""
    w = JournalWriter(path, fsync="never")
    for run, t in (("older", 1.0), ("newer", 2.0)):
        w.append(RunRecord(run, t))
        w.append(AttemptRecord(run, 1, t))
        w.append(StartRecord(run, 1, "t.py::test_a"))
        w.append(ResultRecord(run, 1, "t.py::test_a", "passed", 0.1))
        w.append(StartRecord(run, 1, "t.py::test_b"))
    w.close()
    return path


def snapshot(path: Path) -> dict[str, tuple[dict[str, str], set[str], bool]]:
    states = read_history(path).runs
    return {
        run: (
            {t: r.outcome for t, r in state.results.items()},
            # in flight and without a result: what a resumed attempt runs again and names
            state.in_flight(max(state.attempts)) - set(state.results),
            state.complete,
        )
        for run, state in states.items()
    }


def test_compact_keeps_one_result_per_test_and_what_resuming_needs(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    build(path)
    before = snapshot(path)
    durations_before = read_durations(path)
    result = compact(path, keep_runs=2)
    assert result.after < result.before / 2
    after = snapshot(path)
    # the newest 2 runs are kept as they were (run5 is unfinished, with a test in flight)
    assert set(after) == {"run4", "run5"}
    for run in after:
        assert after[run] == before[run]
    assert after["run5"][1] == {"t.py::test_10"}
    assert read_history(path).find_resumable(None, None) is not None
    # one record per test per run
    lines = [json.loads(x) for x in path.read_bytes().splitlines()]
    keys = Counter((x["run"], x["test"]) for x in lines if x["type"] == "result")
    assert set(keys.values()) == {1}
    # dropped runs live on as durations
    assert read_durations(path) == durations_before
    assert [x["type"] for x in lines[:2]] == ["header", "durations"]
    # compacting again changes nothing
    again = compact(path, keep_runs=2)
    assert again.after == again.before or again.after <= again.before + 10


def test_compaction_keeps_every_shard_of_a_kept_ci_run(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    w = JournalWriter(path, fsync="never")
    for k in (1, 2, 3):
        run = f"s{k}"
        w.append(RunRecord(run, float(k), "ci-1", f"{k}/3"))
        w.append(AttemptRecord(run, 1, float(k)))
        w.append(ResultRecord(run, 1, f"t::{k}", "passed", 0.1))
        w.append(EndRecord(run, 1, float(k), 0, 1, 1, True))
    w.close()
    compact(path, keep_runs=1)
    assert set(read_history(path).runs) == {"s1", "s2", "s3"}


def test_a_resumed_session_after_compaction_runs_exactly_the_rest(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    assert pytester.runpytest_subprocess("-p", "no:xdist").ret == 1  # a complete run to drop
    suite.take_ran()
    interrupt(suite, ["-p", "no:xdist"], block_at=node(12), sig=signal.SIGKILL)
    suite.take_ran()
    out = subprocess.run(
        [sys.executable, "-m", "pytest_resumable", "compact", "--keep-runs", "0"],
        cwd=suite.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert " bytes; 1 runs kept, 1 dropped" in out.stdout
    resumed = pytester.runpytest_subprocess("-p", "no:xdist", "--resume")
    assert suite.take_ran() == ALL_28[12:]
    resumed.stdout.fnmatch_lines(["*12/28 have results*1 was in flight*"])


STEPS = ["read", "temp-written", "before-replace", "after-replace"]


@pytest.mark.parametrize("step", STEPS)
def test_compaction_killed_at_each_step_leaves_the_old_or_the_new_journal(
    tmp_path: Path, step: str
) -> None:
    path = tmp_path / "journal.jsonl"
    build(path)
    old = path.read_bytes()
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(old)
    compact(reference, keep_runs=2)
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from pytest_resumable.journal.rewrite import compact\n"
        "def kill(s):\n"
        "    if s == sys.argv[2]:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "compact(Path(sys.argv[1]), keep_runs=2, on_step=kill)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path), step], check=False)
    assert proc.returncode == -signal.SIGKILL
    now = path.read_bytes()
    if step in ("read", "temp-written", "before-replace"):
        assert now == old
    else:
        assert snapshot(path) == snapshot(reference)
    # readers and writers ignore a leftover temp file; the next compaction removes it
    temps = leftover_temps(path)
    assert len(temps) == (1 if step in ("temp-written", "before-replace") else 0)
    assert snapshot(path)["run5"] == snapshot(reference)["run5"]
    result = compact(path, keep_runs=2)
    assert leftover_temps(path) == []
    assert result.cleaned == [t.name for t in temps]
    assert snapshot(path) == snapshot(reference)


def test_newer_version_is_never_compacted(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    content = b'{"type":"header","format":"pytest-resumable","version":99}\n{"type":"x"}\n'
    path.write_bytes(content)
    with pytest.raises(JournalVersionError, match="version 99"):
        compact(path)
    assert path.read_bytes() == content


def test_busy_lock_with_zero_timeout_gives_up_at_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    build(path, runs=1)
    with lock_holder(path):
        start = time.monotonic()
        with pytest.raises(JournalLockTimeout):
            compact(path, lock_timeout=0)
        assert time.monotonic() - start < 1


STRESS = Path(__file__).parent.parent / "benchmarks" / "stress_compact.py"


def test_sessions_appending_during_compactions_lose_and_double_nothing() -> None:
    """benchmarks/stress_compact.py, small: 3 appenders, >= 20 compactions."""
    args = ["--appenders", "3", "--records", "1500", "--compactions", "20"]
    out = subprocess.run(
        [sys.executable, str(STRESS), *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "lost 0, doubled 0, unexpected 0, appenders failed 0" in out.stdout


def test_automatic_compaction_at_session_end(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    pytester.makeini("[pytest]\naddopts = -p no:randomly\nresume_compact_bytes = 20000\n")
    for _ in range(4):
        result = pytester.runpytest_subprocess("-p", "no:xdist")
    size = suite.journal.stat().st_size
    result.stdout.fnmatch_lines(["resumable: journal compacted: * -> * bytes*"])
    assert size < 40000
    runs = read_history(suite.journal).runs
    assert len(runs) <= 4
    durations = read_durations(suite.journal)
    assert set(durations) == set(ALL_28)


def test_deleting_the_lock_file_during_a_lease_loses_nothing_to_compaction(tmp_path: Path) -> None:
    """Issue #15: someone deletes <journal>.lock while a session holds its lease; `compact`
    then locks a new lock file. Writers and rewrites also lock the journal file itself, so
    the compaction waits for the writer and nothing it appends is lost (900 of 2,000 were)."""
    import os
    import threading

    path = tmp_path / "j.jsonl"
    writer = JournalWriter(path, fsync="never")
    writer.append(RunRecord("r1", 1.0, "r1"))
    writer.append(AttemptRecord("r1", 1, 1.0))
    total = 1500

    def append() -> None:
        for i in range(total):
            writer.append(ResultRecord("r1", 1, f"t::{i}", "passed", 0.001))
            time.sleep(0.0003)

    thread = threading.Thread(target=append)
    thread.start()
    try:
        for _ in range(6):
            time.sleep(0.05)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}.lock")
            compact(path, keep_runs=100)
    finally:
        thread.join()
        writer.close()
    assert set(read_history(path).runs["r1"].results) == {f"t::{i}" for i in range(total)}


def test_compaction_keeps_what_was_in_flight_in_the_newest_attempt(tmp_path: Path) -> None:
    """Issue #15 (found by the journal stress): compaction kept the first start of a test, so
    a test in flight in the newest attempt looked finished and a test that kills its process
    ran in the main process again, forever."""
    path = tmp_path / "j.jsonl"
    w = JournalWriter(path, fsync="never")
    for record in (
        RunRecord("r", 1.0),
        AttemptRecord("r", 1, 1.0),
        StartRecord("r", 1, "t::killer"),
        AttemptRecord("r", 2, 2.0),
        StartRecord("r", 2, "t::ok"),
        ResultRecord("r", 2, "t::ok", "failed", 0.1),
        StartRecord("r", 2, "t::killer"),
        AttemptRecord("r", 3, 3.0),
        StartRecord("r", 3, "t::ok"),  # retried (--resume-retry-failed), in flight
        StartRecord("r", 3, "t::killer"),
    ):
        w.append(record)  # type: ignore[arg-type]
    w.close()
    before = read_history(path).runs["r"]
    compact(path)
    after = read_history(path).runs["r"]
    assert after.in_flight(3) - set(after.results) == before.in_flight(3) - set(before.results)
    assert after.in_flight(3) == {"t::killer", "t::ok"}


def test_compaction_keeps_an_older_run_a_live_session_is_recording(tmp_path: Path) -> None:
    """Two sessions without a --resume-id record one run each on one journal (one identity):
    `compact --keep-runs 1` kept only the newest and dropped the older run while its session
    was still writing it (its results before the compaction were lost). A run whose attempt
    lock a live process holds is kept; once that process is gone, the old rule applies."""
    path = older_and_newer(tmp_path / "journal.jsonl")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from pathlib import Path\n"
            "from pytest_resumable.journal.writer import AttemptLock\n"
            f"lock = AttemptLock(Path({str(path)!r}), 'older')\n"
            "assert lock.take() is None\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        compact(path, keep_runs=1)
        history = read_history(path)
        assert set(history.runs) == {"older", "newer"}
        assert set(history.runs["older"].results) == {"t.py::test_a"}
    finally:
        assert holder.stdin is not None
        assert holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    compact(path, keep_runs=1)  # the session is gone: the older run can no longer be resumed
    assert set(read_history(path).runs) == {"newer"}


def test_compaction_keeps_the_results_of_a_run_whose_id_has_an_escape(tmp_path: Path) -> None:
    """Found by a fresh-eyes test: a hand-made run id with a backslash (JSON-escaped in the
    line) lost every result to compaction, whose fast path took the escaped bytes for the id."""
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path)
    for record in [
        RunRecord("a\\b", 1.0),
        AttemptRecord("a\\b", 1, 1.0),
        StartRecord("a\\b", 1, "t.py::x"),
        ResultRecord("a\\b", 1, "t.py::x", "passed", 0.1),
        StartRecord("a\\b", 1, "t.py::y"),
    ]:
        writer.append(record)
    writer.close()
    compact(path, keep_runs=1)
    state = read_history(path).runs["a\\b"]
    assert set(state.results) == {"t.py::x"}
    assert state.in_flight(1) == {"t.py::y"}


def test_an_unusable_attempt_lock_path_keeps_the_run_and_compaction_goes_on(
    tmp_path: Path,
) -> None:
    """A directory (or symlink) where an old unfinished run's attempt lock would be: trying
    that lock failed with 'Is a directory', which aborted every compaction of the journal."""
    path = older_and_newer(tmp_path / "journal.jsonl")
    (tmp_path / "journal.jsonl.run-older.lock").mkdir()
    compact(path, keep_runs=1)
    assert set(read_history(path).runs) == {"older", "newer"}  # it may be alive: kept
