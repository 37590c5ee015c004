"""pytest's reports <-> result records, and replaying carried results as the reports pytest made.

A result is what pytest itself counted for a test, subtest reports included: a test with a
failing subtest has failed. Every test that is not a plain pass (and every report that carries
captured output or user properties) is stored with the reports pytest serialized for it
(``pytest_report_to_serializable``, the mechanism xdist ships reports with) and replayed with
``pytest_report_from_serializable``, so the terminal, ``--junitxml``, pytest-html and
pytest-reportlog receive the reports they would have received.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from pytest_resumable.journal.codec import TEXT_CAP
from pytest_resumable.journal.records import BAD_OUTCOMES, Outcome, ResultRecord

#: Set on the reports this plugin replays for carried results (the attempt they come from).
CARRIED_ATTR = "resumable_carried"
#: pytest-rerunfailures' outcome for a report that is not final (not in pytest's Literal).
RERUN = "rerun"
#: report attributes never stored: xdist's worker handle is not data
_DROPPED_KEYS = frozenset(("node", "result"))


def is_subtest(report: pytest.TestReport) -> bool:
    """A subtest's report (pytest 9's ``subtests``, unittest ``subTest``, pytest-subtests)."""
    return "subtest" in type(report).__name__.lower()


def plain_pass(reports: Sequence[pytest.TestReport]) -> tuple[float, int | None] | None:
    """For setup, call and teardown that passed with nothing captured and no properties (most
    tests): their total duration and the call's line; ``None`` for anything else, a report of
    another class among them (a subtest's, say) included.

    On the hot path: the three reports' attributes are read from their ``__dict__``.
    ``TestReport.__init__`` fills it with ``__dict__.update``, after which each ``report.x``
    takes the interpreter's slow path (~320 instructions on Python 3.11; a subscript of the dict
    ~100). Only exact ``TestReport`` instances are read this way: theirs are instance
    attributes, never properties.
    """
    if len(reports) != 3:
        return None
    setup, call, teardown = reports
    if not (
        type(setup) is _TestReport and type(call) is _TestReport and type(teardown) is _TestReport
    ):
        return None
    s, c, t = setup.__dict__, call.__dict__, teardown.__dict__
    try:
        if (
            c["outcome"] == "passed"
            and s["outcome"] == "passed"
            and t["outcome"] == "passed"
            and c["when"] == "call"
            and not (s["sections"] or c["sections"] or t["sections"])
            and not (s["user_properties"] or c["user_properties"] or t["user_properties"])
            and "wasxfail" not in c
        ):
            return s["duration"] + c["duration"] + t["duration"], c["location"][1]
    except (KeyError, TypeError):  # a report some plugin changed: the general path takes it
        pass
    return None


_TestReport = pytest.TestReport


def _crash_message(report: pytest.TestReport) -> str | None:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if isinstance(message, str):
        return message
    text = report.longreprtext
    return text.strip().splitlines()[-1] if text.strip() else None


def outcome_of(reports: Sequence[pytest.TestReport]) -> tuple[Outcome, pytest.TestReport]:
    """The result pytest counted for a test from its reports, and the report that decided."""
    setup = next((r for r in reports if r.when == "setup"), None)
    calls = [r for r in reports if r.when == "call"]
    teardown = reports[-1]
    outcome: Outcome = "passed"
    deciding = teardown
    failed_call = next((r for r in calls if r.failed), None)
    main = next((r for r in reversed(calls) if not is_subtest(r)), None)
    if setup is not None and setup.failed:
        outcome, deciding = "error", setup
    elif setup is not None and setup.skipped:
        outcome = "xfailed" if hasattr(setup, "wasxfail") else "skipped"
        deciding = setup
    elif failed_call is not None:
        outcome, deciding = "failed", failed_call
    elif main is not None:
        deciding = main
        if main.skipped:
            outcome = "xfailed" if hasattr(main, "wasxfail") else "skipped"
        else:
            outcome = "xpassed" if hasattr(main, "wasxfail") else "passed"
    if teardown.when == "teardown" and teardown.failed and outcome not in ("failed", "error"):
        outcome, deciding = "error", teardown
    return outcome, deciding


def result_from_reports(
    config: pytest.Config,
    run: str,
    attempt: int,
    reports: Sequence[pytest.TestReport],
    file_hash: str | None,
) -> ResultRecord:
    """The one result of a test from all its reports (setup, calls, subtests, teardown)."""
    outcome, deciding = outcome_of(reports)
    message: str | None = None
    if outcome in ("failed", "error"):
        message = _crash_message(deciding)
    elif outcome in ("xfailed", "xpassed"):
        message = str(getattr(deciding, "wasxfail", "")) or None
    elif outcome == "skipped" and isinstance(deciding.longrepr, tuple):
        message = str(deciding.longrepr[2])
    return ResultRecord(
        run=run,
        attempt=attempt,
        test=reports[-1].nodeid,
        outcome=outcome,
        duration=sum(r.duration for r in reports),
        when=deciding.when if outcome != "passed" else None,
        line=deciding.location[1] if deciding.location else None,
        file_hash=file_hash,
        message=message,
        longrepr=deciding.longreprtext if outcome in ("failed", "error") else None,
        reports=serialize_reports(config, reports),
    )


def crashed_result(
    run: str,
    attempt: int,
    nodeid: str,
    how: str,
    duration: float,
    file_hash: str | None,
    longrepr: str | None = None,
) -> ResultRecord:
    return ResultRecord(
        run,
        attempt,
        nodeid,
        "crashed",
        duration,
        when="call",
        file_hash=file_hash,
        message=how,
        longrepr=longrepr,
    )


# --------------------------------------------------------------------------------------------
# Serialized reports


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and anything JSON cannot hold as its ``repr``."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def serialize_reports(
    config: pytest.Config, reports: Sequence[pytest.TestReport]
) -> tuple[dict[str, Any], ...]:
    hook = config.hook.pytest_report_to_serializable
    out = []
    for report in reports:
        data = hook(config=config, report=report)
        if not isinstance(data, dict):
            continue
        out.append({k: _jsonable(v) for k, v in data.items() if k not in _DROPPED_KEYS})
    return cap_reports(out)


def cap_reports(reports: list[dict[str, Any]], limit: int = TEXT_CAP) -> tuple[dict[str, Any], ...]:
    """Cut the longest texts first until the stored text of a test is at most ``limit``
    characters; each cut says so where it was made."""
    sizes = [len(json.dumps(r, ensure_ascii=False)) for r in reports]
    total = sum(sizes)
    while total > limit:
        holder, key, text = _longest_text(reports)
        if holder is None or len(text) < 200:
            break
        keep = max(100, len(text) - (total - limit) - 100)
        cut = text[:keep] + f"\n[... {len(text) - keep} characters cut by pytest-resumable ...]"
        holder[key] = cut
        total -= len(text) - len(cut)
    return tuple(reports)


def _longest_text(value: Any) -> tuple[Any, Any, str]:
    best: tuple[Any, Any, str] = (None, None, "")
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if isinstance(child, str):
                if len(child) > len(best[2]):
                    best = (node, key, child)
            elif isinstance(child, (dict, list)):
                stack.append(child)
    return best


def report_from_json(config: pytest.Config, data: dict[str, Any]) -> pytest.TestReport | None:
    """A report serialized by ``pytest_report_to_serializable`` and passed through JSON, as
    pytest made it: JSON has no tuples, and pytest asserts a skip's longrepr is one."""
    report = config.hook.pytest_report_from_serializable(config=config, data=dict(data))
    if not isinstance(report, pytest.TestReport):
        return None
    if isinstance(report.longrepr, list):
        report.longrepr = tuple(report.longrepr)  # type: ignore[assignment,unused-ignore]
    _undo_double_repr(report, data)
    report.location = tuple(report.location)  # type: ignore[assignment,unused-ignore]
    report.user_properties = [(p[0], p[1]) for p in report.user_properties]
    report.sections = [(s[0], s[1]) for s in report.sections]
    return report


