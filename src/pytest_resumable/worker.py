"""On an xdist worker: apply the resolved plan the controller sent. Never opens the journal.

The controller reads the journal once, at session start, and sends each worker (a replacement
started after a crash included) the same :class:`WorkerSnapshot` through ``workerinput``. From
it and the collected items, every worker computes the same split: the tests to run now, in the
order they should be handed out, and the tests that are not run now (carried results, other
shards' tests). The worker keeps only the first in its items, so xdist's collection list (what
the scheduler hands out) holds nothing else; the second goes to the controller as one JSON
string through an execnet channel of our own (handed over in ``workerinput``, sent before
xdist's ``collectionfinish`` event on the same connection, so it is there when that event is
handled): the controller replays exactly the carried tests that are in this selection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_resumable.values import Frozen

if TYPE_CHECKING:  # imported when sharding: a worker of a plain run does not pay for it
    from pytest_resumable.sharding import ShardRule

WORKERINPUT_KEY = "resumable"
#: an execnet channel in ``workerinput``: the worker sends :func:`not_run_now_message` on it
CHANNEL_KEY = "resumable_channel"


class WorkerSnapshot(Frozen):
    """What a worker needs of the attempt's plan, resolved on the controller."""

    run: str
    attempt: int
    #: tests whose results are carried: not run
    carried: frozenset[str]
    #: ``duration`` (longest first) or ``none``
    order: str
    #: xdist's ``--dist`` mode, as the controller has it (a worker's own config says "no")
    dist: str
    durations: Mapping[str, float]
    shard: ShardRule | None

    def __init__(
        self,
        run: str,
        attempt: int,
        carried: frozenset[str] = frozenset(),
        order: str = "none",
        dist: str = "load",
        durations: Mapping[str, float] | None = None,
        shard: ShardRule | None = None,
    ) -> None:
        self.__dict__.update(
            run=run,
            attempt=attempt,
            carried=carried,
            order=order,
            dist=dist,
            durations={} if durations is None else durations,
            shard=shard,
        )

    def to_dict(self) -> dict[str, Any]:
        """What goes into ``workerinput``: the two big collections as one JSON string each, so
        execnet sends two strings instead of tens of thousands of items (~2 µs each) to every
        worker, and the worker decodes them at C speed."""
        return {
            "run": self.run,
            "attempt": self.attempt,
            "carried": json.dumps(sorted(self.carried), ensure_ascii=False),
            "order": self.order,
            "dist": self.dist,
            "durations": json.dumps(dict(self.durations), ensure_ascii=False),
            "shard": self.shard.to_dict() if self.shard is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerSnapshot:
        shard: ShardRule | None = None
        if data.get("shard") is not None:
            from pytest_resumable.sharding import ShardRule

            shard = ShardRule.from_dict(data["shard"])
        return cls(
            run=str(data["run"]),
            attempt=int(data["attempt"]),
            carried=frozenset(json.loads(data["carried"])),
            order=str(data["order"]),
            dist=str(data["dist"]),
            durations=json.loads(data["durations"]),
            shard=shard,
        )


def arrange(
    snapshot: WorkerSnapshot, ids: Sequence[str], workers: int, maxschedchunk: int | None
) -> tuple[list[int], int]:
    """The positions of ``ids`` in the order they are handed out, and how many of them are run
    now (the rest, at the end, are not: the worker drops them and tells the controller). Pure:
    every worker computes the same from the same snapshot."""
    from pytest_resumable.order import run_order

    mine: set[str] | None = None
    if snapshot.shard is not None:
        from pytest_resumable.sharding import members, split_for

        split = split_for(snapshot.shard, ids, snapshot.durations)
        mine = set(members(snapshot.shard, ids, split))
    skip = snapshot.carried
    if mine is not None:
        skip = skip | {t for t in ids if t not in mine}
    if snapshot.order == "duration":
        order = run_order(
            ids,
            snapshot.durations,
            mode=snapshot.dist,
            workers=workers,
            skip=skip,
            maxschedchunk=maxschedchunk,
        )
    else:
        order = list(range(len(ids)))
    runnable = [i for i in order if ids[i] not in skip]
    rest = [i for i in order if ids[i] in skip]
    return runnable + rest, len(runnable)


def not_run_now_message(rest: Sequence[str] | None) -> dict[str, Any]:
    """What a worker sends on the channel: the node ids of the tests it does not run now, as
    one JSON string (execnet sends a list item by item, ~2 µs an id on each side); ``None``
    when its collection failed before the tests were split (a usage error: no test runs)."""
    return {"rest": None if rest is None else json.dumps(list(rest), ensure_ascii=False)}


#: what :func:`read_not_run_now` returns for a worker whose collection failed
COLLECTION_FAILED: list[str] = []


def read_not_run_now(message: Any) -> list[str] | None:
    """The controller's side of :func:`not_run_now_message`: the ids, the
    :data:`COLLECTION_FAILED` object, or ``None`` if the message is not one."""
    if not isinstance(message, dict) or "rest" not in message:
        return None
    rest = message["rest"]
    if rest is None:
        return COLLECTION_FAILED
    if not isinstance(rest, str):
        return None
    try:
        ids = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(ids, list) or not all(isinstance(t, str) for t in ids):
        return None
    return ids


class WorkerPlugin:
    """Registered on an xdist worker when the controller sent a snapshot."""

    def __init__(self, snapshot: WorkerSnapshot, channel: Any) -> None:
        self.snapshot = snapshot
        self.channel = channel
        #: the tests this worker does not run now; ``None`` until its collection is split
        self.rest: list[str] | None = None

    @pytest.hookimpl(trylast=True)  # after -k / -m, and after xdist named loadgroup groups
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Called on the worker after collection: keeps the tests to run now, longest first
        when ordering by duration."""
        ids = [item.nodeid for item in items]
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        order, run_now = arrange(
            self.snapshot,
            ids,
            int(workerinput.get("workercount", 1)),
            config.getoption("maxschedchunk", None),
        )
        items[:] = [items[i] for i in order[:run_now]]
        self.rest = [ids[i] for i in order[run_now:]]

    @pytest.hookimpl(tryfirst=True)  # before xdist's own, which sends "collectionfinish"
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Called on the worker when collection ends, also when it failed (a usage error
        raised by ``-k``, ``-m`` or a node id that does not exist, before the split): tells
        the controller which tests it left out, just before xdist sends its list."""
        self.channel.send(not_run_now_message(self.rest))
        self.channel.close()
