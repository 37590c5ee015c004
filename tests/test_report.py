"""The report of a resumed attempt covers the whole run: stats line, short summary, JUnit XML
and exit status (issue #4), with and without xdist."""

from __future__ import annotations

import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import Suite, interrupt, literal

# 50 tests of every kind pytest reports: passes, failures with messages, skips (marker and
# in-body), xfails, a non-strict and a strict xpass, errors in setup and in teardown, tests in
# a class and in a second module.
MIXED_A = """
import pytest

@pytest.fixture
def broken_setup():
    raise RuntimeError("setup exploded")

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown exploded")

@pytest.mark.parametrize("i", range(20))
def test_p(i):
    assert i % 7 != 3, f"p{i} is a multiple of 7 plus 3"

@pytest.mark.skip(reason="not on this platform")
def test_skip_marker():
    pass

def test_skip_in_body():
    pytest.skip("skipped from the body")

@pytest.mark.xfail(reason="known bug 12")
def test_xfail():
    assert 0

@pytest.mark.xfail(reason="fixed already")
def test_xpass():
    pass

@pytest.mark.xfail(reason="strict one", strict=True)
def test_xpass_strict():
    pass

def test_setup_error(broken_setup):
    pass

def test_teardown_error(broken_teardown):
    pass

class TestGroup:
    @pytest.mark.parametrize("j", range(8))
    def test_c(self, j):
        assert j != 4, "four in the class"
"""

MIXED_B = """
import pytest

@pytest.mark.parametrize("k", range(15))
def test_q(k):
    if k == 11:
        pytest.skip(f"k={k} skipped")
    assert k != 13, "thirteen"
"""

N_MIXED = 50


def junit_cases(path: Path) -> dict[tuple[str, str], tuple[str, str | None, float]]:
    """(classname, name) -> (outcome, message, time) of every testcase in a JUnit file."""
    cases: dict[tuple[str, str], tuple[str, str | None, float]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        assert key not in cases, f"{key} is in the JUnit file twice"
        outcome, message = "passed", None
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, child.get("message")
                break
        cases[key] = (outcome, message, float(case.get("time", "0")))
    return cases


@pytest.fixture
def mixed(suite: Suite, pytester: pytest.Pytester) -> Suite:
    pytester.makepyfile(test_mixed_a=MIXED_A, test_mixed_b=MIXED_B)
    return suite


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "n2"])
def test_junit_of_the_completing_attempt_equals_an_uninterrupted_run(
    mixed: Suite, pytester: pytest.Pytester, xdist: bool
) -> None:
    mode = ["-n", "2"] if xdist else ["-p", "no:xdist"]
    reference = pytester.runpytest_subprocess(*mode, "-p", "no:resumable", "--junitxml=ref.xml")
    assert reference.ret == 1
    expected = junit_cases(mixed.path / "ref.xml")
    assert len(expected) == N_MIXED
    mixed.take_ran()

    first = interrupt(
        mixed,
        [*mode, "--junitxml=first.xml"],
        block_at=["test_mixed_a.py::TestGroup::test_c[2]", "test_mixed_b.py::test_q[2]"][
            : 2 if xdist else 1
        ],
        sig=signal.SIGINT,
        wait_for=26 if xdist else None,
    )
    assert first.returncode == 2, first.output
    recorded = {r["test"]: r for r in mixed.records("result")}
    assert 20 <= len(recorded) < N_MIXED
    mixed.take_ran()
    resumed = pytester.runpytest_subprocess(*mode, "--resume", "--junitxml=resumed.xml")
    assert resumed.ret == 1
    ran_now = mixed.take_ran()
    assert not set(ran_now) & set(recorded)  # carried tests were not run again
    got = junit_cases(mixed.path / "resumed.xml")

    assert got.keys() == expected.keys()
    for key, (outcome, message, _) in expected.items():
        assert got[key][:2] == (outcome, message), key
    # carried testcases keep their original duration
    for test, record in recorded.items():
        path, _, rest = test.partition("::")
        classname = path.removesuffix(".py").replace("/", ".")
        if "::" in rest:
            cls, _, rest = rest.partition("::")
            classname += f".{cls}"
        assert got[(classname, rest)][2] == pytest.approx(record["duration"], abs=2e-3), test
    # the stats line tells what ran now from what was carried
    carried = len(recorded)
    line = next(x for x in resumed.outlines if "carried)" in x and " passed " in x)
    # pytest counts a test that passed with a teardown error twice: passed, and error
    twice = "test_mixed_a.py::test_teardown_error" in recorded
    total_carried = sum(int(n) for n in _carried_counts(line))
    assert total_carried == carried + twice, line
    resumed.stdout.fnmatch_lines(
        [literal("resumable: run * complete after 2 attempts (*)")],
    )


def _carried_counts(line: str) -> list[str]:
    import re

    return re.findall(r"\((\d+) carried\)", line)


