"""When the journal cannot be used: a clear answer, and no test result lost or changed."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SUITE_28, Suite, interrupt, literal, node, python_pytest

ALL_28 = [node(i) for i in range(28)]


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make ``directory`` really read-only, also for root (who ignores mode bits)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    bind = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True)
    if bind.returncode == 0:
        remount = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(directory)], capture_output=True
        )
        try:
            if remount.returncode != 0:
                pytest.skip("cannot remount read-only here")
            yield
        finally:
            subprocess.run(["umount", str(directory)], check=True)
        return
    chattr = subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
    if chattr.returncode != 0:
        pytest.skip("running as root without mount or chattr: cannot make a read-only dir")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_read_only_journal_dir_with_resume_is_one_line_error_before_any_test(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    with read_only(pytester.path / "ro"):
        result = pytester.runpytest_subprocess(
            "--resume", "--resume-journal", "ro/journal.jsonl", "-p", "no:xdist"
        )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert suite.ran() == []  # before any test ran
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    assert errors[0].startswith("ERROR: resumable: cannot ")
    assert "ro/journal.jsonl" in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_read_only_journal_dir_when_only_recording_warns_and_runs(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    with read_only(pytester.path / "ro"):
        result = pytester.runpytest_subprocess(
            "--resume-journal", "ro/journal.jsonl", "-p", "no:xdist"
        )
    # --resume-journal alone is not a request to resume: recording is best effort
    assert result.ret == 1
    assert suite.ran() == ALL_28
    result.stdout.fnmatch_lines(
        [
            "resumable: cannot *ro/journal.jsonl*; this session is not recorded",
            "*1 failed, 27 passed*",
        ]
    )
    assert len([line for line in result.outlines if line.startswith("resumable:")]) == 1


def test_journal_path_is_a_directory(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    (pytester.path / "adir").mkdir()
    result = pytester.runpytest_subprocess("--resume", "--resume-journal", "adir", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: resumable: the journal path * is a directory"])
    assert suite.ran() == []


def test_newer_journal_version_is_refused_and_left_untouched(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    suite.journal.parent.mkdir(parents=True)
    content = b'{"type":"header","format":"pytest-resumable","version":7}\n{"type":"run2"}\n'
    suite.journal.write_bytes(content)
    result = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: resumable: the journal * has format version 7, but this "
            "pytest-resumable understands version 1 at most*"
        ]
    )
    assert suite.ran() == []
    plain = pytester.runpytest_subprocess("-p", "no:xdist")
    assert plain.ret == 1
    assert suite.ran() == ALL_28
    plain.stdout.fnmatch_lines(["resumable: the journal * has format version 7*not recorded"])
    assert suite.journal.read_bytes() == content


def test_corrupt_line_is_skipped_counted_and_its_test_runs_again(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(10), sig=signal.SIGKILL)
    suite.take_ran()
    lines = suite.journal.read_bytes().splitlines(keepends=True)
    [at] = [i for i, line in enumerate(lines) if b'"result"' in line and node(3).encode() in line]
    lines[at] = b'{"type":"result","run":\xff\xfe garbage\n'
    suite.journal.write_bytes(b"".join(lines))
    result = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert suite.take_ran() == [node(3), *ALL_28[10:]]
    result.stdout.fnmatch_lines(["*9/28 have results*; 1 corrupt journal line skipped"])
    status = subprocess.run(
        [sys.executable, "-m", "pytest_resumable", "status", "--journal", str(suite.journal)],
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0
    assert "1 corrupt line skipped" in status.stdout


def test_disk_full_mid_run_warns_once_and_results_are_unaffected(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """RLIMIT_FSIZE makes the journal hit a full disk after a few tests."""
    pytester.makepyfile(test_suite=SUITE_28)
    limit = 2000

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        python_pytest(
            "-p", "no:xdist", "-p", "no:cacheprovider", f"--resume-journal={suite.journal}"
        ),
        cwd=pytester.path,
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
        timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr  # the real failure, nothing else
    assert "1 failed, 27 passed" in out
    assert suite.take_ran() == ALL_28
    warnings = [line for line in out.splitlines() if "recording stopped" in line]
    assert len(warnings) == 2  # the warning when it happened, and the reminder at the end
    assert "File too large" in warnings[0]
    assert "Traceback" not in out + proc.stderr
    size = suite.journal.stat().st_size
    assert size <= limit
    recorded = [r["test"] for r in suite.records("result")]
    assert 0 < len(recorded) < 28
    # the next attempt repairs the torn tail and runs exactly what has no result
    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert resumed.ret == 1
    assert suite.take_ran() == [t for t in ALL_28 if t not in recorded]
    resumed.stdout.fnmatch_lines([literal(f"*{len(recorded)}/28 have results*")])


def test_the_default_journal_is_created_through_pytests_cache(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """The cache is marked as pytest marks it (.gitignore, CACHEDIR.TAG): `git add -A` must
    not stage the journal and the failure texts in it (issue #15)."""
    pytester.makepyfile(test_suite=SUITE_28)
    assert pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider").ret == 1
    assert not (pytester.path / ".pytest_cache").exists()  # no cache: nothing recorded
    verbose = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider", "-v")
    verbose.stdout.fnmatch_lines(["resumable: pytest's cache is off*not recorded"])
    assert pytester.runpytest_subprocess("-p", "no:xdist").ret == 1
    assert suite.journal.exists()
    assert (pytester.path / ".pytest_cache" / ".gitignore").read_text().strip().endswith("*")
    assert (pytester.path / ".pytest_cache" / "CACHEDIR.TAG").exists()


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
    )
    if mount.returncode != 0:
        pytest.skip("no small tmpfs here (needs root and mount): ENOSPC not tested")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def test_enospc_on_a_small_tmpfs_warns_once_and_results_are_unaffected(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """A real full disk: a 16 KiB tmpfs fills up with the journal mid-run."""
    pytester.makepyfile(
        test_suite="""
        import pytest
        @pytest.mark.parametrize("i", range(200))
        def test_n(i):
            assert i != 5, "five is not allowed"
        """
    )
    disk = pytester.path / "disk"
    with small_tmpfs(disk, "16k"):
        proc = subprocess.run(
            python_pytest("-p", "no:xdist", "--resume-journal", "disk/journal.jsonl"),
            cwd=pytester.path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = proc.stdout
        assert proc.returncode == 1, out + proc.stderr
        assert "1 failed, 199 passed" in out
        assert len(suite.take_ran()) == 200
        warnings = [line for line in out.splitlines() if "recording stopped" in line]
        assert len(warnings) == 2
        assert "No space left on device" in warnings[0]
        assert "Traceback" not in out + proc.stderr
        journal = disk / "journal.jsonl"
        recorded = {
            json.loads(line)["test"]
            for line in journal.read_bytes().splitlines()
            if line.startswith(b'{"type":"result"') and line.endswith(b"}")
        }
        assert 0 < len(recorded) < 200


@pytest.mark.parametrize(
    "name", ["with space/jour nal.jsonl", "ünï cødé/journal.jsonl", "odd'\"$;&/journal.jsonl"]
)
def test_odd_characters_in_the_journal_path_and_resume_id(
    suite: Suite, pytester: pytest.Pytester, name: str
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    run_id = "run 7 \u2013 ünï'\"$"  # an en dash, non-ASCII, quotes, a dollar
    first = interrupt(
        suite,
        ["-p", "no:xdist", "--resume-journal", name, "--resume-id", run_id],
        block_at=node(8),
        sig=signal.SIGINT,
    )
    assert first.returncode == 2
    assert "Traceback" not in first.output
    suite.take_ran()
    resumed = pytester.runpytest_subprocess(
        "-p", "no:xdist", "--resume-journal", name, "--resume-id", run_id
    )
    assert resumed.ret == 1
    assert suite.take_ran() == ALL_28[8:]
    assert (pytester.path / name).is_file()


def test_journal_path_is_a_symlink_to_somewhere_unwritable(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    target = pytester.path / "ro"
    link = pytester.path / "journal.jsonl"
    with read_only(target):
        link.symlink_to(target / "journal.jsonl")
        result = pytester.runpytest_subprocess("-p", "no:xdist", "--resume-journal", str(link))
        assert result.ret == 1  # only recording: a warning, tests run as usual
        assert suite.take_ran() == ALL_28
        result.stdout.fnmatch_lines(["resumable: cannot *; this session is not recorded"])
        resumed = pytester.runpytest_subprocess(
            "-p", "no:xdist", "--resume", "--resume-journal", str(link)
        )
        assert resumed.ret == pytest.ExitCode.USAGE_ERROR
        assert suite.ran() == []
        resumed.stderr.fnmatch_lines(["ERROR: resumable: cannot *"])
        assert "Traceback" not in resumed.stderr.str() + resumed.stdout.str()