def replayed_reports(config: pytest.Config, result: ResultRecord) -> list[pytest.TestReport]:
    """The reports of a carried result: pytest's own, deserialized, when they were stored;
    else built from the record (a plain pass, or a journal written before reports were)."""
    reports: list[pytest.TestReport] = []
    if result.reports:
        for data in result.reports:
            try:
                report = report_from_json(config, data)
            except Exception:  # a hand-edited or foreign record: fall back to the fields
                reports = []
                break
            if report is not None:
                reports.append(report)
    if not reports:
        reports = built_reports(result)
    for report in reports:
        setattr(report, CARRIED_ATTR, result.attempt)
    return reports


def _undo_double_repr(report: pytest.TestReport, data: dict[str, Any]) -> None:
    """pytest 9's ``SubtestContext`` applies ``saferepr`` to its kwargs again when it is
    deserialized (``i=1`` comes back as ``i='1'``, under xdist too): put back the stored text."""
    context = getattr(report, "context", None)
    stored = data.get("_subtest.context")
    if (
        context is None
        or not isinstance(stored, dict)
        or not isinstance(stored.get("kwargs"), dict)
    ):
        return
    try:
        object.__setattr__(context, "kwargs", dict(stored["kwargs"]))
    except (AttributeError, TypeError):  # another subtests implementation: leave it
        pass


