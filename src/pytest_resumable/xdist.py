"""pytest-xdist hooks: registered only when xdist is present; workers never open the journal.

The controller reads the journal once, at session start. What a worker needs of it (the run,
the tests whose results are carried) travels in ``workerinput`` from that one snapshot, so every
worker, a replacement started after a crash included, collects the same list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_resumable.session import ResumableSession

WORKERINPUT_KEY = "resumable"


class ControllerXdistHooks:
    """xdist hooks of the controller: hand the snapshot out, learn the selection."""

    def __init__(self, session: ResumableSession) -> None:
        self.session = session

    def pytest_configure_node(self, node: Any) -> None:
        """Called by xdist on the controller for every worker it starts (or restarts)."""
        if self.session.active:
            node.workerinput[WORKERINPUT_KEY] = {
                "run": self.session.run_id,
                "attempt": self.session.attempt,
                "carried": sorted(self.session.carried),
            }

    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        """Called by xdist on the controller when a worker has collected.

        All workers collect the same list; the first one tells the controller the selection.
        """
        session = self.session
        if not session.active or session.selected is not None:
            return
        session.set_selected(ids)
        if session.resumed:
            tr = session.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(session.header_line())


class WorkerPlugin:
    """On an xdist worker: skip the tests whose result is carried (the controller replays it)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.carried = frozenset(snapshot.get("carried", ()))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        """Called by xdist's worker loop for each test it was handed."""
        if item.nodeid not in self.carried:
            return None
        from pytest_resumable.replay import skip_carried

        skip_carried(item, nextitem)
        return True
