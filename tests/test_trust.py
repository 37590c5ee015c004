"""What the journal says must be what pytest said: each test here is a way the recorded result,
the run's completeness or the exit status of a resumed attempt could be untrue. Real sessions,
real signals; assertions on exactly which tests ran and on the journal's records."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import SUITE_28, SUITE_CONFTEST, Suite, interrupt, node, python_pytest
from conftest import cli as run_cli


def cli(
    *args: str | os.PathLike[str], cwd: os.PathLike[str] | str
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, timeout=30)  # a hang is a failure here


ALL_28 = [node(i) for i in range(28)]


def latest_results(suite: Suite, run: str | None = None) -> dict[str, dict[str, Any]]:
    """The latest result record of each test (of ``run``, or of any run)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in suite.records("result"):
        if run is None or rec["run"] == run:
            out[str(rec["test"])] = rec
    return out


def status_json(suite: Suite) -> dict[str, Any]:
    done = cli("status", "--json", cwd=suite.path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@contextlib.contextmanager
def blocked_session(
    suite: Suite, args: Sequence[str], block_at: str, timeout: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """A pytest session running in the background, held while ``block_at`` runs; released
    (and waited for) when the block ends. The caller reads ``proc.returncode`` after it."""
    suite.block_file.write_text("")
    env = {**os.environ, "RESUMABLE_BLOCK": block_at}
    proc = subprocess.Popen(
        python_pytest(*args),
        cwd=suite.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while block_at not in suite.ran():
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.communicate()[0].decode(errors="replace")
                raise AssertionError(f"pytest ended or hung before the blocker ran:\n{out}")
            time.sleep(0.01)
        time.sleep(0.05)
        yield proc
        suite.block_file.unlink(missing_ok=True)
        proc.output = proc.communicate(timeout=timeout)[0].decode(  # type: ignore[attr-defined]
            errors="replace"
        )
    finally:
        suite.block_file.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- 1. a failing subtest is a failed test

SUBTESTS_UNITTEST = """
import unittest

class TestSub(unittest.TestCase):
    def test_sub(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 1)
"""

SUBTESTS_FIXTURE = """
def test_sub(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert i != 1
"""

AFTER_SUBTESTS = """
import pytest

@pytest.mark.parametrize("i", range(4))
def test_later(i):
    pass
"""

SUBTEST_KINDS = [
    pytest.param(SUBTESTS_UNITTEST, "test_sub.py::TestSub::test_sub", id="unittest-subTest"),
    pytest.param(
        SUBTESTS_FIXTURE,
        "test_sub.py::test_sub",
        id="subtests-fixture",
        marks=pytest.mark.skipif(
            int(pytest.__version__.split(".")[0]) < 9, reason="pytest 9's subtests fixture"
        ),
    ),
]


@pytest.mark.parametrize(("source", "nodeid"), SUBTEST_KINDS)
def test_failing_subtest_is_failed_and_stays_red_when_resumed(
    suite: Suite, pytester: pytest.Pytester, source: str, nodeid: str
) -> None:
    pytester.makepyfile(test_sub=source, test_zlater=AFTER_SUBTESTS)
    first = interrupt(
        suite, ["-p", "no:xdist"], block_at="test_zlater.py::test_later[2]", sig=signal.SIGKILL
    )
    assert first.returncode == -signal.SIGKILL
    assert suite.take_ran()[0] == nodeid
    assert latest_results(suite)[nodeid]["outcome"] == "failed", suite.records("result")

    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert suite.take_ran() == ["test_zlater.py::test_later[2]", "test_zlater.py::test_later[3]"]
    # like an uninterrupted run: the carried failed subtest keeps the run red
    uninterrupted = pytester.runpytest_subprocess("-p", "no:xdist", "--resume-new")
    assert uninterrupted.ret == 1
    assert resumed.ret == uninterrupted.ret, resumed.stdout.str()
    assert latest_results(suite)[nodeid]["outcome"] == "failed"


@pytest.mark.parametrize(("source", "nodeid"), SUBTEST_KINDS)
def test_a_suspect_with_a_failing_subtest_is_reported_as_uninterrupted(
    suite: Suite, pytester: pytest.Pytester, source: str, nodeid: str
) -> None:
    """Killed while the test with subtests runs, it runs next in a child: its reports, and
    the test failed for its subtest, as an uninterrupted run shows them (pytest 9 fails the
    test in ``pytest_report_teststatus``, from a count the child kept)."""
    pytester.makepyfile(test_sub=source, test_zlater=AFTER_SUBTESTS)
    first = interrupt(suite, ["-p", "no:xdist"], block_at=nodeid, sig=signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist", "-rA")
    resumed.stdout.fnmatch_lines(["*1 was in flight: * (1 first run in a child process)*"])
    uninterrupted = pytester.runpytest_subprocess("-p", "no:xdist", "--resume-new", "-rA")

    def about_the_test(result: pytest.RunResult) -> list[str]:
        lines = result.stdout.lines
        summary = lines.index(next(line for line in lines if "short test summary" in line))
        counts = next(line for line in lines[summary:] if line.startswith("====="))
        return [line for line in lines[summary:] if nodeid in line] + [counts.split(" in ")[0]]

    assert about_the_test(resumed) == about_the_test(uninterrupted)
    assert resumed.ret == uninterrupted.ret == 1
    assert latest_results(suite)[nodeid]["outcome"] == "failed"


@pytest.mark.parametrize(("source", "nodeid"), SUBTEST_KINDS)
def test_failing_subtest_is_failed_under_xdist(
    suite: Suite, pytester: pytest.Pytester, source: str, nodeid: str
) -> None:
    pytester.makepyfile(test_sub=source, test_zlater=AFTER_SUBTESTS)
    result = pytester.runpytest_subprocess("-n", "2")
    assert result.ret == 1, result.stdout.str()
    assert latest_results(suite)[nodeid]["outcome"] == "failed", suite.records("result")
    [end] = suite.records("end")
    assert end["complete"] is True
    result.stdout.fnmatch_lines(["resumable: run * complete after 1 attempt (*1 failed*)"])


# -- 2. --dist each: a test that failed on any worker has failed

DIST_EACH = """
import os

def test_everywhere():
    pass

def test_only_on_gw1():
    assert os.environ["PYTEST_XDIST_WORKER"] != "gw1", "fails on gw1"

def test_also_everywhere():
    pass
"""


def test_dist_each_failure_on_one_worker_is_failed(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_each=DIST_EACH)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "each")
    assert result.ret == 1, result.stdout.str()
    results = latest_results(suite)
    assert results["test_each.py::test_only_on_gw1"]["outcome"] == "failed", results
    assert results["test_each.py::test_everywhere"]["outcome"] == "passed"
    for record in results.values():  # one worker's reports, never the two workers' mixed
        whens = [report["when"] for report in record.get("reports") or []]
        assert whens in ([], ["setup", "call", "teardown"]), record
    assert result.outlines[-1].startswith("resumable: run "), result.outlines[-3:]
    assert "1 failed" in result.outlines[-1], result.outlines[-1]
    [run] = status_json(suite)["runs"]
    assert run["failed"] >= 1, run
    assert run["complete"] is True


DIST_EACH_SLOW_FAILURE = """
import os, time

def test_dep():
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw1":  # gw1 fails it, after gw0 passed it
        deadline = time.monotonic() + 30
        while os.path.exists(os.environ["RESUMABLE_BLOCK_FILE"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 0, "fails on gw1"

def test_last():
    pass
"""


def test_an_interrupted_dist_each_attempt_never_records_one_workers_pass(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """Under ``--dist each`` a pass is a test's result only once every worker passed it: an
    attempt killed while gw1 still runs a test gw0 passed must not record that pass (a later
    attempt would carry it, and the run would end green though gw1 fails it)."""
    pytester.makepyfile(test_each=DIST_EACH_SLOW_FAILURE)
    # gw0 ran both tests, gw1 is inside test_dep: 3 lines in the side log
    args = ["-n", "2", "--dist", "each"]
    interrupt(suite, args, block_at="-", sig=signal.SIGKILL, group=True, wait_for=3)
    assert sorted(suite.take_ran()) == sorted(
        ["test_each.py::test_dep", "test_each.py::test_dep", "test_each.py::test_last"]
    )
    assert latest_results(suite) == {}  # gw0's passes wait for gw1's results
    # a later attempt without --dist each has nothing to carry: both tests run again
    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist", "-rA")
    assert "carried" not in resumed.stdout.str()
    assert sorted(suite.take_ran()) == ["test_each.py::test_dep", "test_each.py::test_last"]


DIST_EACH_RERUNS = """
import os, pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER")
SEEN = set()

@pytest.mark.flaky(reruns=1)
@pytest.mark.parametrize("i", range(200))
def test_i(i):
    if WORKER == "gw0":  # fails once, then passes on its rerun
        if i not in SEEN:
            SEEN.add(i)
            assert 0, "first try on gw0"
        return
    assert 0, "always fails on gw1"

if WORKER == "gw0":
    def test_only_on_gw0():
        pass

if WORKER == "gw1":  # whichever worker reports its collection first, one test is not in it
    def test_only_on_gw1():
        pass
"""


def test_dist_each_with_reruns_and_unequal_collections(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """``--dist each`` with pytest-rerunfailures: one worker's rerun never swallows the other
    worker's reports (every test fails on gw1: every result is ``failed``); a test only one
    worker collected (xdist allows it) gets its result from that worker and counts."""
    pytester.makepyfile(test_each=DIST_EACH_RERUNS)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "each", "-p", "no:randomly")
    assert result.ret == 1
    results = latest_results(suite)
    outcomes = {t: r["outcome"] for t, r in results.items() if "test_i[" in t}
    assert outcomes == {f"test_each.py::test_i[{i}]": "failed" for i in range(200)}
    assert results["test_each.py::test_only_on_gw0"]["outcome"] == "passed"
    assert results["test_each.py::test_only_on_gw1"]["outcome"] == "passed"
    result.stdout.fnmatch_lines(
        ["resumable: run * complete after 1 attempt (2 passed, 200 failed)"]
    )


# -- 3. options under which no test runs record nothing


@pytest.mark.parametrize("option", ["--setup-plan", "--setup-only", "--fixtures", "--collect-only"])
def test_options_that_run_no_test_record_nothing(
    suite: Suite, pytester: pytest.Pytester, option: str
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    for extra in ([], ["--resume"]):
        result = pytester.runpytest_subprocess(option, "-p", "no:xdist", *extra)
        assert result.ret == 0, result.stdout.str()
        ran = suite.take_ran()
        if option != "--setup-only":  # --setup-only runs the fixtures (the side log), no test
            assert ran == []
        if not suite.journal.exists():
            continue
        assert suite.records("result") == []
        assert [e for e in suite.records("end") if e["complete"] is True] == []
        assert "complete after" not in result.stdout.str()


# -- 4. a run with collection errors is not complete

BAD = """
import nonexistent_module

def test_b1():
    pass

def test_b2():
    pass
"""

GOOD = """
def test_b1():
    pass

def test_b2():
    pass
"""


@pytest.mark.parametrize("mode", [["-p", "no:xdist"], ["-n", "2"]], ids=["single", "xdist"])
def test_collection_error_leaves_the_run_incomplete_and_resume_runs_the_fixed_file(
    suite: Suite, pytester: pytest.Pytester, mode: list[str]
) -> None:
    pytester.makepyfile(test_suite=SUITE_28, test_bad=BAD)
    first = pytester.runpytest_subprocess(*mode, "--continue-on-collection-errors")
    assert first.ret == 1, first.stdout.str()
    assert sorted(suite.take_ran()) == sorted(ALL_28)
    [end] = suite.records("end")
    assert end["complete"] is False, end
    assert end.get("collection_errors") == 1, end
    last = first.outlines[-1]
    assert last.startswith("resumable: run "), first.outlines[-3:]
    assert "incomplete" in last, last
    assert "1 collection error" in last, last
    [run] = suite.records("run")

    pytester.makepyfile(test_bad=GOOD)
    resumed = pytester.runpytest_subprocess("--resume", *mode)
    assert sorted(suite.take_ran()) == ["test_bad.py::test_b1", "test_bad.py::test_b2"]
    assert resumed.ret == 1  # test_n[5], carried
    assert suite.records("run") == [run]  # the same run, continued
    assert {a["run"] for a in suite.records("attempt")} == {run["run"]}
    assert resumed.outlines[-1].startswith(f"resumable: run {run['run']} complete after 2 ")


# -- 5. a run being continued is not continued by a second session at the same time


def test_second_session_does_not_continue_a_run_held_by_a_live_attempt(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(3), sig=signal.SIGKILL)
    assert suite.take_ran() == ALL_28[:4]
    with blocked_session(suite, ["--resume", "-p", "no:xdist"], node(10)) as a:
        before = suite.ran()
        b = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
        assert suite.ran() == before  # B ran no test
        assert b.ret == 4, b.stdout.str() + b.stderr.str()
        lines = [
            line
            for line in b.outlines + b.errlines
            if "is being continued right now by pid" in line
        ]
        assert len(lines) == 1, b.outlines + b.errlines
        attempts = suite.records("attempt")
    out = a.output  # type: ignore[attr-defined]
    assert a.returncode == 1, out
    assert len(attempts) == 2  # the killed one and A; B added none
    assert sorted(suite.take_ran()) == sorted(ALL_28[3:])
    assert [r for r in suite.records("result") if r["outcome"] == "crashed"] == []
    assert sorted(latest_results(suite)) == sorted(ALL_28)
    assert "complete after 2 attempts" in out.splitlines()[-1], out


# -- 6. blame needs proof


def test_external_kills_never_make_the_test_in_flight_crashed(
    suite: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(8), sig=signal.SIGKILL)
    assert suite.take_ran() == ALL_28[:9]
    # the test in flight now runs in a child process: kill the whole group from outside, as a
    # CI timeout does (the parent alone would leave the child holding the output pipe)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    second = interrupt(
        suite,
        ["--resume", "-p", "no:xdist"],
        block_at=node(8),
        sig=signal.SIGKILL,
        group=True,
    )
    assert second.returncode == -signal.SIGKILL
    assert suite.take_ran() == [node(8)]
    # the child's reports go through an unnamed file: nothing is left behind
    assert list(temp.glob("pytest-resumable-child-*")) == []
    monkeypatch.delenv("TMPDIR")

    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert suite.take_ran() == ALL_28[8:]
    assert resumed.ret == 1, resumed.stdout.str()  # test_n[5] only
    assert [r for r in suite.records("result") if r["outcome"] == "crashed"] == []
    results = latest_results(suite)
    assert results[node(8)]["outcome"] == "passed"
    assert [t for t, r in results.items() if r["outcome"] != "passed"] == [node(5)]
    resumed.stdout.fnmatch_lines(
        ["resumable: run * complete after 3 attempts (27 passed, 1 failed)"]
    )


KILLER = """
import os, signal

def test_a_before():
    pass

def test_b_kills_its_process():
    os.kill(os.getpid(), signal.SIGKILL)

def test_c_after():
    pass

def test_d_fails():
    assert False
"""


def test_a_test_that_kills_its_process_is_crashed_and_resume_does_not_loop(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_killer=KILLER)
    killer = "test_killer.py::test_b_kills_its_process"
    first = pytester.runpytest_subprocess("-p", "no:xdist")
    assert first.ret == -signal.SIGKILL, first.stdout.str()
    assert suite.take_ran() == ["test_killer.py::test_a_before", killer]

    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert resumed.ret == 1, resumed.stdout.str()
    assert suite.take_ran() == [
        killer,
        "test_killer.py::test_c_after",
        "test_killer.py::test_d_fails",
    ]
    crashed = latest_results(suite)[killer]
    assert crashed["outcome"] == "crashed", crashed
    assert "signal 9" in str(crashed.get("message")), crashed
    assert resumed.outlines[-1].startswith("resumable: run "), resumed.outlines[-3:]
    assert "complete after 2 attempts" in resumed.outlines[-1]
    [run] = status_json(suite)["runs"]
    assert run["complete"] is True, run
    assert run["crashed"] == 1


# -- 7. a forked child that returns into pytest writes nothing

FORKER = """
import os

def test_a():
    pass

def test_b_forks():
    pid = os.fork()
    if pid == 0:
        return  # the child goes on with the session, as if it were pytest
    os.waitpid(pid, 0)

def test_c():
    pass

def test_d():
    pass
"""


def test_forked_child_returning_into_pytest_does_not_write(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_fork=FORKER)
    # a tiny compaction threshold: the session end compacts; the child's end must not
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-o", "resume_compact_bytes=1")
    # the child's session ends too (its terminal prints on the same output); only the
    # parent ends the attempt and says the last line
    last_lines = [line for line in result.outlines if line.startswith("resumable: run ")]
    assert len(last_lines) == 1, result.outlines
    [attempt] = suite.records("attempt")
    ends = [e for e in suite.records("end") if e["attempt"] == attempt["attempt"]]
    assert len(ends) == 1, ends
    tests = Counter(r["test"] for r in suite.records("result"))
    assert tests == Counter(
        f"test_fork.py::{name}" for name in ("test_a", "test_b_forks", "test_c", "test_d")
    )
    assert ends[0]["complete"] is True


GRANDCHILD = """
import os

def test_a_daemon_style_double_fork():
    # the child opens pipes (one gets the number of a descriptor the fork handler closed: the
    # lowest free numbers are handed out) and forks again; the grandchild writes to them all
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            pipes = [os.pipe() for _ in range(16)]
            grandchild = os.fork()
            if grandchild == 0:
                code = 3
                try:
                    for r, w in pipes:
                        os.fstat(r)  # EBADF if the fork handler closed it
                        os.write(w, b"ok")
                    code = 0
                finally:
                    os._exit(code)
            for _, w in pipes:
                os.close(w)
            _, code = os.waitpid(grandchild, 0)
            read = all(os.read(r, 2) == b"ok" for r, _ in pipes)
            status = os.waitstatus_to_exitcode(code) or (0 if read else 2)
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
"""


def test_a_forked_childs_own_fork_leaves_the_childs_descriptors_alone(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_grandchild=GRANDCHILD)
    off = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:resumable")
    off.assert_outcomes(passed=1)
    on = pytester.runpytest_subprocess("-p", "no:xdist")
    on.assert_outcomes(passed=1)
    [result] = suite.records("result")
    assert result["outcome"] == "passed"


def test_the_fork_handler_holds_no_module_of_the_plugin() -> None:
    """The interpreter keeps a fork handler past the teardown of every module at exit. One
    with this package's globals kept their ``__loader__``, pytest's assertion-rewriting hook,
    and through it the config and the whole session alive: ~0.35 s more CPU to exit after
    10,000 tests (measured). The handler that runs in the child is the test above's."""
    from pytest_resumable.journal import writer

    assert set(writer.FORK_HANDLER.__globals__) == {"__builtins__"}
    assert writer.FORK_HANDLER.__defaults__ == (writer._WRITERS, writer._LOCKS)


# -- 8. -k narrowing an unfinished run


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=lambda s: s.name)
def test_k_narrowing_an_unfinished_run_says_what_lies_outside(
    suite: Suite, pytester: pytest.Pytester, sig: signal.Signals
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(8), sig=sig)
    assert suite.take_ran() == ALL_28[:9]
    # deselects test_n[2] (has a result) and 12, 20..27 (no result yet)
    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist", "-k", "test_n and not 2")
    wanted = [node(i) for i in range(28) if "2" not in str(i)]
    assert suite.take_ran() == [t for t in wanted if t not in ALL_28[:8]]
    assert resumed.ret == 1
    last = resumed.outlines[-1]
    assert last.startswith("resumable: run "), resumed.outlines[-3:]
    assert "9 tests of the run lie outside this selection" in last, last
    [run] = status_json(suite)["runs"]
    assert run["selected"] is not None
    assert run["results"] <= run["selected"], run


# -- 9. SIGTERM after the test loop ended

FINISH_HOOK = """

def pytest_sessionfinish(session):
    path = os.environ.get("RESUMABLE_FINISH_FILE")
    if path:
        open(path, "w").close()
        deadline = time.monotonic() + 30
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
"""


def test_sigterm_during_session_finish_is_no_traceback(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(SUITE_CONFTEST + FINISH_HOOK)
    pytester.makepyfile(test_suite=SUITE_28)
    finish = pytester.path / "finishing"
    env = {**os.environ, "RESUMABLE_FINISH_FILE": str(finish)}
    proc = subprocess.Popen(
        python_pytest("-p", "no:xdist"),
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not finish.exists():
            assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "the session never reached sessionfinish"
            time.sleep(0.01)
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        finish.unlink(missing_ok=True)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    finally:
        finish.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in out, out
    assert len(latest_results(suite)) == 28  # every result was in the journal already
    # SPEC §4.8: the plugin handles SIGTERM only while tests run, then restores the default:
    # a SIGTERM after the loop ends the process as SIGTERM does, without a traceback, and
    # every result is in the journal already (a later --resume has nothing to run)
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, out)


WARNS = """
import warnings

def test_warns():
    warnings.warn("deprecated thing", DeprecationWarning)

def test_plain():
    pass
"""


def test_space_form_journal_outside_the_project_carries_nothing_into_another_rootdir(
    suite: Suite, pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue #14: once the journal exists, pytest takes `--resume-journal PATH` (with a space)
    for a test path when it picks rootdir; rootdir moves and the project's ini (here
    `filterwarnings = error`, which makes test_warns fail) is not read. The attempt must not
    continue the run it cannot be sure of, and must say what to type."""
    pytester.makeini("[pytest]\naddopts = -p no:randomly\nfilterwarnings = error\n")
    pytester.makepyfile(test_warns=WARNS)
    outside = tmp_path_factory.mktemp("elsewhere") / "journal.jsonl"
    reference = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:resumable")
    assert reference.ret == 1  # test_warns fails under the project's ini
    suite.take_ran()
    first = interrupt(
        suite,
        ["-p", "no:xdist", f"--resume-journal={outside}"],
        block_at="test_warns.py::test_plain",
        sig=signal.SIGKILL,
    )
    assert first.returncode == -signal.SIGKILL, first.output
    assert outside.exists(), first.output
    [run] = [r for r in records_of(outside) if r["type"] == "run"]
    assert run["rootdir"] == str(pytester.path)
    # the space form, now that the file exists: pytest sees a second "test path"
    second = pytester.runpytest_subprocess("-n", "2", "--resume", "--resume-journal", str(outside))
    out = second.stdout.str()
    # pytest (controller under -n 2) moved rootdir: the plugin says so, carries nothing
    assert "rootdir: " + str(pytester.path) not in out
    second.stdout.fnmatch_lines(
        [
            "resumable: pytest may have taken the journal * for a test path*--resume-journal=PATH*",
            f"resumable: run {run['run']} was started with rootdir {pytester.path}*"
            "its results are not carried*--resume-journal=PATH*",
        ]
    )
    assert "resuming run" not in out  # nothing carried across the two places
    # the `=` form continues the original run, and ends as red as the reference
    suite.take_ran()
    third = pytester.runpytest_subprocess("-n", "2", "--resume", f"--resume-journal={outside}")
    third.stdout.fnmatch_lines([f"resumable: resuming run {run['run']} *"])
    assert third.ret == reference.ret == 1


def records_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.startswith(b"{")]


def test_the_last_line_counts_each_copy_of_a_duplicate(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """``--keep-duplicates`` runs a test once per copy; pytest's summary counts each copy, and
    so does the last line (the journal holds one result per test id)."""
    pytester.makepyfile(test_dup="def test_ok(): pass\ndef test_bad(): assert False\n")
    result = pytester.runpytest_subprocess("test_dup.py", "test_dup.py", "--keep-duplicates")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*2 failed, 2 passed*", "resumable: run * complete after 1 attempt (2 passed, 2 failed)"]
    )
