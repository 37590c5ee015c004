"""A planted `<journal>.lock` symlink must not let a session write through it (SPEC §5).

Someone who can write the journal's directory makes `journal.jsonl.lock` a symlink to a file
of the victim. filelock before 3.20.1 opened the lock file with O_TRUNC and without O_NOFOLLOW:
taking the lock emptied the link's target (and chmod-ed it). Since 3.20.1 the open fails with
ELOOP, the writer reports it in one line, and the session runs unrecorded (or, when recording
was asked for explicitly, stops with a usage error) - the target is never touched.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "O_NOFOLLOW"),
    reason="POSIX symlink semantics",
)

SUITE = """
def test_one():
    pass
"""


def _plant(pytester: pytest.Pytester) -> tuple[Path, Path]:
    pytester.makepyfile(test_suite=SUITE)
    target = pytester.path / "precious.txt"
    target.write_text("precious")
    target.chmod(0o600)
    journal_dir = pytester.path / "j"
    journal_dir.mkdir()
    journal = journal_dir / "journal.jsonl"
    Path(f"{journal}.lock").symlink_to(target)
    return journal, target


def _assert_untouched(target: Path, lock: Path) -> None:
    assert target.read_text() == "precious"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert lock.is_symlink()  # left for the user to look at, not silently replaced


def test_recording_session_refuses_a_symlinked_lock_and_runs_unrecorded(
    pytester: pytest.Pytester,
) -> None:
    journal, target = _plant(pytester)
    lock = Path(f"{journal}.lock")
    result = pytester.runpytest_subprocess(f"--resume-journal={journal}")

    _assert_untouched(target, lock)
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    output = result.stdout.lines + result.stderr.lines
    refusals = [line for line in output if line.startswith("resumable: cannot lock the journal")]
    assert refusals == [
        f"resumable: cannot lock the journal {lock}: {os.strerror(errno.ELOOP)}; "
        f"this session is not recorded"
    ]
    text = "\n".join(output)
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    assert "resumable: recording run" not in text


def test_resume_with_a_symlinked_lock_is_a_usage_error(pytester: pytest.Pytester) -> None:
    journal, target = _plant(pytester)
    lock = Path(f"{journal}.lock")
    result = pytester.runpytest_subprocess(f"--resume-journal={journal}", "--resume")

    _assert_untouched(target, lock)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.lines + result.stderr.lines
    assert f"ERROR: resumable: cannot lock the journal {lock}: {os.strerror(errno.ELOOP)}" in (
        output
    )
    text = "\n".join(output)
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    assert "test_one" not in text  # refused before any test ran
