"""Start lines in a single process: every test's start line is in the journal before its setup
runs, and a test that never begins has none, whatever stops or reorders the loop.

A start line is what makes a killed test "in flight" on the next ``--resume`` (and run in a
child first): one for a test that never began names the wrong test and, run in a child outside
the plugins that wrap pytest's protocol, can change its result. Writing the next test's start
line together with the previous result (one write a test instead of two, tried for issue #17)
broke this: the sessions below that end with "announced" were found by a fresh-eyes tester."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# Each test's setup reads the journal: its own start line must be the last one there.
OWN_START_CONFTEST = """
import json, os, pytest
from pathlib import Path

@pytest.fixture(autouse=True)
def _own_start(request):
    starts = [
        json.loads(line)["test"]
        for line in Path(os.environ["J"]).read_text().splitlines()
        if '"type":"start"' in line
    ]
    assert starts and starts[-1] == request.node.nodeid, starts[-3:]
"""

MIXED = """
import sys, pytest

@pytest.mark.parametrize("i", range(4))
def test_plain(i):
    pass

def test_prints():
    print("captured")

def test_fails():
    assert 0

@pytest.mark.skip(reason="no")
def test_skipped():
    pass

@pytest.mark.xfail
def test_xfails():
    assert 0

def test_props(record_property):
    record_property("k", "v")

@pytest.mark.parametrize("i", range(3))
def test_tail(i):
    pass
"""


def _records(journal: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, journal.read_bytes().splitlines()) if r.get("type") == kind]


def _tests(journal: Path, kind: str) -> list[str]:
    """The test ids of the journal's ``kind`` records, in order."""
    return [r["test"] for r in _records(journal, kind)]


def _six_tests(pytester: pytest.Pytester, module: str, name: str) -> None:
    source = f"""
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def {name}(i):
            pass
        """
    pytester.makepyfile(**{module: source})


@pytest.fixture
def journal(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = pytester.path / "journal.jsonl"
    monkeypatch.setenv("J", str(path))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeconftest(OWN_START_CONFTEST)
    return path


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:xdist", "-p", "no:randomly", "--resume-journal=journal.jsonl", *args,
    )  # fmt: skip


def test_every_start_line_precedes_its_setup_and_each_test_has_one(
    pytester: pytest.Pytester, journal: Path
) -> None:
    pytester.makepyfile(test_mixed=MIXED)
    result = _run(pytester)
    result.assert_outcomes(passed=9, failed=1, skipped=1, xfailed=1)
    starts = _tests(journal, "start")
    results = _tests(journal, "result")
    assert starts == results  # in order, each once: no start line of a test that never ran
    assert len(results) == 12


@pytest.mark.parametrize(
    "option", [["-x"], ["--maxfail=1"], ["--sw"]], ids=lambda o: o[0].split("=")[0]
)
def test_a_stopping_session_writes_no_start_line_of_a_test_it_does_not_run(
    pytester: pytest.Pytester, journal: Path, option: list[str]
) -> None:
    pytester.makepyfile(test_mixed=MIXED)
    result = _run(pytester, *option)
    assert result.ret == (2 if option == ["--sw"] else 1)  # --sw stops as "Interrupted"
    starts = _tests(journal, "start")
    assert starts == _tests(journal, "result")
    assert starts[-1] == "test_mixed.py::test_fails"
    resumed = _run(pytester, "--resume")
    assert "in flight" not in resumed.stdout.str()
    resumed.assert_outcomes(passed=9, failed=1, skipped=1, xfailed=1)


@pytest.mark.parametrize("when", ["call", "teardown"])
def test_a_plugin_that_stops_after_a_passing_test_leaves_no_start_line_behind(
    pytester: pytest.Pytester, journal: Path, when: str
) -> None:
    """A "time budget" hook that stops the session, also from the teardown report after the
    recorder has seen it (announced: a start line of test 3, in flight on resume)."""
    _six_tests(pytester, "test_stop", "test_s")
    pytester.makepyfile(
        stopper="""
        SESSION = None

        def pytest_sessionstart(session):
            global SESSION
            SESSION = session

        def pytest_runtest_logreport(report):
            if report.when == WHEN and report.nodeid.endswith("[2]"):
                SESSION.shouldstop = "enough"
        """.replace("WHEN", repr(when))
    )
    result = _run(pytester, "-p", "stopper")
    result.stdout.fnmatch_lines(["*Interrupted: enough*"])
    starts = _tests(journal, "start")
    assert starts == [f"test_stop.py::test_s[{i}]" for i in range(3)]
    assert starts == _tests(journal, "result")
    resumed = _run(pytester, "--resume")
    assert "in flight" not in resumed.stdout.str()
    resumed.assert_outcomes(passed=6)


