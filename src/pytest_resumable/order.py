"""The order xdist hands tests out in: longest recorded duration first, so workers finish
together (SPEC §4.9). Pure functions, no pytest: the same input gives the same order on every
worker.

xdist schedulers take tests from the front of the collection, so the order *is* the schedule,
with one twist each: ``load`` first gives every worker a chunk of consecutive tests,
``worksteal`` splits the whole list into one consecutive part per worker, and ``loadscope`` /
``loadfile`` / ``loadgroup`` first give every worker two groups. Putting the longest tests
first would put them all in the first worker's chunk, so those initial slices are *dealt*, as
cards are, in snake order (1 2 3 4 4 3 2 1 ...): every worker starts with a fair share, longest
first, and the rest follows longest first to whichever worker is free.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

#: --dist modes whose unit of scheduling is a group of tests, and how each finds the group
GROUP_MODES = ("loadscope", "loadfile", "loadgroup")
#: --dist modes this module orders; "each" and "no" are left alone
ORDERED_MODES = ("load", "worksteal", *GROUP_MODES)


def scope_of(mode: str) -> Callable[[str], str] | None:
    """The group key xdist uses for a node id under ``mode`` (None: tests are not grouped)."""
    if mode == "loadscope":
        return _loadscope
    if mode == "loadfile":
        return _loadfile
    if mode == "loadgroup":
        return _loadgroup
    return None


def _loadscope(nodeid: str) -> str:
    return nodeid.rsplit("::", 1)[0]


def _loadfile(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _loadgroup(nodeid: str) -> str:
    if "@" in nodeid:
        return nodeid.split("@")[-1]
    return _loadscope(nodeid)


def estimate(tests: Sequence[str], durations: Mapping[str, float]) -> list[float]:
    """Each test's expected duration: its recorded one, else the median of the known ones."""
    known = [durations[t] for t in tests if t in durations]
    default = _median(known) if known else 1.0
    return [durations.get(t, default) for t in tests]


def _median(values: list[float]) -> float:
    # statistics.median, without importing statistics (and fractions) in every session
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def snake(items: Sequence[int], ways: int) -> list[list[int]]:
    """Deal ``items`` into ``ways`` hands in snake order: 0 1 2 2 1 0 0 1 2 ..."""
    hands: list[list[int]] = [[] for _ in range(ways)]
    for i, item in enumerate(items):
        turn, pos = divmod(i, ways)
        hands[pos if turn % 2 == 0 else ways - 1 - pos].append(item)
    return hands


def run_order(
    tests: Sequence[str],
    durations: Mapping[str, float],
    *,
    mode: str,
    workers: int,
    skip: Collection[str] = (),
    maxschedchunk: int | None = None,
) -> list[int]:
    """The positions of ``tests`` in the order they should be collected (a permutation).

    ``skip``: tests that will not run (carried results); they go last, in collection order,
    and weigh nothing in a group. Ties keep collection order. ``mode`` is xdist's ``--dist``;
    for a mode this module does not order, the collection order is returned.
    """
    n = len(tests)
    if mode not in ORDERED_MODES or n < 2:
        return list(range(n))
    workers = max(1, workers)
    weight = estimate(tests, durations)
    scope = scope_of(mode)
    if scope is not None:
        return _group_order(tests, weight, scope, skip, workers)
    runnable = [i for i in range(n) if tests[i] not in skip]
    rest = [i for i in range(n) if tests[i] in skip]
    runnable.sort(key=lambda i: -weight[i])  # stable: ties keep collection order
    if workers == 1:
        return runnable + rest
    if mode == "worksteal":
        # worksteal splits the list into one consecutive part per worker, equal in count
        hands = snake(runnable, workers)
        return [i for hand in hands for i in hand] + rest
    # load: each worker first gets ``chunk`` consecutive tests, then more as it needs them
    if n < 2 * workers:
        return runnable + rest  # dealt round-robin one by one: longest first already is fair
    chunk = max(2, min(n // workers // 4, maxschedchunk or n))
    first = runnable[: chunk * workers]
    hands = snake(first, workers)
    return [i for hand in hands for i in hand] + runnable[chunk * workers :] + rest


def _group_order(
    tests: Sequence[str],
    weight: Sequence[float],
    scope: Callable[[str], str],
    skip: Collection[str],
    workers: int,
) -> list[int]:
    groups: dict[str, list[int]] = {}
    for i, test in enumerate(tests):
        groups.setdefault(scope(test), []).append(i)
    totals = {
        key: sum(weight[i] for i in members if tests[i] not in skip)
        for key, members in groups.items()
    }
    keys = sorted(groups, key=lambda k: -totals[k])  # stable: ties keep first appearance
    # the scheduler first gives every worker one group, then a second: deal those snake-wise
    keys = keys[:workers] + keys[workers : 2 * workers][::-1] + keys[2 * workers :]
    return [i for key in keys for i in groups[key]]
