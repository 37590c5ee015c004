"""The pytest-resumable command, run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import cli as run_cli
from conftest import lock_holder
from pytest_resumable.journal.codec import encode
from pytest_resumable.journal.records import (
    VERSION,
    AttemptRecord,
    EndRecord,
    HeaderRecord,
    ResultRecord,
    RunRecord,
)


def cli(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, timeout=60)  # a hang is a failure here


def write_journal(path: Path, first_test: str = "t.py::a") -> None:
    records = [
        HeaderRecord(VERSION, 1.0),
        RunRecord("aaaa1111", 1.0, None, None),
        AttemptRecord("aaaa1111", 1, 1.0, 1, "h"),
        ResultRecord("aaaa1111", 1, first_test, "passed", 0.1),
        ResultRecord("aaaa1111", 1, "t.py::b", "failed", 0.1),
        EndRecord("aaaa1111", 1, 2.0, 1, 2, 2, True),
        RunRecord("bbbb2222", 3.0, "ci-7", None),
        AttemptRecord("bbbb2222", 1, 3.0, 1, "h"),
        ResultRecord("bbbb2222", 1, "t.py::a", "crashed", 0.1),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(encode(r) for r in records) + b"not json\n")


def test_status_table_and_json(tmp_path: Path) -> None:
    journal = tmp_path / ".pytest_cache" / "d" / "resumable" / "journal.jsonl"
    write_journal(journal)
    table = cli("status", cwd=tmp_path)  # the default path, from the current directory
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "run",
        "id",
        "shard",
        "attempts",
        "results",
        "failed",
        "crashed",
        "state",
        "last",
        "activity",
    ]
    assert lines[1].split()[:8] == ["aaaa1111", "-", "-", "1", "2/2", "1", "0", "complete"]
    assert lines[2].split()[:8] == ["bbbb2222", "ci-7", "-", "1", "1/?", "0", "1", "incomplete"]
    assert lines[-1] == "1 corrupt line skipped"
    as_json = json.loads(cli("status", "--json", "--journal", str(journal), cwd=tmp_path).stdout)
    assert [r["run"] for r in as_json["runs"]] == ["aaaa1111", "bbbb2222"]
    assert as_json["runs"][1]["crashed"] == 1
    assert as_json["corrupt_lines"] == 1


def test_status_of_a_missing_journal(tmp_path: Path) -> None:
    result = cli("status", "--journal", "nowhere.jsonl", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "nowhere.jsonl: no runs recorded\n"


def test_newer_version_is_exit_2_and_one_line(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    journal.write_text('{"type":"header","format":"pytest-resumable","version":9}\n')
    result = cli("status", "--journal", str(journal), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("pytest-resumable: the journal ")
    assert "format version 9" in result.stderr


def test_usage_error_is_exit_2(tmp_path: Path) -> None:
    result = cli("frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_show_filters_by_outcome_and_names_runs_by_prefix_or_resume_id(tmp_path: Path) -> None:
    journal = tmp_path / ".pytest_cache" / "d" / "resumable" / "journal.jsonl"
    write_journal(journal)
    out = cli("show", "aaaa", "--outcome", "failed", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()  # a pipe: tab-separated
    assert lines[0].split("\t") == ["test", "outcome", "duration", "attempt", "run", "message"]
    assert [line.split("\t")[:2] for line in lines[1:]] == [["t.py::b", "failed"]]
    data = json.loads(cli("show", "ci-7", "--json", cwd=tmp_path).stdout)
    assert data["runs"] == ["bbbb2222"]
    assert [(r["test"], r["outcome"]) for r in data["results"]] == [("t.py::a", "crashed")]


def test_show_unknown_run_or_outcome_is_exit_2_and_one_line(tmp_path: Path) -> None:
    journal = tmp_path / ".pytest_cache" / "d" / "resumable" / "journal.jsonl"
    write_journal(journal)
    for args, message in (
        (("show", "zzzz"), "pytest-resumable: no run 'zzzz'"),
        (("show", "aaaa", "--outcome", "bad"), "pytest-resumable: --outcome: unknown outcome"),
        (("verify", "nope"), "pytest-resumable: no run 'nope'"),
        (("compact", "--keep-runs", "-1"), "pytest-resumable: --keep-runs: expected"),
    ):
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 2, args
        assert out.stderr.startswith(message), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert "Traceback" not in out.stderr


def test_lock_timeout_must_be_finite_and_not_negative(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    write_journal(journal)
    before = journal.read_bytes()
    for command in (["compact", "--journal", str(journal)], ["merge", str(journal), "-o", "o"]):
        for value in ("-1", "nan", "inf", "soon"):
            result = cli(*command, f"--lock-timeout={value}", cwd=tmp_path)
            assert result.returncode == 2
            assert (
                f"argument --lock-timeout: expected a number of seconds >= 0, got {value!r}"
            ) in result.stderr
            assert "Traceback" not in result.stderr
    assert journal.read_bytes() == before
    assert not (tmp_path / "o").exists()


def test_a_busy_lock_names_the_commands_option(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    write_journal(journal)
    with lock_holder(journal):
        result = cli("compact", "--journal", journal, "--lock-timeout=0.2", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"pytest-resumable: waited 0.2 s for the journal lock {journal}.lock, held by another "
        "process; try again, or raise --lock-timeout"
    ]


def test_ctrl_c_while_waiting_for_the_lock_is_one_line(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    write_journal(journal)
    before = journal.read_bytes()
    with lock_holder(journal):
        command = subprocess.Popen(
            [sys.executable, "-m", "pytest_resumable", "compact", "--journal", str(journal)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # it says so once it has waited a second: then it is surely waiting
        assert command.stderr is not None
        assert command.stderr.readline().startswith(
            f"pytest-resumable: waiting up to 30 s for the journal lock {journal}.lock, held by"
        )
        command.send_signal(signal.SIGINT)
        _, err = command.communicate(timeout=60)
    assert command.returncode == 130
    assert err.strip().splitlines() == ["pytest-resumable: interrupted"]
    assert journal.read_bytes() == before


def test_show_prints_a_test_id_with_a_lone_surrogate_escaped(tmp_path: Path) -> None:
    """pytest allows a lone surrogate in an id (with its id escaping disabled); ``show`` failed
    to print it ("surrogates not allowed") after the table's first row."""
    journal = tmp_path / "j.jsonl"
    write_journal(journal, first_test="t.py::a[\ud800]")
    out = cli("--journal", journal, "show", "aaaa", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [line.split("\t")[0] for line in out.stdout.splitlines()[1:]] == [
        "t.py::a[\\ud800]",
        "t.py::b",
    ]
