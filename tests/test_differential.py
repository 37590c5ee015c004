"""The strongest check: a suite run uninterrupted, and the same suite SIGKILLed after most
results and resumed, give the same exit status and the same report test by test: JUnit XML
with ``junit_logging=all``, the ``-rA`` summary lines, pytest-reportlog and pytest-html
(issue #16)."""

from __future__ import annotations

import json
import re
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import Suite, interrupt

EVERY_KIND = """
import logging, sys, unittest
import pytest

log = logging.getLogger("suite")

@pytest.fixture
def broken_setup():
    raise RuntimeError("setup exploded")

@pytest.fixture
def broken_teardown():
    yield
    print("teardown says hi")
    raise RuntimeError("teardown exploded")

def test_output_pass(record_property):
    print("out of a pass")
    sys.stderr.write("err of a pass\\n")
    log.warning("log of a pass")
    record_property("answer", 42)

def test_output_fail(record_property):
    print("out of a failure")
    sys.stderr.write("err of a failure\\n")
    log.error("log of a failure")
    record_property("build", "x-1")
    assert {"a": 1} == {"a": 2}, "dicts differ"

def test_runtime_skip():
    pytest.skip("skipped at run time")

@pytest.mark.skip(reason="marked skip")
def test_marked_skip():
    pass

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 0

@pytest.mark.xfail(reason="fixed now")
def test_xpass():
    pass

@pytest.mark.xfail(reason="strict", strict=True)
def test_xpass_strict():
    pass

def test_setup_error(broken_setup):
    pass

def test_teardown_error(broken_teardown):
    pass

@pytest.mark.parametrize("odd", ["a b", "ü/∂", "x::y", "[1]", "tab\\tchar"])
def test_odd_ids(odd):
    assert odd != "x::y", "odd id fails"

class TestUnit(unittest.TestCase):
    def test_subtests(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 1)
"""

SUBTESTS_FIXTURE = """
def test_builtin_subtests(subtests):
    for i in range(3):
        with subtests.test(msg="sub", i=i):
            assert i != 2
"""

LAST = "test_zlast.py::test_last"


def _normalise(text: str) -> str:
    text = re.sub(r"0x[0-9a-f]+", "0x?", text)
    text = re.sub(r"\d+\.\d+s", "?s", text)
    return text


def junit(path: Path) -> dict[str, str]:
    """Every testcase of a JUnit file, as canonical XML without times."""
    out: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        case.attrib.pop("time", None)
        key = f"{case.get('classname')}::{case.get('name')}"
        assert key not in out, key
        out[key] = _normalise(ET.tostring(case, encoding="unicode"))
    return out


def summary_lines(lines: list[str]) -> list[str]:
    """The ``-rA`` short summary, carried marks removed, sorted (carried tests come last)."""
    start = next(i for i, x in enumerate(lines) if "short test summary info" in x)
    out = []
    for line in lines[start + 1 :]:
        if line.startswith(("=", "resumable:")):
            break
        out.append(_normalise(line.replace(" (carried)", "")))
    return sorted(out)


def reportlog(path: Path) -> dict[str, list[tuple[str, str]]]:
    """(when, outcome) of every test report in a pytest-reportlog file, by node id."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in path.read_text().splitlines():
        data = json.loads(line)
        if data.get("$report_type") == "TestReport":
            out.setdefault(data["nodeid"], []).append((data["when"], data["outcome"]))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture
def every_kind(suite: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Suite:
    monkeypatch.setenv("COLUMNS", "400")  # summary lines whole: "(carried)" would cut earlier
    files = {"test_kinds": EVERY_KIND, "test_zlast": "def test_last():\n    pass\n"}
    if int(pytest.__version__.split(".")[0]) >= 9:
        files["test_subtests_fixture"] = SUBTESTS_FIXTURE
    pytester.makepyfile(**files)
    pytester.makeini("[pytest]\naddopts = -p no:randomly\njunit_logging = all\nlog_level = INFO\n")
    return suite


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "n2"])
def test_resumed_report_equals_the_uninterrupted_one(
    every_kind: Suite, pytester: pytest.Pytester, xdist: bool
) -> None:
    mode = ["-n", "2", "--dist", "loadfile"] if xdist else ["-p", "no:xdist"]
    reports = ["-rA", "--junitxml=ref.xml", "--report-log=ref.jsonl", "--html=ref.html"]
    reference = pytester.runpytest_subprocess(*mode, "-p", "no:resumable", *reports)
    total = len(set(every_kind.take_ran()))

    # SIGKILL while the last test runs: everything else has a result (loadfile keeps the
    # files apart, so under xdist the other worker has finished test_kinds.py)
    first = interrupt(
        every_kind,
        [*mode],
        block_at=LAST,
        sig=signal.SIGKILL,
        # under xdist, wait until every test has started (the other worker's file done)
        wait_for=total if xdist else None,
    )
    assert first.returncode == -signal.SIGKILL
    recorded = {r["test"] for r in every_kind.records("result")}
    # whatever was recorded when the kill came, the report below must be equal; most are
    assert len(recorded) >= 10
    every_kind.take_ran()
    resumed = pytester.runpytest_subprocess(
        *mode, "--resume", "-rA", "--junitxml=got.xml", "--report-log=got.jsonl", "--html=got.html"
    )
    assert every_kind.take_ran() == [LAST]  # everything else is carried

    assert resumed.ret == reference.ret == 1
    assert junit(every_kind.path / "got.xml") == junit(every_kind.path / "ref.xml")
    assert summary_lines(resumed.outlines) == summary_lines(reference.outlines)
    assert reportlog(every_kind.path / "got.jsonl") == reportlog(every_kind.path / "ref.jsonl")
    html = (every_kind.path / "got.html").read_text()
    for text in ("out of a failure", "err of a failure", "log of a failure", "dicts differ"):
        assert text in html, text
    reference_html = (every_kind.path / "ref.html").read_text()
    for outcome in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        word = f'data-test-result="{outcome}"'
        assert html.count(word) == reference_html.count(word), outcome