def test_a_loop_out_of_order_still_writes_each_start_before_its_test(
    pytester: pytest.Pytester, journal: Path
) -> None:
    """A plugin runs the tests in another order than ``session.items``: each start line is
    written at the test's own start."""
    _six_tests(pytester, "test_order", "test_o")
    pytester.makepyfile(
        reverser="""
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtestloop(session):
            items = list(reversed(session.items))
            for i, item in enumerate(items):
                nextitem = items[i + 1] if i + 1 < len(items) else None
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            return True
        """
    )
    result = _run(pytester, "-p", "reverser")
    result.assert_outcomes(passed=6)
    starts = _tests(journal, "start")
    expected = [f"test_order.py::test_o[{i}]" for i in reversed(range(6))]
    assert starts == expected
    assert _tests(journal, "result") == expected


def test_a_rerun_starts_again_and_the_next_test_is_announced_after_the_final_pass(
    pytester: pytest.Pytester, journal: Path
) -> None:
    pytester.makepyfile(
        test_flaky="""
        import os
        from pathlib import Path

        def test_a():
            pass

        def test_flaky():
            marker = Path(os.environ["J"]).with_name("ran-once")
            if not marker.exists():
                marker.touch()
                assert 0, "first time"

        def test_b():
            pass
        """
    )
    result = _run(pytester, "--reruns=1")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*3 passed, 1 rerun*"])
    starts = _tests(journal, "start")
    # pytest-rerunfailures calls pytest_runtest_logstart again for the rerun
    names = ("test_a", "test_flaky", "test_flaky", "test_b")
    assert starts == [f"test_flaky.py::{n}" for n in names]
    results = _records(journal, "result")
    assert [(r["test"], r["outcome"]) for r in results] == [
        (f"test_flaky.py::{n}", "passed") for n in ("test_a", "test_flaky", "test_b")
    ]


RUN_TWICE_CONFTEST = """
import pytest
from _pytest.runner import runtestprotocol

# a plugin that runs each test twice inside pytest's protocol (as flaky's min_passes does)
@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    for run in range(2):
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        item.run_no = run
        runtestprotocol(item, nextitem=nextitem, log=True)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
"""


def test_killed_in_a_tests_second_run_inside_the_protocol_no_other_test_is_in_flight(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Announced, the next test's start line stood during the second run: killed there, the
    resume named test_b in flight, ran it in a child outside this protocol, and it failed
    (a green run ended red)."""
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeconftest(RUN_TWICE_CONFTEST)
    pytester.makepyfile(
        test_r="""
        import os, time

        def test_a(request):
            if getattr(request.node, "run_no", 0) == 1:
                open("ready", "w").close()
                deadline = time.monotonic() + 60
                while not os.path.exists("go") and time.monotonic() < deadline:
                    time.sleep(0.01)

        def test_b(request):
            assert request.node.run_no in (0, 1)
        """
    )
    args = ["-p", "no:xdist", "-p", "no:randomly", "--resume-journal=journal.jsonl"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (pytester.path / "ready").exists():
            assert proc.poll() is None, "ended before it got ready"
            assert time.monotonic() < deadline, "never got ready"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    (pytester.path / "go").touch()
    journal = pytester.path / "journal.jsonl"
    assert _tests(journal, "start")[-1] == "test_r.py::test_a"
    resumed = pytester.runpytest_subprocess(*args, "--resume")
    # test_a's first run gave its result: nothing was in flight, test_b never began
    assert "in flight" not in resumed.stdout.str()
    resumed.stdout.fnmatch_lines(["resumable: run * complete after 2 attempts (2 passed)"])
    assert resumed.ret == 0
