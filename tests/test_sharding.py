"""sharding.py: the split of a selection into shards, fresh, frozen or adopted (pure)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_resumable.sharding import ShardRule, Split, members, partition, split_for, stable_shard

node_ids = st.text("abcxyz[]-:0123", min_size=1, max_size=8)
suites = st.lists(node_ids, min_size=0, max_size=60, unique=True)
durations_for = st.dictionaries(node_ids, st.floats(0, 100, allow_nan=False), max_size=60)


@settings(max_examples=300, deadline=None)
@given(tests=suites, durations=durations_for, shards=st.integers(1, 9))
def test_every_test_is_in_exactly_one_shard(
    tests: list[str], durations: dict[str, float], shards: int
) -> None:
    got = []
    for k in range(1, shards + 1):
        rule = ShardRule(k, shards)
        got.extend(members(rule, tests, split_for(rule, tests, durations)))
    assert Counter(got) == Counter(tests)
    assert partition(tests, durations, shards) == partition(list(tests), dict(durations), shards)


@settings(max_examples=200, deadline=None)
@given(
    before=suites,
    added=suites,
    durations=durations_for,
    later=durations_for,
    shards=st.integers(1, 6),
)
def test_a_fixed_split_keeps_its_tests_whatever_the_durations_say_now(
    before: list[str],
    added: list[str],
    durations: dict[str, float],
    later: dict[str, float],
    shards: int,
) -> None:
    split = Split(tuple(before), tuple(partition(before, durations, shards)))
    now = before + [t for t in added if t not in before]
    got = []
    for k in range(1, shards + 1):
        for source in ("frozen", "adopted"):
            rule = ShardRule(k, shards, source, split.selection, split.assignment)  # type: ignore[arg-type]
            mine = members(rule, now, split_for(rule, now, later))
            assert [t for t in mine if t in before] == list(split.own(k))
        got.extend(mine)
    # every test that appeared since the split was frozen is in exactly one shard
    assert Counter(got) == Counter(now)
    for t in now:
        if t not in before:
            assert t in [x for k in range(shards) for x in got if stable_shard(x, shards) == k]


def test_greedy_balance_on_skewed_durations() -> None:
    tests = [f"t::{i}" for i in range(200)]
    durations = {t: (10.0 if i % 50 == 0 else 0.1 + (i % 7) * 0.05) for i, t in enumerate(tests)}
    for n in (2, 4, 8):
        owner = partition(tests, durations, n)
        loads = [
            sum(durations[t] for t, o in zip(tests, owner, strict=True) if o == k) for k in range(n)
        ]
        bound = max(sum(durations.values()) / n, max(durations.values()))
        assert max(loads) <= 1.05 * bound, (n, loads, bound)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_stable_shard_is_in_range_and_stable(n: int) -> None:
    values = {stable_shard(f"t::{i}", n) for i in range(200)}
    assert values <= set(range(n))
    assert stable_shard("t::x", n) == stable_shard("t::x", n)
    if n > 1:
        assert len(values) == n


def test_rule_round_trips_through_a_dict() -> None:
    rule = ShardRule(2, 3, "adopted", ("a", "b"), (1, 0), "1/3")
    assert ShardRule.from_dict(rule.to_dict()) == rule
