"""Run a suspect test in a child process: blame needs proof, not a count of deaths.

When a single-process attempt died with tests in flight, nobody knows whether one of them
killed it or something from outside did (a CI timeout, the OOM killer, a user's kill). The
next single-process attempt runs each such test in a forked child first (pytest-forked's idea,
in ~60 lines instead of a dependency: we need the child's reports and how it died, nothing
else). The child runs the test's protocol and hands its reports back serialized; the parent
logs them as if the test had run in-process. Only if the child dies is the test recorded
``crashed``, with how it died (signal or exit code). An external kill of the parent blames
nobody, and the test never runs in the parent, so resuming cannot loop on it.

The child runs the test through pytest's ``pytest_runtest_protocol`` hook, as the parent would
have: plugins that own the protocol (pytest-rerunfailures' reruns, pytest-timeout's timer) act
there as in an uninterrupted run. Its log hooks (``logstart``, ``logreport``, ``logfinish``)
are kept for the parent instead of called (:class:`_KeepReports`), after the one hook the
terminal would have called for each in this process (``pytest_report_teststatus``, where
pytest 9 fails a test whose subtests failed), and so are the test's warnings (pytest's
warnings plugin records them through ``ihook.pytest_warning_recorded``; the parent records
them after the test, :func:`record_warnings`). The parent only waits, so
its own pytest-timeout timer, set around this protocol, is cancelled first: at the timeout it
would kill the parent (the thread method: the next attempt ran the test in a child again, for
ever) or raise inside the wait (the signal method: INTERNALERROR). The child's timer acts as
it would have in the parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import warnings
from typing import Any

import pytest

from pytest_resumable.results import report_from_json


def how_it_died(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        return f"signal {number} ({name})"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"wait status {status}"


def run_in_child(
    item: pytest.Item, nextitem: pytest.Item | None, quiet: Any = None
) -> tuple[list[pytest.TestReport] | None, list[dict[str, Any]], str]:
    """Run ``item``'s protocol in a forked child. ``(reports, warnings, "")`` if the child
    lived, the warnings as :func:`record_warnings` takes them; ``(None, [], how it died)``
    otherwise."""
    config = item.config
    cancel_timer = getattr(config.hook, "pytest_timeout_cancel_timer", None)
    if cancel_timer is not None:  # pytest-timeout: the child runs the test under its own timer
        cancel_timer(item=item)
    # an unnamed file (unlinked at once): a parent killed mid-test leaves nothing in the
    # temporary directory. The child inherits the descriptor; the offset is shared.
    with tempfile.TemporaryFile(prefix="pytest-resumable-child-") as f:
        fd = f.fileno()
        parent = os.getpid()
        with quiet() if quiet is not None else contextlib.nullcontext():
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; coverage does not see it
            code = 1
            try:
                _die_with(parent)
                reports, warned = _protocol_reports(item, nextitem)
                for report in reports:
                    # what logging them would have done here: pytest 9 fails a test whose
                    # subtests failed in this hook, from a count only this process has
                    config.hook.pytest_report_teststatus(report=report, config=config)
                data = {
                    "reports": [
                        config.hook.pytest_report_to_serializable(config=config, report=r)
                        for r in reports
                    ],
                    "warnings": [_warning_to_json(kwargs) for kwargs in warned],
                }
                view = memoryview(json.dumps(data, default=repr).encode("utf-8", "surrogatepass"))
                while view:
                    view = view[os.write(fd, view) :]
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            f.seek(0)
            data = json.loads(f.read().decode("utf-8", "surrogatepass"))
            found = [report_from_json(config, d) for d in data["reports"]]
            return [r for r in found if r is not None], data["warnings"], ""
        return None, [], how_it_died(status)


def _warning_to_json(kwargs: dict[str, Any]) -> dict[str, Any]:
    """In the child: one ``pytest_warning_recorded`` call, as JSON."""
    message = kwargs["warning_message"]
    category = message.category
    try:
        text = str(message.message)
    except Exception:  # a warning that cannot say itself must not cost the test its result
        text = f"<{getattr(category, '__name__', 'Warning')} that cannot be shown>"
    return {
        "message": text,
        "category": [getattr(category, "__module__", ""), getattr(category, "__qualname__", "")],
        "filename": str(message.filename),
        "lineno": message.lineno,
        "line": message.line,
        "when": kwargs.get("when", "runtest"),
        "nodeid": kwargs.get("nodeid", ""),
        "location": kwargs.get("location"),
    }


def record_warnings(item: pytest.Item, warned: list[dict[str, Any]]) -> None:
    """In the parent: the warnings the test raised in its child, recorded as pytest's warnings
    plugin would have recorded them here (the hook, not ``warnings.warn``: the child's filters
    already acted, ``-W error`` included)."""
    for w in warned:
        category = _category(*w["category"])
        text = w["message"]
        warning = warnings.WarningMessage(
            _message(category, text), category, w["filename"], w["lineno"], None, w["line"]
        )
        location = w["location"]
        item.ihook.pytest_warning_recorded.call_historic(
            kwargs={
                "warning_message": warning,
                "when": w["when"],
                "nodeid": w["nodeid"],
                "location": tuple(location) if location is not None else None,
            }
        )


def _category(module: str, qualname: str) -> type[Warning]:
    """The warning class the child named, as this process has it (the parent collected the
    same modules); a stand-in of the same name if it has none."""
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, Warning):
        return found
    return type(qualname.rsplit(".", 1)[-1] or "Warning", (Warning,), {"__module__": module})


def _message(category: type[Warning], text: str) -> Warning | str:
    try:
        made = category(text)
        if str(made) == text:
            return made
    except Exception:  # a warning class of its own making: its text stands for it
        pass
    return text


_LOG_HOOKS = frozenset(("pytest_runtest_logstart", "pytest_runtest_logfinish"))


class _KeepReports:
    """A node's hook relay (``node.ihook``) in the child: a test's reports and warnings are
    kept for the parent, which logs and records them; every other hook is the real one."""

    def __init__(
        self, relay: Any, reports: list[pytest.TestReport], warned: list[dict[str, Any]]
    ) -> None:
        self._relay = relay
        self._reports = reports
        self._warnings = warned

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._reports.append(report)

    @property
    def pytest_warning_recorded(self) -> _KeepWarnings:
        return _KeepWarnings(self._warnings)

    def __getattr__(self, name: str) -> Any:
        if name in _LOG_HOOKS:
            return _nothing
        return getattr(self._relay, name)


class _KeepWarnings:
    """``ihook.pytest_warning_recorded`` in the child: pytest's warnings plugin records the
    test's warnings through it (``call_historic``); they are kept for the parent."""

    def __init__(self, warned: list[dict[str, Any]]) -> None:
        self._warned = warned

    def call_historic(self, result_callback: Any = None, kwargs: Any = None) -> None:
        self._warned.append(dict(kwargs or {}))


def _nothing(**kwargs: Any) -> None:
    return None


def _protocol_reports(
    item: pytest.Item, nextitem: pytest.Item | None
) -> tuple[list[pytest.TestReport], list[dict[str, Any]]]:
    """In the child: run ``item`` through ``pytest_runtest_protocol`` (this attempt's
    isolation no longer claims it); its reports, not logged, and its warnings, not
    recorded."""
    session = item.session
    relay_for = session.gethookproxy
    reports: list[pytest.TestReport] = []
    warned: list[dict[str, Any]] = []

    def keeping(fspath: Any) -> Any:
        return _KeepReports(relay_for(fspath), reports, warned)

    # every node's ``ihook`` is ``session.gethookproxy(its path)``; this process ends after
    # the test, so nothing else sees the change
    session.gethookproxy = keeping  # type: ignore[method-assign]
    item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
    return reports, warned


def _die_with(parent: int) -> None:
    """The child must not outlive the parent: killed from outside, the whole attempt ends."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):  # not Linux: the child finishes its test alone
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