def test_stats_line_counts_carried_results_per_outcome(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        test_suite="""
        import pytest
        @pytest.mark.parametrize("i", range(10))
        def test_n(i):
            assert i != 2
        """
    )
    interrupt(suite, ["-p", "no:xdist"], block_at="test_suite.py::test_n[6]", sig=signal.SIGINT)
    resumed = pytester.runpytest_subprocess("-p", "no:xdist", "--resume")
    resumed.stdout.fnmatch_lines(["*= 1 failed (1 carried), 9 passed (5 carried) in *"])


def _flaky_suite(pytester: pytest.Pytester) -> None:
    # test_n[3] fails until the file "fixed" exists; test_n[6] is where the run is interrupted
    pytester.makepyfile(
        test_suite="""
        import os, pytest
        @pytest.mark.parametrize("i", range(10))
        def test_n(i):
            assert i != 3 or os.path.exists("fixed"), "three is broken"
        """
    )


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "n2"])
def test_exit_status_of_the_whole_run(suite: Suite, pytester: pytest.Pytester, xdist: bool) -> None:
    """1 while a carried failure stands (even if all that ran now passed), 2 for an interrupted
    attempt, 0 once --resume-retry-failed ran the failure again and it passed."""
    _flaky_suite(pytester)
    mode = ["-n", "2"] if xdist else ["-p", "no:xdist"]
    first = interrupt(
        suite,
        mode,
        block_at=["test_suite.py::test_n[6]", "test_suite.py::test_n[7]"][: 2 if xdist else 1],
        sig=signal.SIGINT,
        wait_for=6 if xdist else None,
    )
    assert first.returncode == 2
    assert "test_suite.py::test_n[3]" in {r["test"] for r in suite.records("result")}

    # an interrupted resumed attempt keeps pytest's status 2, carried failure or not. test_n[6]
    # blocked in the first attempt, so it has no result in either mode: block there again (under
    # xdist the other tests may all have results, and a blocker among them would never run)
    suite.take_ran()
    again = interrupt(
        suite, [*mode, "--resume"], block_at="test_suite.py::test_n[6]", sig=signal.SIGINT
    )
    assert again.returncode == 2, again.output

    (suite.path / "fixed").write_text("")
    # everything run now passes, the carried failure keeps the run red
    done = pytester.runpytest_subprocess(*mode, "--resume")
    assert done.ret == 1
    done.stdout.fnmatch_lines(
        [literal("FAILED (carried) test_suite.py::test_n[3] - *three is broken")]
    )


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "n2"])
def test_retry_failed_that_now_passes_turns_the_run_green(
    suite: Suite, pytester: pytest.Pytester, xdist: bool
) -> None:
    _flaky_suite(pytester)
    mode = ["-n", "2"] if xdist else ["-p", "no:xdist"]
    interrupt(
        suite,
        mode,
        block_at=["test_suite.py::test_n[6]", "test_suite.py::test_n[7]"][: 2 if xdist else 1],
        sig=signal.SIGINT,
        wait_for=6 if xdist else None,
    )
    suite.take_ran()
    (suite.path / "fixed").write_text("")
    retried = pytester.runpytest_subprocess(*mode, "--resume-retry-failed", "-rA")
    assert retried.ret == 0, retried.stdout.str()
    ran = suite.take_ran()
    assert ran.count("test_suite.py::test_n[3]") == 1
    assert "(carried)" not in "".join(x for x in retried.outlines if "test_n[3]" in x)
    retried.stdout.fnmatch_lines(["resumable: run * complete after 2 attempts (10 passed)"])


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "n2"])
def test_maxfail_counts_only_tests_run_now(
    suite: Suite, pytester: pytest.Pytester, xdist: bool
) -> None:
    pytester.makepyfile(
        test_suite="""
        import pytest
        @pytest.mark.parametrize("i", range(12))
        def test_n(i):
            assert i not in (1, 2), "bad"
        """
    )
    mode = ["-n", "2"] if xdist else ["-p", "no:xdist"]
    interrupt(
        suite,
        mode,
        block_at=["test_suite.py::test_n[6]", "test_suite.py::test_n[7]"][: 2 if xdist else 1],
        sig=signal.SIGINT,
        wait_for=6 if xdist else None,
    )
    carried = {r["test"] for r in suite.records("result")}
    assert {"test_suite.py::test_n[1]", "test_suite.py::test_n[2]"} <= carried
    suite.take_ran()
    # two carried failures do not trip -x: every remaining test runs, and the status is 1
    resumed = pytester.runpytest_subprocess(*mode, "--resume", "-x")
    assert resumed.ret == 1
    assert sorted(suite.take_ran()) == sorted(
        f"test_suite.py::test_n[{i}]"
        for i in range(12)
        if f"test_suite.py::test_n[{i}]" not in carried
    )
    resumed.stdout.fnmatch_lines(["resumable: run * complete after 2 attempts *"])
