"""The journal's lock is ``flock`` taken by the plugin itself on POSIX (``writer.FileLock``).

It is the lock ``filelock.FileLock`` takes there, so writers of earlier releases and this one
exclude each other. filelock is not imported: its audit hook kept the session alive to the
interpreter's end. A forked child must not keep the locks of a session that dies.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import filelock
import pytest

from pytest_resumable.journal.records import RunRecord
from pytest_resumable.journal.writer import FileLock, JournalWriter

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")


def _free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_our_lock_and_filelocks_exclude_each_other(tmp_path: Path) -> None:
    lock_path = tmp_path / "journal.jsonl.lock"
    ours = FileLock(lock_path)
    assert ours.try_acquire()
    theirs = filelock.FileLock(lock_path, thread_local=False)
    with pytest.raises(filelock.Timeout):
        theirs.acquire(timeout=0.1)
    ours.release()
    theirs.acquire(timeout=1)
    try:
        assert not FileLock(lock_path).try_acquire()
        writer = JournalWriter(tmp_path / "journal.jsonl", lock_timeout=0.2)
        with pytest.raises(Exception, match=r"waited 0\.2 s for the journal lock"):
            writer.append(RunRecord("r", 1.0))
        writer.close()
    finally:
        theirs.release()
    assert FileLock(lock_path).try_acquire()


def test_where_flock_is_refused_the_session_says_so_and_runs_unrecorded(
    pytester: pytest.Pytester,
) -> None:
    """What a file system without flock answers (ENOLCK). No fallback to another kind of lock
    that writers on other machines would not see; and nothing left behind that blocks the next
    session where flock works."""
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    pytester.makeconftest(
        """
        import errno, fcntl, os

        real = fcntl.flock

        def refused(fd, op):
            if op & fcntl.LOCK_NB:  # the journal lock (the journal file's own is blocking)
                raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
            return real(fd, op)

        if os.environ.get("NO_FLOCK"):
            fcntl.flock = refused
        """
    )
    journal = pytester.path / "journal.jsonl"
    # the first lock taken is the attempt's (journal.jsonl.run-<id>.lock)
    refusal = re.compile(
        rf"resumable: cannot lock the journal {re.escape(str(journal))}\S*\.lock: "
        rf"{os.strerror(errno.ENOLCK)}"
    )
    pytester._monkeypatch.setenv("NO_FLOCK", "1")
    result = pytester.runpytest_subprocess(f"--resume-journal={journal}")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    output = result.stdout.lines + result.stderr.lines
    said = [line for line in output if "cannot lock" in line]
    assert len(said) == 1
    assert refusal.fullmatch(said[0].removesuffix("; this session is not recorded"))
    assert "Traceback" not in "\n".join(output)
    resumed = pytester.runpytest_subprocess(f"--resume-journal={journal}", "--resume")
    assert resumed.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in resumed.stdout.lines + resumed.stderr.lines if "ERROR" in line]
    assert len(errors) == 1
    assert refusal.fullmatch(errors[0].removeprefix("ERROR: "))

    pytester._monkeypatch.delenv("NO_FLOCK")
    recorded = pytester.runpytest_subprocess(f"--resume-journal={journal}")
    recorded.assert_outcomes(passed=1)
    assert "resumable: run" in recorded.stdout.str()
    assert b'"result"' in journal.read_bytes()


def test_a_recording_session_is_freed_before_the_interpreter_tears_down(
    pytester: pytest.Pytester,
) -> None:
    """With filelock 4 imported, its audit hook (kept by the interpreter to its very end)
    reached ``typing``'s overload registry, and through any assertion-rewritten module with an
    ``@overload`` (hypothesis, or a conftest) pytest's rewriting hook and the whole session:
    every recording process's exit walked the session again (~0.6 s at 10,000 tests)."""
    pytester.makeconftest(
        """
        import os, sys, typing

        @typing.overload
        def f(x: int) -> int: ...
        @typing.overload
        def f(x: str) -> str: ...
        def f(x):
            return x

        class Sentinel:
            def __del__(self):
                os.write(2, b"the session is freed\\n")

        def pytest_configure(config):
            config.resumable_test_sentinel = Sentinel()

        def pytest_unconfigure(config):
            print("filelock imported:", "filelock" in sys.modules)
        """
    )
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-s")
    result.assert_outcomes(passed=1)
    assert "resumable: run" in result.stdout.str()  # it recorded
    result.stdout.fnmatch_lines(["filelock imported: False"])
    # Differential: where pytest alone frees the session before the end (Python 3.11 and 3.12
    # with pytest 9 here; 3.13, or pytest 8.0, keep it either way), recording must too
    alone = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:resumable", "-s")
    alone.assert_outcomes(passed=1)
    if "the session is freed" in alone.stderr.str():
        assert "the session is freed" in result.stderr.str()


