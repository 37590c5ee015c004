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
pytest 9 fails a test whose subtests failed). The parent only waits, so
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
import tempfile
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
) -> tuple[list[pytest.TestReport] | None, str]:
    """Run ``item``'s protocol in a forked child. ``(reports, "")`` if the child lived;
    ``(None, how it died)`` otherwise."""
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
                reports = _protocol_reports(item, nextitem)
                for report in reports:
                    # what logging them would have done here: pytest 9 fails a test whose
                    # subtests failed in this hook, from a count only this process has
                    config.hook.pytest_report_teststatus(report=report, config=config)
                data = [
                    config.hook.pytest_report_to_serializable(config=config, report=r)
                    for r in reports
                ]
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
            found = [report_from_json(config, d) for d in data]
            return [r for r in found if r is not None], ""
        return None, how_it_died(status)


_LOG_HOOKS = frozenset(("pytest_runtest_logstart", "pytest_runtest_logfinish"))


class _KeepReports:
    """A node's hook relay (``node.ihook``) in the child: a test's reports are kept for the
    parent, which logs them; every other hook is the real one."""

    def __init__(self, relay: Any, reports: list[pytest.TestReport]) -> None:
        self._relay = relay
        self._reports = reports

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._reports.append(report)

    def __getattr__(self, name: str) -> Any:
        if name in _LOG_HOOKS:
            return _nothing
        return getattr(self._relay, name)


def _nothing(**kwargs: Any) -> None:
    return None


def _protocol_reports(item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.TestReport]:
    """In the child: run ``item`` through ``pytest_runtest_protocol`` (this attempt's
    isolation no longer claims it); its reports, not logged."""
    session = item.session
    relay_for = session.gethookproxy
    reports: list[pytest.TestReport] = []

    def keeping(fspath: Any) -> Any:
        return _KeepReports(relay_for(fspath), reports)

    # every node's ``ihook`` is ``session.gethookproxy(its path)``; this process ends after
    # the test, so nothing else sees the change
    session.gethookproxy = keeping  # type: ignore[method-assign]
    item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
    return reports


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
