"""The journal under hostile conditions: files that are not files, numbers that are not
finite, nesting without end, terminal escapes, a journal planted by someone else, and
arbitrary bytes. Hostile input is data, never a crash, a hang or a traceback."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SUITE_28, Suite, node
from conftest import cli as run_cli
from pytest_resumable.history import read_history
from pytest_resumable.journal.codec import encode
from pytest_resumable.journal.errors import JournalError
from pytest_resumable.journal.reader import ReadStats, iter_records
from pytest_resumable.journal.records import (
    VERSION,
    AttemptRecord,
    EndRecord,
    HeaderRecord,
    Record,
    ResultRecord,
    RunRecord,
)
from test_trust import blocked_session, latest_results

ALL_28 = [node(i) for i in range(28)]


def cli(
    *args: str | os.PathLike[str], cwd: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, timeout=timeout)  # a hang is a failure here


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The command failed with exit 2 and said so in one line, without a traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def complete_run(run: str, t: float, tests: int = 2) -> list[Record]:
    return [
        RunRecord(run, t),
        AttemptRecord(run, 1, t, 1, "h"),
        *(ResultRecord(run, 1, f"t.py::test_{i}", "passed", 0.1) for i in range(tests)),
        EndRecord(run, 1, t + 1, 0, tests, tests, True),
    ]


def write(path: Path, records: list[Record], extra: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(encode(r) for r in [HeaderRecord(VERSION, 1.0), *records]) + extra)


# -- a. compact --keep-runs


def test_compact_keeps_up_to_keep_runs_complete_runs(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    write(journal, complete_run("aaaa0001", 10.0) + complete_run("aaaa0002", 20.0))
    done = cli("compact", "--keep-runs", "3", "--journal", journal, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for run in ("aaaa0001", "aaaa0002"):
        verified = cli("verify", run, "--journal", journal, cwd=tmp_path)
        assert verified.returncode == 0, (run, verified.stdout, verified.stderr)

    write(journal, [r for i in range(4) for r in complete_run(f"bbbb000{i}", 10.0 * (i + 1))])
    done = cli("compact", "--keep-runs", "5", "--journal", journal, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    status = json.loads(cli("status", "--json", "--journal", journal, cwd=tmp_path).stdout)
    assert [r["run"] for r in status["runs"]] == [f"bbbb000{i}" for i in range(4)]
    assert all(r["results"] == 2 for r in status["runs"])


# -- b. merge into the journal a session is appending to


def test_merge_into_a_journal_a_session_appends_to_loses_nothing(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    other = pytester.path / "other.jsonl"
    write(other, complete_run("cccc0001", 5.0))
    with blocked_session(suite, ["-p", "no:xdist"], node(10)) as proc:
        merged = cli("merge", suite.journal, other, "-o", suite.journal, cwd=pytester.path)
        assert merged.returncode == 0, merged.stderr
    out = proc.output  # type: ignore[attr-defined]
    assert proc.returncode == 1, out
    [attempt] = [a for a in suite.records("attempt") if a["run"] != "cccc0001"]
    run = attempt["run"]
    assert sorted(latest_results(suite, run)) == sorted(ALL_28), out
    assert len([e for e in suite.records("end") if e["run"] == run]) == 1
    assert "cccc0001" in {r["run"] for r in suite.records("run")}


# -- c, d. a journal path that is not a regular file


def test_fifo_as_journal_is_refused_and_never_blocks(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    fifo = pytester.path / "fifo"
    os.mkfifo(fifo)
    one_line_error(
        cli("--journal", fifo, "status", cwd=pytester.path, timeout=10), "not a regular file"
    )

    recording = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--resume-journal={fifo}", timeout=30
    )
    assert recording.ret == 1  # what the tests say: test_n[5] fails
    assert suite.take_ran() == ALL_28
    warned = [
        line for line in recording.outlines + recording.errlines if "not a regular file" in line
    ]
    assert len(warned) == 1, recording.outlines + recording.errlines

    resuming = pytester.runpytest_subprocess(
        "-p", "no:xdist", "--resume", f"--resume-journal={fifo}", timeout=30
    )
    assert resuming.ret == 4, resuming.stdout.str() + resuming.stderr.str()
    assert suite.take_ran() == []
    assert "Traceback" not in resuming.stdout.str() + resuming.stderr.str()


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_device_as_journal_is_refused_and_never_hangs(
    suite: Suite, pytester: pytest.Pytester, device: str
) -> None:
    one_line_error(
        cli("--journal", device, "status", cwd=pytester.path, timeout=10), "not a regular file"
    )
    one_line_error(
        cli("show", "x", "--journal", device, cwd=pytester.path, timeout=10), "not a regular file"
    )
    pytester.makepyfile(test_suite=SUITE_28)
    resuming = pytester.runpytest_subprocess(
        "-p", "no:xdist", "--resume", f"--resume-journal={device}", timeout=30
    )
    assert resuming.ret == 4, resuming.stdout.str() + resuming.stderr.str()
    assert suite.take_ran() == []
    text = resuming.stdout.str() + resuming.stderr.str()
    assert "Traceback" not in text
    assert len([line for line in text.splitlines() if "not a regular file" in line]) == 1, text


# -- e. numbers that are not finite or not sane

NUMBERS = b"".join(
    line + b"\n"
    for line in (
        b'{"type":"run","run":"dddd0001","time":1e308,"resume_id":null,"shard":null}',
        b'{"type":"attempt","run":"dddd0001","attempt":1,"time":-1e300,"pid":1,"host":"h"}',
        b'{"type":"result","run":"dddd0001","attempt":1,"test":"t.py::test_big","outcome":"passed","duration":1e999}',
        b'{"type":"result","run":"dddd0001","attempt":1,"test":"t.py::test_neg","outcome":"passed","duration":-1e300}',
        b'{"type":"result","run":"dddd0001","attempt":1,"test":"t.py::test_nan","outcome":"passed","duration":NaN}',
        b'{"type":"result","run":"dddd0001","attempt":1,"test":"t.py::test_ok","outcome":"passed","duration":0.5}',
        b'{"type":"end","run":"dddd0001","attempt":1,"time":1e999,"status":0,"selected":1e999,"results":-1,"complete":true}',
        b'{"type":"run","run":"dddd0002","time":5.0,"resume_id":null,"shard":null}',
        b'{"type":"attempt","run":"dddd0002","attempt":1,"time":5.0,"pid":1,"host":"h"}',
        b'{"type":"result","run":"dddd0002","attempt":1,"test":"t.py::test_big","outcome":"passed","duration":1e999}',
        b'{"type":"result","run":"dddd0002","attempt":1,"test":"t.py::test_ok","outcome":"passed","duration":0.25}',
        b'{"type":"durations","time":1e999,"tests":{"t.py::test_x":1e999,"t.py::test_y":-1e300}}',
    )
)


def _no_constant(name: str) -> Any:
    raise AssertionError(f"non-standard JSON constant {name}")


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    return True


def _strict_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    for token in ("Infinity", "NaN", "inf", "1e999"):
        assert token not in text, text
    out = [json.loads(line, parse_constant=_no_constant) for line in text.splitlines()]
    assert all(_all_finite(obj) for obj in out), text
    return out


def test_non_finite_and_huge_numbers_are_data_not_a_crash(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    write(journal, [], NUMBERS)
    for args in (["status"], ["status", "--json"], ["show", "dddd0002"], ["show", "dddd0001"]):
        done = cli(*args, "--journal", journal, cwd=tmp_path)
        assert done.returncode in (0, 2), (args, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        assert "inf" not in done.stdout.lower().replace("info", ""), (args, done.stdout)

    merged = tmp_path / "merged.jsonl"
    done = cli("merge", journal, "-o", merged, cwd=tmp_path)
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr
    if done.returncode == 0:
        _strict_lines(merged)

    done = cli("compact", "--journal", journal, cwd=tmp_path)
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr
    _strict_lines(journal)
    assert cli("status", "--journal", journal, cwd=tmp_path).returncode == 0


# -- f. nesting without end

DEPTH = 100_000


def test_deep_nesting_is_a_corrupt_line_not_a_recursion_error(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    deep = b"[" * DEPTH + b"]" * DEPTH
    deep_obj = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
    lines = [
        b'{"type":"result","run":"eeee0001","attempt":1,"test":"t.py::nested_a","outcome":"failed","duration":0.1,"reports":'
        + deep
        + b"}",
        b'{"type":"result","run":"eeee0001","attempt":1,"test":"t.py::nested_b","outcome":"failed","duration":0.1,"message":"x","extra":'
        + deep_obj
        + b"}",
        b'{"type":"start","run":"eeee0001","attempt":1,"test":' + deep + b"}",
        deep,
    ]
    write(journal, complete_run("eeee0001", 1.0)[:2], b"".join(line + b"\n" for line in lines))
    for args in (
        ["status"],
        ["status", "--json"],
        ["show", "eeee0001"],
        ["show", "eeee0001", "--json"],
    ):
        done = cli(*args, "--journal", journal, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr[-2000:])
        assert "RecursionError" not in done.stderr
        assert "Traceback" not in done.stderr
        assert "nested_" not in done.stdout, args
    status = json.loads(cli("status", "--json", "--journal", journal, cwd=tmp_path).stdout)
    assert status["corrupt_lines"] >= 3, status
    done = cli("compact", "--journal", journal, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert b"[[[[" not in journal.read_bytes()
    assert b'{"a":{"a":' not in journal.read_bytes()


# -- g. terminal escapes in a journal


def test_control_characters_from_a_journal_never_reach_the_terminal(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    run = "ffff0001"
    records: list[Record] = [
        RunRecord(run, 1.0, "\x1b]0;pwned\x07", None),
        AttemptRecord(run, 1, 1.0, 1, "h\x1b[31m"),
        ResultRecord(
            run, 1, "t.py::test_a\r\x1b[2Kall good", "failed", 0.1, message="\x1b[2J\rboom"
        ),
        ResultRecord(run, 1, "t.py::test_b", "passed", 0.1),
        EndRecord(run, 1, 2.0, 1, 2, 2, True),
    ]
    write(journal, records)
    for args in (
        ["status"],
        ["status", "--json"],
        ["show", run],
        ["show", run, "--json"],
        ["show", "\x1b]0;pwned\x07"],
        ["verify", run],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "pytest_resumable", *args, "--journal", str(journal)],
            cwd=tmp_path,
            capture_output=True,
            timeout=30,
        )
        assert done.returncode in (0, 1), (args, done.stderr)
        for stream in (done.stdout, done.stderr):
            assert b"\x1b" not in stream, (args, stream)
            assert b"\r" not in stream, (args, stream)
            assert b"\x07" not in stream, (args, stream)
    shown = cli("show", run, "--journal", journal, cwd=tmp_path)
    assert "test_a" in shown.stdout


# -- h. --journal before the subcommand


def test_journal_option_before_the_subcommand(tmp_path: Path) -> None:
    journal = tmp_path / "elsewhere" / "j.jsonl"
    write(journal, complete_run("abcd0001", 1.0))
    before = cli("--journal", journal, "status", "--json", cwd=tmp_path)
    after = cli("status", "--json", "--journal", journal, cwd=tmp_path)
    assert before.returncode == after.returncode == 0, (before.stderr, after.stderr)
    assert before.stdout == after.stdout
    assert [r["run"] for r in json.loads(before.stdout)["runs"]] == ["abcd0001"]
    table = cli("--journal", journal, "status", cwd=tmp_path)
    assert table.stdout == cli("status", "--journal", journal, cwd=tmp_path).stdout


# -- i. a journal planted by another user


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root"
)
def test_journal_owned_by_another_user_in_a_shared_directory_is_refused(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    shared = pytester.path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    journal = shared / "j.jsonl"
    write(journal, complete_run("0dd00001", 1.0))
    os.chown(journal, 65534, 65534)

    resuming = pytester.runpytest_subprocess(
        "-p", "no:xdist", "--resume", f"--resume-journal={journal}", timeout=30
    )
    text = resuming.stdout.str() + resuming.stderr.str()
    assert resuming.ret == 4, text
    assert suite.take_ran() == []
    owner = [line for line in text.splitlines() if "owned by" in line]
    assert len(owner) == 1, text
    assert "65534" in owner[0] or "nobody" in owner[0], owner
    assert "Traceback" not in text
    one_line_error(cli("status", "--journal", journal, cwd=pytester.path), "owned by")


# -- j. arbitrary bytes


def _read_everything(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        path.write_bytes(data)
        started = time.monotonic()
        errors = []
        try:
            read_history(path)
        except JournalError as exc:  # JournalVersionError included: the one-line errors
            errors.append(str(exc))
        try:
            list(iter_records(path, ReadStats()))
        except JournalError as exc:
            errors.append(str(exc))
        assert time.monotonic() - started < 5
        assert all("\n" not in message for message in errors), errors


HEADER = encode(HeaderRecord(VERSION, 1.0))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
record_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["header", "run", "attempt", "start", "result", "end", "shard", "durations", "x"]
        )
    },
    optional={
        "run": st.one_of(st.just("aaaa1111"), json_values),
        "attempt": json_values,
        "test": json_values,
        "outcome": st.one_of(st.sampled_from(["passed", "failed", "crashed"]), json_values),
        "duration": json_values,
        "time": json_values,
        "version": json_values,
        "format": json_values,
        "selected": json_values,
        "results": json_values,
        "complete": json_values,
        "tests": json_values,
        "reports": json_values,
        "shard": json_values,
        "selection_z": json_values,
        "assignment_z": json_values,
    },
)
json_lines = st.lists(st.one_of(json_values, record_like), max_size=12).map(
    lambda values: b"".join(json.dumps(v).encode() + b"\n" for v in values)
)
journals = st.one_of(
    st.binary(max_size=2000),
    json_lines,
    json_lines.map(lambda body: HEADER + body),
    st.tuples(json_lines, st.binary(max_size=200)).map(lambda t: HEADER + t[0] + t[1]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journals)
def test_arbitrary_journals_never_raise(data: bytes) -> None:
    _read_everything(data)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journals)
def test_arbitrary_journals_status_exits_0_or_2(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        path.write_bytes(data)
        done = cli("status", "--journal", path, cwd=Path(tmp), timeout=20)
        assert done.returncode in (0, 2), done.stderr
        assert "Traceback" not in done.stderr + done.stdout