FORKING_TEST = """
import os, time
from pathlib import Path

HERE = Path(__file__).parent


def test_forks_a_helper_that_lives_on():
    if (HERE / "first").exists():
        return  # the resumed attempt
    (HERE / "first").touch()
    pid = os.fork()
    if pid == 0:  # a helper that outlives the session (a server a test started, say)
        # past the fork handlers (they ran before fork() returned here): the parent may be
        # killed from now on; before, the child could still hold the parent's locks
        (HERE / "child.ready").touch()
        time.sleep(120)
        os._exit(0)
    while not (HERE / "child.ready").exists():
        time.sleep(0.005)
    (HERE / "child.pid.tmp").write_text(str(pid))
    os.replace(HERE / "child.pid.tmp", HERE / "child.pid")  # whole when it appears
    while True:  # in flight until the session is killed
        time.sleep(0.05)
"""


def test_a_forked_child_keeps_no_lock_of_a_killed_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fork=FORKING_TEST)
    journal = pytester.path / "journal.jsonl"
    args = [sys.executable, "-m", "pytest", "-p", "no:xdist", f"--resume-journal={journal}"]
    session = subprocess.Popen(
        args, cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    child_pid = 0
    try:
        deadline = time.monotonic() + 60
        while not (pytester.path / "child.pid").exists():
            assert session.poll() is None, "the session ended early"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child_pid = int((pytester.path / "child.pid").read_text())
        session.send_signal(signal.SIGKILL)
        session.wait()
        os.kill(child_pid, 0)  # the child lives on

        attempt_locks = list(pytester.path.glob("journal.jsonl.run-*.lock"))
        assert attempt_locks, "the killed attempt left its lock file"
        assert all(_free(path) for path in attempt_locks)
        assert _free(Path(f"{journal}.lock"))

        resumed = subprocess.run(
            [*args, "--resume"], cwd=pytester.path, capture_output=True, text=True, timeout=120
        )
        assert "being continued right now" not in resumed.stdout + resumed.stderr
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
        if child_pid:
            os.kill(child_pid, signal.SIGKILL)


C_FORK_TEST = """
import ctypes, os, time
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.parametrize("i", range(12))
def test_x(i):
    if i == 3:
        # fork() from C: Python's fork handlers do not run, the child shares every open file
        if ctypes.CDLL(None).fork() == 0:
            os.closerange(0, 3)
            while not (HERE / "release-child").exists():
                time.sleep(0.05)
            os._exit(0)
    time.sleep(0.15)  # 1.8 s in all: the lease ends and is taken again several times
"""


def test_a_child_forked_from_c_does_not_keep_the_journal_lock(pytester: pytest.Pytester) -> None:
    """Releasing the lock only by closing the descriptor left it held by such a child (it
    shares the open file): the session then waited for its own lock and stopped recording."""
    pytester.makepyfile(test_cfork=C_FORK_TEST)
    journal = pytester.path / "journal.jsonl"
    try:
        result = pytester.runpytest_subprocess(
            f"--resume-journal={journal}", "-p", "no:xdist", "-o", "resume_lock_timeout=2"
        )
    finally:
        (pytester.path / "release-child").touch()
    result.assert_outcomes(passed=12)
    text = "\n".join(result.stdout.lines + result.stderr.lines)
    assert "recording stopped" not in text
    assert "complete after 1 attempt (12 passed)" in text
    assert journal.read_bytes().count(b'"type":"result"') == 12


def test_recording_stopped_counts_the_result_it_could_not_write(
    pytester: pytest.Pytester,
) -> None:
    """flock refused in the middle of a session (from test 5 on): the result of test 5 is the
    first record that cannot be written, and the last line must count it as missing."""
    pytester.makeconftest(
        """
        import errno, fcntl, os
        from pathlib import Path

        FLAG = Path(__file__).parent / "refuse"
        real = fcntl.flock

        def flock(fd, op):
            if op & fcntl.LOCK_NB and FLAG.exists():
                raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
            return real(fd, op)

        fcntl.flock = flock
        """
    )
    pytester.makepyfile(
        test_n="""
        import fcntl, os, time
        from pathlib import Path

        import pytest

        HERE = Path(__file__).parent

        def wait_for_the_lease_to_end():
            # the lease thread releases the lock once appends pause: until then a lock of
            # another open file description of the lock file is refused
            fd = os.open(HERE / "journal.jsonl.lock", os.O_RDWR)
            try:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        assert time.monotonic() < deadline, "the lease never ended"
                        time.sleep(0.01)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

        @pytest.mark.parametrize("i", range(10))
        def test_n(i):
            if i == 5:
                wait_for_the_lease_to_end()
                (HERE / "refuse").touch()
        """
    )
    journal = pytester.path / "journal.jsonl"
    result = pytester.runpytest_subprocess(f"--resume-journal={journal}", "-p", "no:xdist")
    result.assert_outcomes(passed=10)
    assert journal.read_bytes().count(b'"type":"result"') == 5
    last = [line for line in result.stdout.lines + result.stderr.lines if "has no result" in line]
    assert len(last) == 1
    assert "the journal has no result for 5 of 10 tests" in last[0]
