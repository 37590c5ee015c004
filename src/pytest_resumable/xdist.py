"""pytest-xdist hooks: registered only when xdist is present; workers never open the journal.

The controller reads the journal once, at session start. What a worker needs of it (the run,
the tests whose results are carried) travels in ``workerinput`` from that one snapshot, so every
worker, a replacement started after a crash included, collects the same list.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
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
        session = self.session
        if session.active:
            settings = session.settings
            option = session.config.option
            if settings.order == "duration" and getattr(option, "loadscopereorder", False):
                # xdist's loadscope/loadfile/loadgroup would re-sort the groups by their number
                # of tests; the workers' order (by total duration) replaces that
                option.loadscopereorder = False
            node.workerinput[WORKERINPUT_KEY] = {
                "run": session.run_id,
                "attempt": session.attempt,
                "carried": sorted(session.carried),
                "order": settings.order,
                # the worker's own config says "no": xdist sets the mode on the controller
                "dist": str(getattr(session.config.option, "dist", "load")),
                "durations": session.durations,
                "shard": list(settings.shard) if settings.shard else None,
                "frozen": [list(session.frozen[0]), list(session.frozen[1])]
                if session.frozen
                else None,
            }

    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        """Called by xdist on the controller when a worker has collected.

        All workers collect the same list; the first one tells the controller the selection.
        """
        session = self.session
        if not session.active or session.selected is not None:
            return
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if session.settings.shard is not None:
            # workers keep every test collected (the controller needs the whole selection to
            # freeze the assignment) and skip the other shards' tests; report those deselected
            mine = session.shard_of(list(ids))
            session.set_selected(mine)
            if tr is not None:
                mine_set = set(mine)
                tr.stats.setdefault("deselected", []).extend(
                    SimpleNamespace(nodeid=t) for t in ids if t not in mine_set
                )
                tr.write_line(session.shard_line())
        else:
            session.set_selected(ids)
        if session.resumed and tr is not None:
            tr.write_line(session.header_line())


class WorkerPlugin:
    """On an xdist worker: skip the tests whose result is carried (the controller replays it)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.carried = frozenset(snapshot.get("carried", ()))
        #: tests not run here: carried, or another shard's
        self.skip: frozenset[str] = self.carried
        self.snapshot = snapshot

    @pytest.hookimpl(trylast=True)  # after -k / -m, and after xdist named loadgroup groups
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Called on the worker after collection: leave out other shards' tests and order the
        rest longest first. The same snapshot on every worker gives the same list."""
        from pytest_resumable.order import run_order, shard_tests

        snapshot = self.snapshot
        durations: dict[str, float] = snapshot.get("durations") or {}
        ids = [item.nodeid for item in items]
        others: set[str] = set()
        shard = snapshot.get("shard")
        if shard:
            frozen = snapshot.get("frozen")
            mine = set(
                shard_tests(ids, shard[0], shard[1], durations, tuple(frozen) if frozen else None)
            )
            others = {t for t in ids if t not in mine}
            self.skip = self.carried | others
        if snapshot.get("order") != "duration":
            if others:  # still: the other shards' tests last
                items[:] = [i for i in items if i.nodeid not in others] + [
                    i for i in items if i.nodeid in others
                ]
            return
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        order = run_order(
            ids,
            durations,
            mode=str(snapshot.get("dist", "load")),
            workers=int(workerinput.get("workercount", 1)),
            skip=self.skip,
            maxschedchunk=config.getoption("maxschedchunk", None),
        )
        items[:] = [items[i] for i in order]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        """Called by xdist's worker loop for each test it was handed."""
        if item.nodeid not in self.skip:
            return None
        from pytest_resumable.replay import skip_carried

        skip_carried(item, nextitem)
        return True
