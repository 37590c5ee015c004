"""Real xdist sessions (-n 2, every --dist mode) interrupted from outside and resumed."""

from __future__ import annotations

import inspect
import json
import re
import signal
from collections import Counter

import pytest
from _pytest.nodes import Node

from conftest import SUITE_CONFTEST, Suite, interrupt

# Two modules, classes and xdist groups, so every --dist mode spreads work over both workers.
MODULE = """
import pytest

@pytest.mark.parametrize("i", range(12))
def test_f(i):
    assert i != 7 or "{name}" != "a", "seven fails in module a"

class TestC:
    @pytest.mark.xdist_group("g{name}")
    @pytest.mark.parametrize("i", range(6))
    def test_m(self, i):
        pass
"""

# the worker running test_t[4] dies
CRASH_AT_4 = """
import ctypes, os, signal, pytest

@pytest.mark.parametrize("i", range(10))
def test_t(i):
    if i == 4:
        os._exit(1)
"""

DIST_MODES = ["load", "loadscope", "loadfile", "loadgroup", "worksteal"]


def group_suffix(dist: str, group: str) -> str:
    # Under --dist loadgroup, xdist's worker appends "@group" to the node ids of grouped tests
    # by assigning Node._nodeid; pytest releases that build the node id otherwise (9.x) ignore
    # it. The journal records the ids pytest reports, so the test expects what this pytest does.
    applies = "_nodeid" in inspect.getsource(Node.nodeid.fget)  # type: ignore[attr-defined]
    return f"@{group}" if dist == "loadgroup" and applies else ""


def make_suite(pytester: pytest.Pytester, dist: str = "load") -> list[str]:
    pytester.makepyfile(test_a=MODULE.format(name="a"), test_b=MODULE.format(name="b"))
    ids = []
    for name in "ab":
        suffix = group_suffix(dist, f"g{name}")
        ids += [f"test_{name}.py::test_f[{i}]" for i in range(12)]
        ids += [f"test_{name}.py::TestC::test_m[{i}]{suffix}" for i in range(6)]
    return ids


def blockers(ids: list[str]) -> list[str]:
    # everything but the first few tests of each module blocks: each worker stops at its
    # first blocked test, whatever the scheduler handed it
    return [t for t in ids if not t.endswith(("[0]", "[1]", "[2]"))]


def results_of(suite: Suite) -> list[str]:
    return [str(r["test"]) for r in suite.records("result")]


@pytest.mark.parametrize("dist", DIST_MODES)
@pytest.mark.parametrize(
    ("sig", "group"),
    [
        (signal.SIGKILL, False),
        (signal.SIGINT, False),
        (signal.SIGINT, True),
        (signal.SIGTERM, False),
    ],
    ids=["SIGKILL-controller", "SIGINT-controller", "SIGINT-group", "SIGTERM-controller"],
)
def test_interrupted_xdist_run_resumes_exactly(
    suite: Suite, pytester: pytest.Pytester, dist: str, sig: signal.Signals, group: bool
) -> None:
    ids = make_suite(pytester, dist)
    args = ["-n", "2", "--dist", dist]
    first = interrupt(suite, args, block_at=blockers(ids), sig=sig, group=group, wait_for=4)
    assert "INTERNALERROR" not in first.output
    ran_first = suite.take_ran()
    recorded = results_of(suite)
    assert len(recorded) == len(set(recorded))
    in_flight = set(ran_first) - set(recorded)
    assert 1 <= len(in_flight) <= 2  # one per busy worker
    assert 1 <= len(recorded) < len(ids)

    resumed = pytester.runpytest_subprocess("--resume", *args)
    assert "INTERNALERROR" not in resumed.stdout.str()
    ran_second = suite.take_ran()
    # exactly the tests without a result, each once
    assert Counter(ran_second) == Counter(t for t in ids if t not in recorded)
    executions = Counter(ran_first) + Counter(ran_second)
    assert set(executions) == set(ids)
    assert {t for t, n in executions.items() if n > 1} == in_flight
    assert Counter(results_of(suite)) == Counter(ids)  # one result per test in the journal
    assert resumed.ret == 1  # test_a.py::test_f[7] fails, whichever attempt ran it
    resumed.stdout.fnmatch_lines(
        [
            "resumable: resuming run * (attempt 2): *36 have results*",
            "resumable: run * complete after 2 attempts (35 passed, 1 failed)",
        ]
    )


