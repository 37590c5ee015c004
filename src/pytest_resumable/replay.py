"""Carried results: not running them, and reporting them as pytest reported them.

Imported by xdist workers too, so it imports nothing heavy (no journal, no filelock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_resumable.outcomes import BAD_OUTCOMES

if TYPE_CHECKING:
    from pytest_resumable.journal import ResultRecord

#: Set on the reports this plugin replays for carried results.
CARRIED_ATTR = "resumable_carried"


class _CarriedCrash:
    def __init__(self, message: str, path: str, lineno: int) -> None:
        self.message = message
        self.path = path
        self.lineno = lineno


class CarriedLongrepr:
    """The stored failure text of a carried result, shown as pytest shows a failure."""

    def __init__(self, text: str, message: str, path: str, lineno: int) -> None:
        self.text = text
        self.reprcrash = _CarriedCrash(message, path, lineno)

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


def carried_reports(result: ResultRecord) -> list[pytest.TestReport]:
    """setup, call and teardown reports that replay a carried result as pytest made it."""
    path = result.test.split("::", 1)[0]
    domain = result.test.split("::", 1)[1].replace("::", ".") if "::" in result.test else path
    location = (path, result.line, domain)
    lineno = (result.line or 0) + 1
    failure: Any = None
    if result.outcome in BAD_OUTCOMES:
        text = result.longrepr or result.message or result.outcome
        failure = CarriedLongrepr(
            text, result.message or text.strip().splitlines()[-1], path, lineno
        )
    phases: dict[str, tuple[str, Any, dict[str, Any]]] = {
        "setup": ("passed", None, {}),
        "call": ("passed", None, {}),
        "teardown": ("passed", None, {}),
    }
    outcome = result.outcome
    when = result.when or "call"
    if outcome == "passed":
        pass
    elif outcome == "xpassed":
        phases["call"] = ("passed", None, {"wasxfail": result.message or ""})
    elif outcome in ("skipped", "xfailed"):
        extra: dict[str, Any] = {"wasxfail": result.message or ""} if outcome == "xfailed" else {}
        reason = (result.message or "Skipped") if outcome == "skipped" else ""
        longrepr: Any = (path, lineno, reason) if outcome == "skipped" else None
        phases[when if when in phases else "call"] = ("skipped", longrepr, extra)
        if when == "setup":
            del phases["call"]
    elif outcome == "crashed":
        phases["call"] = ("failed", failure, {})
    else:  # failed, error
        phases[when if when in phases else "call"] = ("failed", failure, {})
        if when == "setup":
            del phases["call"]
    reports = []
    for phase, (phase_outcome, longrepr, extra) in phases.items():
        report = pytest.TestReport(
            nodeid=result.test,
            location=location,
            keywords={},
            outcome=phase_outcome,  # type: ignore[arg-type]
            longrepr=longrepr,
            when=phase,  # type: ignore[arg-type]
            duration=result.duration
            if phase == "call" or (phase == "setup" and "call" not in phases)
            else 0.0,
            **extra,
        )
        setattr(report, CARRIED_ATTR, result.attempt)
        reports.append(report)
    return reports


def carried_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """Category, letter and word of a replayed report: pytest's, with the word marked."""
    if report.when != "call" and report.passed:
        return "", "", ""
    if hasattr(report, "wasxfail"):
        if report.skipped:
            return "xfailed", "x", "XFAIL (carried)"
        if report.passed:
            return "xpassed", "X", "XPASS (carried)"
    if report.failed:
        if report.when == "call":
            return "failed", "F", "FAILED (carried)"
        return "error", "E", "ERROR (carried)"
    if report.skipped:
        return "skipped", "s", "SKIPPED (carried)"
    return "passed", ".", "PASSED (carried)"


def skip_carried(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stand in for the protocol of a test whose result is carried: run nothing, but tear
    down the fixtures pytest would tear down after it.

    The test before it was torn down keeping what *this* test needs (``nextitem``); skipping
    that bookkeeping breaks the next test of another module ("previous item was not torn down
    properly"). A fixture finalizer that fails here is reported as pytest would: as a teardown
    error of this test.
    """
    setupstate = item.session._setupstate  # no public API does this; runner.py does the same
    call = pytest.CallInfo.from_call(
        lambda: setupstate.teardown_exact(nextitem),
        when="teardown",
        reraise=(pytest.exit.Exception, KeyboardInterrupt),
    )
    if call.excinfo is not None:
        report = item.ihook.pytest_runtest_makereport(item=item, call=call)
        item.ihook.pytest_runtest_logreport(report=report)


class CarriedResults:
    """Hooks needed only when an attempt carries results; registered only then, to keep them
    off the per-test path of every other session."""

    def __init__(self, carried: dict[str, ResultRecord]) -> None:
        self.carried = carried

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        """A test with a carried result is not run; it is reported after the loop."""
        if item.nodeid in self.carried:
            skip_carried(item, nextitem)
            return True
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.CollectReport | pytest.TestReport
    ) -> tuple[str, str, str] | None:
        if isinstance(report, pytest.TestReport) and hasattr(report, CARRIED_ATTR):
            return carried_teststatus(report)
        return None
