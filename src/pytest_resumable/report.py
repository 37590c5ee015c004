"""``pytest-resumable report``: the report of a whole run straight from journals.

The stored reports of every test of the run (all shards, all attempts, the latest result per
test) are fed to a real pytest session that collects nothing, through the same hooks a resumed
attempt replays carried results with, so pytest's own ``--junitxml`` writer, pytest-reportlog
and any other reporting plugin write the files (no hand-written XML). Tests that were in flight
when a job was killed have no result; they are reported as errors saying so.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_resumable.history import RunState
from pytest_resumable.journal.records import ResultRecord


@dataclass
class RunReport:
    """The latest result of every test of the chosen runs, and what is in flight."""

    runs: list[str] = field(default_factory=list)
    results: dict[str, ResultRecord] = field(default_factory=dict)
    in_flight: list[ResultRecord] = field(default_factory=list)


def collect(states: Sequence[RunState]) -> RunReport:
    """Fold the runs (one per shard, maybe the same run from several journals)."""
    report = RunReport()
    for state in states:
        if state.id not in report.runs:
            report.runs.append(state.id)
        for test, result in state.results.items():
            old = report.results.get(test)
            if old is None or (old.run == result.run and result.attempt >= old.attempt):
                report.results[test] = result
    for state in states:
        last = state.last_attempt
        if last is None or not last.died:
            continue
        for test in sorted(state.in_flight(last.number)):
            if test not in report.results and all(r.test != test for r in report.in_flight):
                report.in_flight.append(
                    ResultRecord(
                        state.id,
                        last.number,
                        test,
                        "error",
                        0.0,
                        when="setup",
                        message=f"no result: in flight when attempt {last.number} of run "
                        f"{state.id} ended",
                    )
                )
    return report


def write(
    report: RunReport, junitxml: str | None, report_log: str | None, junit_logging: str
) -> int:
    """Run a pytest session that replays ``report`` into the requested files; its exit
    status (0 all passed, 1 some failed)."""
    import pytest

    results = [*report.results.values(), *report.in_flight]
    args = ["-p", "no:cacheprovider", "-p", "no:resumable", "-p", "no:xdist", "-p", "no:terminal"]
    args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    args += ["-p", "no:randomly", "-o", f"junit_logging={junit_logging}"]
    if junitxml:
        args.append(f"--junitxml={junitxml}")
    if report_log:
        args.append(f"--report-log={report_log}")
    with tempfile.TemporaryDirectory(prefix="pytest-resumable-report-") as empty:
        ini = Path(empty) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        # an empty rootdir and ini: no conftest or plugin option of any project runs
        args += ["-c", str(ini), "--rootdir", empty, empty]
        return int(pytest.main(args, plugins=[_Replay(results)]))


class _Replay:
    """Collects nothing; its test loop replays the stored reports."""

    def __init__(self, results: list[ResultRecord]) -> None:
        self.results = results

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        items[:] = []

    def pytest_runtestloop(self, session: Any) -> bool:
        from pytest_resumable.results import CARRIED_ATTR, replayed_reports

        hook = session.config.hook
        session.testscollected = len(self.results)
        for result in self.results:
            reports = replayed_reports(session.config, result)
            for report in reports:
                delattr(report, CARRIED_ATTR)  # here they are simply the run's reports
            location = reports[0].location
            hook.pytest_runtest_logstart(nodeid=result.test, location=location)
            for report in reports:
                hook.pytest_runtest_logreport(report=report)
            hook.pytest_runtest_logfinish(nodeid=result.test, location=location)
        return True
