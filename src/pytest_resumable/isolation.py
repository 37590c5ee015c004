"""Run a suspect test in a child process: blame needs proof, not a count of deaths.

When a single-process attempt died with tests in flight, nobody knows whether one of them
killed it or something from outside did (a CI timeout, the OOM killer, a user's kill). The
next single-process attempt runs each such test in a forked child first (pytest-forked's idea,
in ~60 lines instead of a dependency: we need the child's reports and how it died, nothing
else). The child runs the test's protocol and hands its reports back serialized; the parent
logs them as if the test had run in-process. Only if the child dies is the test recorded
``crashed``, with how it died (signal or exit code). An external kill of the parent blames
nobody, and the test never runs in the parent, so resuming cannot loop on it.
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
    from _pytest.runner import runtestprotocol  # what pytest-forked uses too; no public API

    config = item.config
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
                reports = runtestprotocol(item, nextitem=nextitem, log=False)
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
