"""order.py: the order xdist hands tests out in (pure functions)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_resumable.order import ORDERED_MODES, run_order, scope_of, snake

MODULES = ["a.py", "b.py", "sub/c.py"]
node_ids = st.builds(
    lambda mod, cls, name, group: (
        f"{mod}::{cls + '::' if cls else ''}test_{name}{'@' + group if group else ''}"
    ),
    st.sampled_from(MODULES),
    st.sampled_from(["", "TestA", "TestB"]),
    st.text("abcxyz[]-0123", min_size=1, max_size=6),
    st.sampled_from(["", "", "g1", "g2"]),
)
suites = st.lists(node_ids, min_size=0, max_size=60, unique=True)
durations_for = st.dictionaries(node_ids, st.floats(0, 100, allow_nan=False), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    tests=suites,
    durations=durations_for,
    mode=st.sampled_from([*ORDERED_MODES, "each", "no"]),
    workers=st.integers(1, 8),
    data=st.data(),
)
def test_run_order_is_a_deterministic_permutation_that_keeps_groups_whole(
    tests: list[str],
    durations: dict[str, float],
    mode: str,
    workers: int,
    data: st.DataObject,
) -> None:
    skip = set(data.draw(st.lists(st.sampled_from(tests), unique=True) if tests else st.just([])))
    order = run_order(tests, durations, mode=mode, workers=workers, skip=skip)
    assert sorted(order) == list(range(len(tests)))
    assert order == run_order(tests, dict(durations), mode=mode, workers=workers, skip=set(skip))
    scope = scope_of(mode)
    ordered = [tests[i] for i in order]
    if scope is not None:
        # every group is one consecutive block: never split
        seen: list[str] = []
        for test in ordered:
            key = scope(test)
            if seen and seen[-1] == key:
                continue
            assert key not in seen, f"group {key} split"
            seen.append(key)
    elif mode in ORDERED_MODES:
        # tests that will not run come last
        runnable = [t for t in ordered if t not in skip]
        assert ordered[: len(runnable)] == runnable
    else:
        assert order == list(range(len(tests)))


def test_longest_first_and_the_first_chunks_dealt_fairly() -> None:
    tests = [f"t.py::test_{i}" for i in range(40)]
    durations = dict.fromkeys(tests, 1.0)
    durations["t.py::test_38"] = 30.0
    durations["t.py::test_39"] = 20.0
    # load with 2 workers: each first gets 40 // 2 // 4 = 5 consecutive tests
    order = [tests[i] for i in run_order(tests, durations, mode="load", workers=2)]
    assert order[0] == "t.py::test_38"
    assert order[5] == "t.py::test_39"  # the second longest starts the second worker's chunk
    # worksteal: two halves, one long test each
    order = [tests[i] for i in run_order(tests, durations, mode="worksteal", workers=2)]
    assert order[0] == "t.py::test_38"
    assert order[20] == "t.py::test_39"


def test_groups_ordered_by_total_duration() -> None:
    tests = ["a.py::test_1", "a.py::test_2", "b.py::test_1", "c.py::test_1", "c.py::test_2"]
    durations = {"a.py::test_1": 1, "a.py::test_2": 1, "b.py::test_1": 5, "c.py::test_1": 3}
    # c.py::test_2 is untimed: the median of known ones, 2.0 -> c.py totals 5.0, ties keep
    # collection order, so b.py (5.0, collected before c.py) comes first
    order = [tests[i] for i in run_order(tests, durations, mode="loadfile", workers=1)]
    assert order == ["b.py::test_1", "c.py::test_1", "c.py::test_2", "a.py::test_1", "a.py::test_2"]


def test_untimed_tests_get_the_median() -> None:
    tests = ["t::a", "t::b", "t::c", "t::new"]
    durations = {"t::a": 1.0, "t::b": 9.0, "t::c": 5.0}
    order = [tests[i] for i in run_order(tests, durations, mode="load", workers=1)]
    assert order == ["t::b", "t::c", "t::new", "t::a"]  # new = median 5.0, after c (tie)


def test_snake() -> None:
    assert snake(list(range(7)), 3) == [[0, 5, 6], [1, 4], [2, 3]]
