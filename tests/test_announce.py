"""One write a test in a single process (issue #17): a plain pass's result line carries the
start line of the test pytest runs next. What must still hold: every test's start line is in
the journal before its setup runs, a test that never starts has no start line, and anything
out of the ordinary (failures, reruns, a plugin that reorders the loop or stops it) ends up
with the same journal as before."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_resumable.journal import codec
from pytest_resumable.recorder import FileHashes, Recorder

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
    return [
        r for r in map(json.loads, journal.read_bytes().splitlines()) if r.get("type") == kind
    ]


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
    starts = [r["test"] for r in _records(journal, "start")]
    results = [r["test"] for r in _records(journal, "result")]
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
    starts = [r["test"] for r in _records(journal, "start")]
    assert starts == [r["test"] for r in _records(journal, "result")]
    assert starts[-1] == "test_mixed.py::test_fails"
    resumed = _run(pytester, "--resume")
    assert "in flight" not in resumed.stdout.str()
    resumed.assert_outcomes(passed=9, failed=1, skipped=1, xfailed=1)


def test_a_plugin_that_stops_after_a_passing_test_leaves_no_start_line_behind(
    pytester: pytest.Pytester, journal: Path
) -> None:
    pytester.makepyfile(
        test_stop="""
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_s(i):
            pass
        """
    )
    pytester.makepyfile(
        stopper="""
        SESSION = None

        def pytest_sessionstart(session):
            global SESSION
            SESSION = session

        def pytest_runtest_logreport(report):
            if report.when == "call" and report.nodeid.endswith("[2]"):
                SESSION.shouldstop = "enough"
        """
    )
    result = _run(pytester, "-p", "stopper")
    result.stdout.fnmatch_lines(["*Interrupted: enough*"])
    starts = [r["test"] for r in _records(journal, "start")]
    assert starts == [f"test_stop.py::test_s[{i}]" for i in range(3)]
    assert starts == [r["test"] for r in _records(journal, "result")]


def test_a_loop_out_of_order_still_writes_each_start_before_its_test(
    pytester: pytest.Pytester, journal: Path
) -> None:
    """A plugin runs the tests in another order than ``session.items``: each start line is
    written by the test's own ``pytest_runtest_logstart`` (announcing stops)."""
    pytester.makepyfile(
        test_order="""
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_o(i):
            pass
        """
    )
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
    starts = [r["test"] for r in _records(journal, "start")]
    expected = [f"test_order.py::test_o[{i}]" for i in reversed(range(6))]
    assert starts == expected
    assert [r["test"] for r in _records(journal, "result")] == expected


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
    starts = [r["test"] for r in _records(journal, "start")]
    # pytest-rerunfailures calls pytest_runtest_logstart again for the rerun
    names = ("test_a", "test_flaky", "test_flaky", "test_b")
    assert starts == [f"test_flaky.py::{n}" for n in names]
    results = _records(journal, "result")
    assert [(r["test"], r["outcome"]) for r in results] == [
        (f"test_flaky.py::{n}", "passed") for n in ("test_a", "test_flaky", "test_b")
    ]


class _Writer:
    """A writer that keeps what it was given, one entry per ``append_bytes``."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def append_bytes(self, data: bytes) -> None:
        self.writes.append(data)


def _plain_reports(nodeid: str) -> list[pytest.TestReport]:
    return [
        pytest.TestReport(
            nodeid, ("t.py", 1, nodeid), {}, "passed", None, when, [], 0.25, 0.0, 0.25
        )
        for when in ("setup", "call", "teardown")
    ]


def test_a_plain_pass_and_the_next_start_are_one_write(tmp_path: Path) -> None:
    config = SimpleNamespace(option=SimpleNamespace())
    plan = SimpleNamespace(run_id="0123abcd", attempt=1)
    writer = _Writer()
    recorder = Recorder(config, plan, writer, FileHashes(tmp_path), print)  # type: ignore[arg-type]
    ids = ["t.py::a", "t.py::b", "t.py::c"]
    session = SimpleNamespace(
        items=[SimpleNamespace(nodeid=i) for i in ids], shouldstop=False, shouldfail=False
    )
    recorder.announce(session)  # type: ignore[arg-type]
    for nodeid in ids:
        recorder.pytest_runtest_logstart(nodeid)
        for report in _plain_reports(nodeid):
            recorder.pytest_runtest_logreport(report)
    prefix = codec.start_prefix("0123abcd", 1)
    start = [codec.start_line(prefix, i) for i in ids]
    passed = [
        codec.passed_line("0123abcd", 1, i, 0.75, 1, None) for i in ids
    ]  # no such file: no hash
    assert writer.writes == [
        start[0],
        passed[0] + start[1],
        passed[1] + start[2],
        passed[2],
    ]
    assert recorder.written == 3
