"""The recording hot path's shortcut for plain passes (issue #17): it must take exactly the
reports a plain pass line describes, and leave everything else to the general path."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pytest_resumable.recorder import FileHashes, Recorder
from pytest_resumable.results import plain_pass


def _reports(
    cls: type[pytest.TestReport] = pytest.TestReport, **changes: Any
) -> list[pytest.TestReport]:
    made = []
    for when in ("setup", "call", "teardown"):
        report = cls(
            "t.py::test_a", ("t.py", 4, "test_a"), {}, "passed", None, when, [], 0.25, 0.0, 0.25
        )
        for name, value in changes.get(when, {}).items():
            setattr(report, name, value)
        made.append(report)
    return made


def test_three_passed_reports_with_nothing_on_them_are_a_plain_pass() -> None:
    assert plain_pass(_reports()) == (0.75, 4)


@pytest.mark.parametrize(
    "changes",
    [
        {"setup": {"outcome": "failed"}},
        {"call": {"outcome": "skipped"}},
        {"teardown": {"outcome": "failed"}},
        {"call": {"sections": [("Captured stdout call", "hello")]}},
        {"setup": {"sections": [("Captured log setup", "x")]}},
        {"teardown": {"user_properties": [("k", "v")]}},
        {"call": {"wasxfail": "reason"}},  # an xpass of a non-strict xfail
        {"call": {"when": "setup"}},
    ],
    ids=repr,
)
def test_anything_on_a_report_makes_it_not_plain(changes: dict[str, dict[str, Any]]) -> None:
    assert plain_pass(_reports(**changes)) is None


def test_a_report_of_another_class_or_a_missing_one_is_not_plain() -> None:
    class SubReport(pytest.TestReport):
        pass

    reports = _reports()
    assert plain_pass(reports[:2]) is None
    for i in range(3):
        other = list(reports)
        other[i] = _reports(SubReport)[i]
        assert plain_pass(other) is None
    broken = _reports()
    del broken[1].__dict__["sections"]  # a plugin removed an attribute: not plain, no error
    assert plain_pass(broken) is None


def test_the_recorder_keeps_its_state_in_slots(tmp_path: Any) -> None:
    """pluggy lists a plugin's attributes when registering it (``dir()``); on Python 3.11 that
    gives an instance's attributes a dict of their own and slows every read of them on the
    hot path. Slots cannot be given one."""
    config = SimpleNamespace(option=SimpleNamespace())
    plan = SimpleNamespace(run_id="0123abcd", attempt=1)
    hashes = FileHashes(tmp_path)
    recorder = Recorder(config, plan, None, hashes, print)  # type: ignore[arg-type]
    dir(recorder)
    assert not hasattr(recorder, "__dict__")
    assert not hasattr(hashes, "__dict__")
    recorder.pytest_runtest_logstart("t.py::test_a", ("t.py", 4, "test_a"))  # no writer: no-op
    for report in _reports():
        recorder.pytest_runtest_logreport(report)
    assert recorder.outcomes == {"t.py::test_a": "passed"}
    assert recorder.written == 0


def _recording(tmp_path: Any) -> tuple[Recorder, list[bytes]]:
    config = SimpleNamespace(option=SimpleNamespace())
    plan = SimpleNamespace(run_id="0123abcd", attempt=1)
    lines: list[bytes] = []
    writer = SimpleNamespace(append_bytes=lines.append)
    return Recorder(config, plan, writer, FileHashes(tmp_path), print), lines  # type: ignore[arg-type]


def test_the_reports_of_the_test_just_started_are_known_by_their_location(tmp_path: Any) -> None:
    """A report carrying the very ``location`` tuple the test's start was given is that test's
    (``Item.location`` is cached); one with an equal but other tuple, as a worker's or a
    child's deserialized report has, is read the general way. Both give the same line."""
    recorder, lines = _recording(tmp_path)
    started = _reports()
    recorder.pytest_runtest_logstart("t.py::test_a", started[0].location)
    for report in started:
        recorder.pytest_runtest_logreport(report)
    fast = lines[-1]
    recorder, lines = _recording(tmp_path)
    equal = (*(started[0].location or ()),)
    assert equal == started[0].location
    assert equal is not started[0].location
    recorder.pytest_runtest_logstart("t.py::test_a", equal)
    for report in _reports():
        recorder.pytest_runtest_logreport(report)
    assert lines[-1] == fast
    assert b'"test":"t.py::test_a","outcome":"passed","duration":0.750000,"line":4' in fast
    # another test's reports while test_a is the last started: recorded as theirs
    others = _reports()
    for report in others:
        report.nodeid = "t.py::test_b"
        report.location = ("t.py", 9, "test_b")
        recorder.pytest_runtest_logreport(report)
    assert recorder.outcomes == {"t.py::test_a": "passed", "t.py::test_b": "passed"}
    assert b'"test":"t.py::test_b"' in lines[-1]