@pytest.mark.parametrize(
    "how",
    ["os._exit(1)", "os.kill(os.getpid(), signal.SIGKILL)", "ctypes.string_at(0)"],
    ids=["os._exit", "SIGKILL", "segfault"],
)
def test_worker_crash_records_crashed_and_is_not_run_again(
    suite: Suite, pytester: pytest.Pytester, how: str
) -> None:
    pytester.makepyfile(test_crash=CRASH_AT_4.replace("os._exit(1)", how))
    first = pytester.runpytest_subprocess("-n", "2", "-p", "no:faulthandler")
    assert first.ret == 1
    first.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*test_t?4?*"])
    assert suite.take_ran().count("test_crash.py::test_t[4]") == 1
    crashed = [r for r in suite.records("result") if r["outcome"] == "crashed"]
    assert [r["test"] for r in crashed] == ["test_crash.py::test_t[4]"]
    assert len(suite.records("result")) == 10
    first.stdout.fnmatch_lines(["resumable: run * complete after 1 attempt (9 passed, 1 crashed)"])
    # the run is complete (a crash is a result): --resume starts a new run of all 10
    again = pytester.runpytest_subprocess("-n", "2", "--resume", "-p", "no:faulthandler")
    assert "INTERNALERROR" not in again.stdout.str()
    again.stdout.fnmatch_lines(["resumable: recording run *"])
    assert len(suite.records("run")) == 2
    assert len(suite.take_ran()) == 10


def test_worker_crash_then_resume_carries_crash(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crash=CRASH_AT_4)
    pytester.makepyfile(test_zblock="def test_z(): pass\n")
    interrupt(suite, ["-n", "2"], block_at="test_zblock.py::test_z", sig=signal.SIGKILL)
    suite.take_ran()
    resumed = pytester.runpytest_subprocess("-n", "2", "--resume")
    assert "INTERNALERROR" not in resumed.stdout.str()
    assert resumed.ret == 1
    ran = suite.take_ran()
    assert "test_crash.py::test_t[4]" not in ran
    assert "test_zblock.py::test_z" in ran
    # replayed as xdist reported it: an error "at ???", as in an uninterrupted run
    # (pytest 8 prints the short summary line without the crash message)
    resumed.stdout.fnmatch_lines(
        [
            "*ERROR at ??? of test_crash.py*",
            "worker 'gw?' crashed while running 'test_crash.py::test_t[[]4[]]'",
            "*ERROR (carried) test_crash.py::test_t?4?*",
        ]
    )


def test_max_worker_restart_0_leaves_tests_without_result(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        test_crash="""
        import os, pytest

        @pytest.mark.parametrize("i", range(30))
        def test_t(i):
            if i in (2, 3):
                os._exit(1)
    """
    )
    first = pytester.runpytest_subprocess("-n", "2", "--max-worker-restart", "0")
    # When every worker has died, xdist itself sometimes ends in an INTERNALERROR ("cannot
    # send (already closed?)", pytest-xdist #204, also without other plugins). Tolerate that
    # one; this plugin's frames may only appear as the hook wrapper it passes through.
    internal = [line for line in first.outlines if line.startswith("INTERNALERROR>")]
    if internal:
        text = "\n".join(internal)
        assert "OSError: cannot send (already closed?)" in text, text
        for i, line in enumerate(internal):
            if "pytest_resumable" in line:
                assert internal[i + 1].strip().endswith("return (yield)"), text
    recorded = results_of(suite)
    first_ran = suite.take_ran()
    assert len(recorded) == len(set(recorded))
    missing = {f"test_crash.py::test_t[{i}]" for i in range(30)} - set(recorded)
    if missing:
        first.stdout.fnmatch_lines([f"resumable: run * incomplete: {len(missing)} of 30 *"])
    resumed = pytester.runpytest_subprocess("-n", "2", "--resume")
    assert "INTERNALERROR" not in resumed.stdout.str()
    assert set(suite.take_ran()) == missing
    assert Counter(results_of(suite)) == Counter(f"test_crash.py::test_t[{i}]" for i in range(30))
    assert first_ran


def test_workers_never_open_the_journal(suite: Suite, pytester: pytest.Pytester) -> None:
    """A worker that touched the journal would need its path: give workers a journal path
    that only the controller could ever open, and check it was written once per test."""
    ids = make_suite(pytester)
    pytester.makeconftest(
        pytester.path.joinpath("conftest.py").read_text()
        + """
import builtins, os

def _guard(real):
    def guarded(path, *args, **kwargs):
        if os.path.basename(str(path)).startswith("journal.jsonl"):
            raise AssertionError("a worker opened the journal")
        return real(path, *args, **kwargs)
    return guarded

def pytest_configure(config):
    if hasattr(config, "workerinput"):
        os.open = _guard(os.open)
        builtins.open = _guard(builtins.open)
"""
    )
    result = pytester.runpytest_subprocess("-n", "2")
    assert result.ret == 1
    assert Counter(results_of(suite)) == Counter(ids)


