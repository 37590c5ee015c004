"""A few hundred quick tests, two of which fail."""

import pytest


@pytest.mark.parametrize("n", range(200))
def test_square_is_non_negative(n: int) -> None:
    assert n * n >= 0


@pytest.mark.parametrize("word", ["alpha", "beta", "gamma", "delta", "epsilon"] * 10)
def test_words_are_lowercase(word: str) -> None:
    assert word == word.lower()


def test_known_bug() -> None:
    assert sorted([3, 1, 2]) == [1, 2, 3, 4], "a real failure: it stays red across attempts"


@pytest.mark.skip(reason="needs a GPU")
def test_skipped() -> None:
    raise AssertionError("never runs")


@pytest.mark.xfail(reason="tracked upstream")
def test_expected_failure() -> None:
    assert 1 + 1 == 3
