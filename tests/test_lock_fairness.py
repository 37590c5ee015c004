"""Writers take the journal lock in turn (SPEC §3: a session waits for the lock, it is not
starved out of recording).

A writer that appends nonstop releases its lease every ``max_hold`` and, before the queue,
took the lock back within microseconds, while a waiter polling every 5 ms almost never saw it
free: one of two concurrent sessions of 20,000 tests with ``resume_lock_timeout = 3`` stopped
recording with 0 results, and with 3 writers one append waited 14.5 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_resumable.journal.records import RunRecord
from pytest_resumable.journal.writer import (
    QUEUE_PATIENCE,
    FileLock,
    JournalWriter,
    new_queue,
    take_lock,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks and signals")

# Appends nonstop, with a short lease so that it releases and retakes the lock every 0.1 s,
# until the file STOP appears.
NONSTOP = """
import sys, time
from pathlib import Path
from pytest_resumable.journal.writer import JournalWriter
path, go, stop = map(Path, sys.argv[1:4])
lease = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1
writer = JournalWriter(path, max_hold=lease, idle=lease)
writer.append_bytes(b'{"type":"x-nonstop"}\\n')
go.touch()
end = time.monotonic() + 60
while not stop.exists() and time.monotonic() < end:
    writer.append_bytes(b'{"type":"x-nonstop"}\\n')
writer.close()
"""

# Appends one record (waiting for the lock), then says so.
ONE = """
import sys
from pathlib import Path
from pytest_resumable.journal.writer import JournalWriter
writer = JournalWriter(Path(sys.argv[1]), lock_timeout=60)
writer.append_bytes(b'{"type":"x-one"}\\n')
writer.close()
print("appended", flush=True)
"""

HOLD_LOCK = """
import filelock, sys, time
lock = filelock.FileLock(sys.argv[1]); lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None, "the helper process died"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@contextlib.contextmanager
def _reaped(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_a_waiter_gets_the_lock_from_a_writer_that_appends_nonstop(tmp_path: Path) -> None:
    """Each time, the waiter's turn comes when the lease it waits for ends (0.1 s). Before the
    queue it came after a random number of leases: half the time after more than 6."""
    journal, go, stop = tmp_path / "journal.jsonl", tmp_path / "go", tmp_path / "stop"
    waits = []
    with _reaped(NONSTOP, str(journal), str(go), str(stop)) as nonstop:
        _wait_for(go, nonstop)
        for attempt in range(8):
            writer = JournalWriter(journal, lock_timeout=30)
            started = time.monotonic()
            writer.append(RunRecord(f"waiter-{attempt}", 1.0))
            waits.append(time.monotonic() - started)
            writer.close()  # the nonstop writer waits in the queue: it takes the lock back
        stop.touch()
        assert nonstop.wait(timeout=60) == 0
    assert max(waits) < 0.6, [f"{w:.2f}" for w in waits]
    lines = journal.read_bytes().splitlines()
    assert all(sum(f'"waiter-{a}"'.encode() in line for line in lines) == 1 for a in range(8))
    assert sum(b"x-nonstop" in line for line in lines) > 8


def test_a_stopped_waiter_does_not_block_the_others(tmp_path: Path) -> None:
    """A waiter stopped (Ctrl-Z) while it holds the place nearest the lock delays the others
    by at most QUEUE_PATIENCE; once it continues it gets its turn too."""
    journal = tmp_path / "journal.jsonl"
    queue = Path(f"{journal}.lock.queue")
    with _reaped(HOLD_LOCK, f"{journal}.lock") as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        with _reaped(ONE, str(journal)) as stopped:
            # the waiter is at the front of the queue once place 0 is taken by someone else
            import fcntl

            deadline = time.monotonic() + 60
            while True:
                fd = os.open(queue, os.O_RDWR | os.O_CREAT) if queue.exists() else None
                if fd is not None:
                    try:
                        # POSIX record locks: a test that takes one only sees others'
                        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
                    except OSError:
                        break
                    finally:
                        os.close(fd)
                assert stopped.poll() is None
                assert time.monotonic() < deadline, "the waiter never queued"
                time.sleep(0.01)
            stopped.send_signal(signal.SIGSTOP)
            holder.kill()
            holder.wait()

            # a lease of 20 ms: the lock is taken again every 20 ms
            writer = JournalWriter(journal, lock_timeout=30, idle=0.02, max_hold=0.02)
            started = time.monotonic()
            writer.append(RunRecord("other", 1.0))
            waited = time.monotonic() - started
            assert QUEUE_PATIENCE <= waited < QUEUE_PATIENCE + 2
            # given up on once: later leases do not wait for the stopped waiter's place
            later = []
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                started = time.monotonic()
                writer.append_bytes(b'{"type":"x-later"}\n')
                later.append(time.monotonic() - started)
            writer.close()
            assert max(later) < 1.0

            stopped.send_signal(signal.SIGCONT)
            assert stopped.wait(timeout=60) == 0
            assert stopped.stdout is not None
            assert stopped.stdout.read() == b"appended\n"
    lines = journal.read_bytes().splitlines()
    assert sum(b'"other"' in line for line in lines) == 1
    assert sum(b"x-one" in line for line in lines) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_a_fifo_as_the_busy_lock_file_does_not_hang_the_session(
    pytester: pytest.Pytester,
) -> None:
    """Who holds the lock is read from the lock file: a FIFO planted there blocked that read
    forever, past any timeout."""
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    journal = pytester.path / "journal.jsonl"
    lock = Path(f"{journal}.lock")
    os.mkfifo(lock)
    hold_fifo = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\ntime.sleep(600)\n"
    )
    with _reaped(hold_fifo, str(lock)) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        result = pytester.runpytest_subprocess(
            f"--resume-journal={journal}", "-o", "resume_lock_timeout=1.5", timeout=60
        )
    output = result.stdout.lines + result.stderr.lines
    text = "\n".join(output)
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    waited = [line for line in output if "waited 1.5 s for the journal lock" in line]
    assert waited == [
        f"resumable: waited 1.5 s for the journal lock {lock}, held by another process; "
        "try again, or raise resume_lock_timeout; this session is not recorded"
    ]
    result.assert_outcomes(passed=1)