def test_dist_each_runs_everything_again(suite: Suite, pytester: pytest.Pytester) -> None:
    ids = make_suite(pytester)
    interrupt(
        suite, ["-n", "2", "--dist", "each"], block_at=blockers(ids), sig=signal.SIGKILL, wait_for=4
    )
    suite.take_ran()
    resumed = pytester.runpytest_subprocess("-n", "2", "--dist", "each", "--resume")
    assert Counter(suite.take_ran()) == Counter(ids * 2)  # every test on both workers
    resumed.stdout.fnmatch_lines(["*--dist each: nothing is carried*"])


@pytest.mark.parametrize("xdist", [["-n", "2"], ["-p", "no:xdist"]], ids=["n2", "no-xdist"])
def test_rerunfailures_only_the_final_report_is_a_result(
    suite: Suite, pytester: pytest.Pytester, xdist: list[str]
) -> None:
    pytest.importorskip("pytest_rerunfailures")
    counter = pytester.path / "attempts"
    pytester.makepyfile(
        test_flaky=f"""
        import pathlib

        def test_flaky():
            counter = pathlib.Path({str(counter)!r})
            n = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(n + 1))
            assert n >= 2, "fails twice, then passes"

        def test_always_fails():
            assert False
        """
    )
    result = pytester.runpytest_subprocess("--reruns", "3", *xdist)
    assert result.ret == 1
    outcomes = {r["test"]: r["outcome"] for r in suite.records("result")}
    assert len(suite.records("result")) == 2  # one result per test, reruns are not results
    assert outcomes == {
        "test_flaky.py::test_flaky": "passed",
        "test_flaky.py::test_always_fails": "failed",
    }
    assert counter.read_text() == "3"


def test_explicit_tx_workers_resume_exactly(suite: Suite, pytester: pytest.Pytester) -> None:
    """Workers from --tx specs (as for remote workers) get the same snapshot as -n ones."""
    ids = make_suite(pytester)
    args = ["--tx", "2*popen", "--dist", "load"]
    interrupt(suite, args, block_at=blockers(ids), sig=signal.SIGKILL, wait_for=4)
    ran_first = suite.take_ran()
    recorded = results_of(suite)
    resumed = pytester.runpytest_subprocess("--resume", *args)
    assert "INTERNALERROR" not in resumed.stdout.str()
    ran_second = suite.take_ran()
    assert Counter(ran_second) == Counter(t for t in ids if t not in recorded)
    assert set(ran_first) | set(ran_second) == set(ids)
    assert Counter(results_of(suite)) == Counter(ids)


SLOW_CONTROLLER = """
import os, signal, time

seen = []
on_worker = []

def pytest_configure(config):
    # (not $PYTEST_XDIST_WORKER: a controller run from an xdist worker inherits it)
    on_worker.append(hasattr(config, "workerinput"))

def pytest_runtest_logreport(report):
    # only on the xdist controller, only once: it handles reports slower than the workers
    # make them, as a busy terminal does on a big suite, then gets Ctrl-C
    if on_worker[0] or os.path.exists("interrupted"):
        return
    time.sleep(0.01)
    if report.when == "call":
        seen.append(report.nodeid)
        if len(seen) == 20:
            open("interrupted", "w").close()
            os.kill(os.getpid(), signal.SIGINT)
"""


@pytest.mark.parametrize("dist", ["worksteal"])  # the one whose workers run far ahead
def test_ctrl_c_records_the_results_already_queued_on_the_controller(
    suite: Suite, pytester: pytest.Pytester, dist: str
) -> None:
    """Issue #14: results that reached the controller before an interrupt are recorded (the
    workers had finished far more tests than the controller had handled)."""
    pytester.makeconftest(SUITE_CONFTEST + SLOW_CONTROLLER)
    pytester.makepyfile(
        test_many="import pytest\n\n@pytest.mark.parametrize('i', range(150))\n"
        "def test_m(i):\n    pass\n"
    )
    first = pytester.runpytest_subprocess("-n", "2", "--dist", dist)
    assert first.ret == 2, first.stdout.str()
    recorded = {r["test"] for r in suite.records("result")}
    assert len(recorded) > 100, len(recorded)  # far more than the 20 the controller handled
    ran_first = suite.take_ran()
    resumed = pytester.runpytest_subprocess("-n", "2", "--resume", "-p", "no:randomly")
    ran_now = suite.take_ran()
    assert not set(ran_now) & recorded  # recorded results are not run again
    assert set(ran_first) | set(ran_now) >= {f"test_many.py::test_m[{i}]" for i in range(150)}
    assert resumed.ret == 0, resumed.stdout.str()


