"""``--shard K/N``: which tests belong to which shard (SPEC §4.10). Pure, no pytest.

A shard's assignment is decided once per CI run and then frozen: the first shard of a run to
start partitions the selection by recorded durations and records the whole split; a retry of
that shard, and the other shards of the same CI run (same ``--resume-id``), apply that split
instead of partitioning again, so they agree whatever durations were recorded in between.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_resumable.order import estimate

Source = Literal["fresh", "frozen", "adopted"]


@dataclass(frozen=True)
class ShardRule:
    """The resolved shard decision of an attempt, made once on the controller.

    ``selection`` and ``assignment`` (the 0-based shard of each selected test) are set when
    the split is fixed already: ``frozen`` on this run's first attempt, or ``adopted`` from
    another shard of this CI run (``adopted_from`` names it). ``fresh``: the split is made
    from the collected tests and ``durations`` by :func:`partition`, identically everywhere.
    """

    k: int
    n: int
    source: Source = "fresh"
    selection: tuple[str, ...] = ()
    assignment: tuple[int, ...] = ()
    adopted_from: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.k}/{self.n}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "n": self.n,
            "source": self.source,
            "selection": list(self.selection),
            "assignment": list(self.assignment),
            "adopted_from": self.adopted_from,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardRule:
        return cls(
            k=int(data["k"]),
            n=int(data["n"]),
            source=data["source"],
            selection=tuple(data["selection"]),
            assignment=tuple(int(a) for a in data["assignment"]),
            adopted_from=data.get("adopted_from"),
        )


@dataclass(frozen=True)
class Split:
    """The split of a selection: what a shard record stores."""

    selection: tuple[str, ...]
    assignment: tuple[int, ...]

    def own(self, k: int) -> tuple[str, ...]:
        return tuple(t for t, a in zip(self.selection, self.assignment, strict=True) if a == k - 1)


def partition(tests: Sequence[str], durations: Mapping[str, float], shards: int) -> list[int]:
    """The 0-based shard of each of ``tests``: nearly equal expected time per shard.

    Greedy, longest first (ties by node id), each test to the shard with the least time so far
    (ties to the lowest shard). Same input, same split, on every machine.
    """
    # a test of 0 s still counts a little, so that untimed suites are dealt round-robin
    weight = {t: max(w, 1e-6) for t, w in zip(tests, estimate(tests, durations), strict=True)}
    loads = [(0.0, k) for k in range(shards)]
    owner: dict[str, int] = {}
    for test in sorted(weight, key=lambda t: (-weight[t], t)):
        load, k = heapq.heappop(loads)
        owner[test] = k
        heapq.heappush(loads, (load + weight[test], k))
    return [owner[t] for t in tests]


def stable_shard(nodeid: str, shards: int) -> int:
    """The shard (0-based) of a test that appeared after the split was frozen."""
    digest = hashlib.blake2b(nodeid.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def split_for(rule: ShardRule, ids: Sequence[str], durations: Mapping[str, float]) -> Split:
    """The split this attempt applies: the fixed one, or a fresh partition of ``ids``."""
    if rule.source != "fresh":
        return Split(rule.selection, rule.assignment)
    return Split(tuple(ids), tuple(partition(ids, durations, rule.n)))


def members(rule: ShardRule, ids: Sequence[str], split: Split) -> list[str]:
    """The tests of shard ``rule.k`` among ``ids``, in their order. A test the split does not
    know (added since it was frozen) goes to one shard by :func:`stable_shard`."""
    owner = dict(zip(split.selection, split.assignment, strict=True))
    mine = rule.k - 1
    out = []
    for test in ids:
        shard = owner.get(test)
        if shard is None:
            shard = stable_shard(test, rule.n)
        if shard == mine:
            out.append(test)
    return out
