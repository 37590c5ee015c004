"""--resume-order under real xdist workers: the longest recorded tests (or groups) start
first, identically on every worker (issue #8)."""

from __future__ import annotations

import pytest

from conftest import Suite

LIGHT = """
import time, pytest
@pytest.mark.parametrize("i", range(6))
def test_l(i):
    time.sleep(0.01)
"""
HEAVY = """
import time, pytest
@pytest.mark.parametrize("i", range(2))
def test_h(i):
    time.sleep(0.25)
"""


@pytest.fixture
def learned(suite: Suite, pytester: pytest.Pytester) -> Suite:
    # the heavy module is collected last
    pytester.makepyfile(test_a=LIGHT, test_b=LIGHT, test_z=HEAVY)
    assert pytester.runpytest_subprocess("-n", "2", "--resume-order", "none").ret == 0
    suite.take_ran()
    return suite


@pytest.mark.parametrize("dist", ["load", "worksteal", "loadfile", "loadscope", "loadgroup"])
def test_longest_recorded_tests_start_first(
    learned: Suite, pytester: pytest.Pytester, dist: str
) -> None:
    result = pytester.runpytest_subprocess("-n", "2", "--dist", dist)
    assert result.ret == 0
    ran = learned.take_ran()
    assert len(ran) == 14
    heavy = {"test_z.py::test_h[0]", "test_z.py::test_h[1]"}
    if dist in ("load", "worksteal"):
        # one heavy test is the first test of each worker
        assert set(ran[:2]) == heavy, ran
    else:
        # the heavy module is one group, handed out first (workers start in either order)
        assert heavy & set(ran[:2]), ran


@pytest.mark.parametrize("dist", ["load", "loadfile"])
def test_order_none_keeps_collection_order(
    learned: Suite, pytester: pytest.Pytester, dist: str
) -> None:
    result = pytester.runpytest_subprocess("-n", "2", "--dist", dist, "--resume-order", "none")
    assert result.ret == 0
    ran = learned.take_ran()
    assert not set(ran[:2]) & {"test_z.py::test_h[0]", "test_z.py::test_h[1]"}
