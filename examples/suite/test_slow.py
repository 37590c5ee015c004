"""Slow tests: what makes an interruption expensive."""

import time

import pytest


@pytest.mark.parametrize("i", range(40))
def test_slow_computation(i: int) -> None:
    time.sleep(0.1 + (i % 5) * 0.05)
    assert i < 1000


@pytest.mark.parametrize("i", range(4))
def test_very_slow_integration(i: int) -> None:
    time.sleep(1.0)
    assert i != 2, "integration test 2 fails"