class _CarriedPass(pytest.TestReport):
    """A carried plain pass of the bulk replay. Its node id is a plain attribute: pytest 9.2
    parses every report's node id into a structured id when it is set (a third of the bulk
    replay's cost); here that happens only if something asks for ``report.id``."""

    nodeid = ""  # an instance attribute then wins over pytest's property

    @property
    def _id(self) -> Any:
        given = self.__dict__.get("_id")
        if given is not None:
            return given
        report = object.__new__(pytest.TestReport)
        report.nodeid = self.nodeid  # pytest's own parsing (pytest 9.2+: sets ``_id``)
        return report.__dict__.get("_id", self.nodeid)

    @_id.setter
    def _id(self, value: Any) -> None:
        self.__dict__["_id"] = value


def plain_reports(results: Iterable[ResultRecord]) -> list[pytest.TestReport]:
    """The one (call) report of each carried plain pass, for the bulk replay of thousands:
    each is a copy of a report made by pytest's constructor with the test's own fields set."""
    proto = pytest.TestReport("x", ("x", 0, "x"), {}, "passed", None, "call")
    base = {k: v for k, v in proto.__dict__.items() if k != "_id"}
    new, cls = object.__new__, _CarriedPass
    out: list[pytest.TestReport] = []
    for result in results:
        report = new(cls)
        fields = report.__dict__
        fields.update(base)
        test = result.test
        path, _, rest = test.partition("::")
        fields["nodeid"] = test
        fields["location"] = (path, result.line, rest.replace("::", ".") or path)
        fields["keywords"] = {}
        fields["user_properties"] = []
        fields["sections"] = []
        fields["duration"] = result.duration
        fields[CARRIED_ATTR] = result.attempt
        out.append(report)
    return out


class _Crash:
    def __init__(self, message: str, path: str, lineno: int) -> None:
        self.message = message
        self.path = path
        self.lineno = lineno


class TextLongrepr:
    """The stored failure text of a carried result, shown as pytest shows a failure."""

    def __init__(self, text: str, message: str, path: str, lineno: int) -> None:
        self.text = text
        self.reprcrash = _Crash(message, path, lineno)

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


def built_reports(result: ResultRecord) -> list[pytest.TestReport]:
    """setup, call and teardown reports built from a result's fields."""
    path = result.test.split("::", 1)[0]
    domain = result.test.split("::", 1)[1].replace("::", ".") if "::" in result.test else path
    location = (path, result.line, domain)
    lineno = (result.line or 0) + 1
    failure: Any = None
    if result.outcome in BAD_OUTCOMES:
        text = result.longrepr or result.message or result.outcome
        failure = TextLongrepr(text, result.message or text.strip().splitlines()[-1], path, lineno)
    phases: dict[str, tuple[str, Any, dict[str, Any]]] = {
        "setup": ("passed", None, {}),
        "call": ("passed", None, {}),
        "teardown": ("passed", None, {}),
    }
    outcome = result.outcome
    when = result.when if result.when in phases else "call"
    if outcome == "xpassed":
        phases["call"] = ("passed", None, {"wasxfail": result.message or ""})
    elif outcome in ("skipped", "xfailed"):
        extra: dict[str, Any] = {"wasxfail": result.message or ""} if outcome == "xfailed" else {}
        reason = (result.message or "Skipped") if outcome == "skipped" else ""
        longrepr: Any = (path, lineno, reason) if outcome == "skipped" else None
        phases[when] = ("skipped", longrepr, extra)
    elif outcome == "crashed":
        phases["call"] = ("failed", failure, {})
    elif outcome in ("failed", "error"):
        phases[when] = ("failed", failure, {})
    if when == "setup" and outcome != "passed":
        del phases["call"]
    reports = []
    for phase, (phase_outcome, longrepr, extra) in phases.items():
        reports.append(
            pytest.TestReport(
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
        )
    return reports


def carried_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """Category, letter and word of a replayed report: pytest's, with the word marked."""
    if is_subtest(report):
        return None  # the subtests plugin words its own reports
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


def skip_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stand in for the protocol of a test that is not run: run nothing, but tear down the
    fixtures pytest would tear down after it.

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