SCHEDULER_LOG = """

def pytest_xdist_node_collection_finished(node, ids):
    import json
    with open("scheduled.jsonl", "a") as f:
        f.write(json.dumps(ids) + "\\n")
"""


def scheduled(pytester: pytest.Pytester) -> list[list[str]]:
    path = pytester.path / "scheduled.jsonl"
    lists = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    return lists


@pytest.mark.parametrize("dist", ["load", "loadscope"])
def test_carried_tests_never_reach_a_workers_collection_list(
    suite: Suite, pytester: pytest.Pytester, dist: str
) -> None:
    """The lists xdist schedules from hold only the tests run now; the controller still
    reports exactly the carried tests of this selection (``-k`` narrows it), nothing else."""
    ids = make_suite(pytester, dist)
    (pytester.path / "conftest.py").write_text(SUITE_CONFTEST + SCHEDULER_LOG)
    args = ["-n", "2", "--dist", dist]
    interrupt(suite, args, block_at=blockers(ids), sig=signal.SIGINT, wait_for=4)
    scheduled(pytester)
    recorded = set(results_of(suite))
    suite.take_ran()

    narrowed = pytester.runpytest_subprocess("--resume", *args, "-k", "test_f", "-rA")
    test_f = [t for t in ids if "::test_f[" in t]
    carried_f = [t for t in test_f if t in recorded]
    assert carried_f  # each module's first tests ran in the interrupted attempt
    for got in scheduled(pytester):  # one list per worker
        assert sorted(got) == sorted(t for t in test_f if t not in recorded)
    assert sorted(suite.take_ran()) == sorted(t for t in test_f if t not in recorded)
    out = narrowed.stdout.str()
    for test in ids:
        line = rf"(?m)^(PASSED|FAILED)( \(carried\))? {re.escape(test)}( - .*)?$"
        reported = re.findall(line, out)
        assert len(reported) == (test in test_f), test  # carried outside -k: not reported
        assert (reported[0][1] == " (carried)") == (test in carried_f) if reported else True
    assert f"({len(carried_f)} carried)" in out

    assert narrowed.ret == 1  # test_a.py::test_f[7] fails, carried or not


def test_a_worker_that_does_not_say_what_it_left_out_stops_the_session(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """Without the worker's list of tests not run now the controller cannot know which
    carried results belong to this selection: it stops with one line instead of guessing
    (a guess could report a failure as green or a pass as red)."""
    ids = make_suite(pytester)
    interrupt(suite, ["-n", "2"], block_at=blockers(ids), sig=signal.SIGINT, wait_for=4)
    pytester.makeconftest(
        SUITE_CONFTEST
        + """
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if hasattr(config, "workerinput"):  # a worker of another pytest-resumable, say
        config.workerinput.pop("resumable_channel", None)
"""
    )
    resumed = pytester.runpytest_subprocess("--resume", "-n", "2")
    out = resumed.stdout.str() + resumed.stderr.str()
    assert "did not say which tests it does not run now" in out
    assert "Traceback" not in out
    assert resumed.ret == pytest.ExitCode.INTERNAL_ERROR


@pytest.mark.parametrize("arg", ["test_a.py::test_gone", "test_gone.py", "-mx y"])
def test_a_usage_error_on_the_workers_ends_as_it_does_without_the_plugin(
    suite: Suite, pytester: pytest.Pytester, arg: str
) -> None:
    """A node id or path that does not exist (a renamed test, in CI) or a bad ``-m`` fails
    the workers' collection before the tests are split: the session ends as plain xdist ends
    it, at once, not as a worker that said nothing."""
    ids = make_suite(pytester)
    interrupt(suite, ["-n", "2"], block_at=blockers(ids), sig=signal.SIGINT, wait_for=4)
    plain = pytester.runpytest_subprocess("-n", "2", "-p", "no:resumable", arg)
    # the bug waited for the workers' message (5 s) before failing: with that wait made far
    # longer than the timeout, the session ends in time only if it does not wait (no clock)
    pytester.makepyfile(
        wait_long="import pytest_resumable.controller as c\nc._CHANNEL_TIMEOUT = 3600.0\n"
    )
    resumed = pytester.runpytest_subprocess(
        "-n", "2", "-p", "wait_long", "--resume", arg, timeout=120
    )
    assert resumed.ret == plain.ret
    out = resumed.stdout.str() + resumed.stderr.str()
    assert "did not say" not in out
    # xdist 3.8 itself ends a bad -m with an INTERNALERROR when the suite has tests
    assert ("INTERNALERROR" in out) == ("INTERNALERROR" in plain.stdout.str())