HOLD_PLACE_0 = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
print("held", flush=True)
time.sleep(600)
"""


PLACE_TAKEN = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))
except OSError:
    print("taken")
else:
    print("free")
"""


def _place(queue: Path, place: int) -> str:
    # POSIX record locks of this process never conflict with its own: ask another process
    out = subprocess.run(
        [sys.executable, "-c", PLACE_TAKEN, str(queue), str(place)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_a_writer_without_a_turn_keeps_its_place_while_it_waits(tmp_path: Path) -> None:
    """Passing a place held by a stopped waiter, a writer keeps the place it holds. When it
    let go of it, the queue was empty once the stopped waiter went on: a writer whose lease
    ended walked through it and took the lock back at once, and the others starved again
    (sessions stopped recording)."""
    journal = tmp_path / "journal.jsonl"
    queue = Path(f"{journal}.lock.queue")
    with (
        _reaped(HOLD_PLACE_0, str(queue)) as stopped,
        _reaped(HOLD_LOCK, f"{journal}.lock") as holder,
    ):
        for helper in (stopped, holder):
            assert helper.stdout is not None
            assert helper.stdout.readline() == b"held\n"
        writer = JournalWriter(journal, lock_timeout=60)
        done = threading.Event()
        thread = threading.Thread(
            target=lambda: (writer.append(RunRecord("r", 1.0)), done.set()), daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 60
        while 0 not in writer._queue.passed:  # it passed place 0
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert _place(queue, 1) == "taken"  # still in the queue, nobody can pass it
        assert not done.is_set()
        holder.kill()
        holder.wait()
        thread.join(timeout=60)
        assert done.is_set()
        assert _place(queue, 1) == "free"  # let go of once it holds the lock
        writer.close()
    assert b'"r"' in journal.read_bytes()


def test_waiting_in_turn_behind_others_says_nothing(tmp_path: Path) -> None:
    """ "waiting up to … for the journal lock" is for a lock held longer than a lease (a
    stopped process). Waiting in the queue behind three writers whose leases last 0.6 s each
    is normal: it was said in every session that shared a journal with a few others."""
    journal, stop = tmp_path / "journal.jsonl", tmp_path / "stop"
    goes = [tmp_path / f"go{k}" for k in range(3)]
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(_reaped(NONSTOP, str(journal), str(go), str(stop), "0.6"))
            for go in goes
        ]
        for go, nonstop in zip(goes, writers, strict=True):
            _wait_for(go, nonstop)
        said: list[str] = []
        waits = []
        for attempt in range(2):
            writer = JournalWriter(journal, lock_timeout=30, on_wait=said.append)
            started = time.monotonic()
            writer.append(RunRecord(f"waiter-{attempt}", 1.0))
            waits.append(time.monotonic() - started)
            writer.close()
        stop.touch()
        assert all(nonstop.wait(timeout=60) == 0 for nonstop in writers)
    # behind two whole leases at least: longer than the second after which a wait is told
    assert min(waits) > 1.0, waits
    assert said == []


def test_a_passed_place_costs_the_patience_once_and_is_forgotten_when_free(
    tmp_path: Path,
) -> None:
    """A stopped waiter must not cost every later lease the patience again; once it has gone
    on, the place is waited for again (before, a writer that had given up bypassed the queue
    for as long as others kept queueing, with 2-6 s waits long after the stop)."""
    lock_path = tmp_path / "journal.jsonl.lock"
    queue = new_queue(lock_path)
    lock = FileLock(lock_path)

    def take() -> float:
        started = time.monotonic()
        take_lock(lock, lock_path, 30, queue=queue)
        lock.release()
        return time.monotonic() - started

    with _reaped(HOLD_PLACE_0, str(queue.path)) as stopped:
        assert stopped.stdout is not None
        assert stopped.stdout.readline() == b"held\n"
        assert QUEUE_PATIENCE <= take() < QUEUE_PATIENCE + 2
        assert queue.passed == {0}
        assert take() < QUEUE_PATIENCE / 2  # tried once, not waited for
        stopped.kill()
        stopped.wait()
    assert take() < QUEUE_PATIENCE / 2
    assert queue.passed == set()  # found free: forgotten, waited for again from now on
