"""The single writer of a journal and its lock lease.

Each record is one ``os.write`` of a whole line to a file opened with ``O_APPEND``, made while
this process holds the lock on ``<journal>.lock`` (:class:`FileLock`: ``flock`` on POSIX, the
lock ``filelock.FileLock`` takes there, so both exclude each other). Taking it (queue, lock,
the checks below) costs ~25 µs (measured; ~75 µs through filelock), too much for every record
of a trivial test, so the lock is *leased*: taken at the first append, kept across the appends
that follow, handed over by the first append once the lease is ``max_hold`` seconds old (it
queues for the lock again), and released by a background thread once appends pause for
``idle`` seconds (looked for once per ``max_hold`` while appends go on). Waiters take it in
turn (a queue of POSIX record locks in ``<journal>.lock.queue``, :func:`take_lock`): with up
to eight waiting, each waits about ``max_hold`` per writer ahead of it. No record waits in a
buffer: each is in the file (the OS page cache) when :meth:`JournalWriter.append_bytes`
returns, so killing the process at any moment loses nothing, and the OS drops the lock of a
dead process.

Each time the lock is taken the writer re-checks that the lock file it locked is still the one
at the path (someone may delete it: a lock on a deleted file excludes nobody) and that its open
journal is still the file at the path (``compact`` replaces it; someone may delete or replace
it), and terminates a torn last line left by a writer that died mid-write.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import socket
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_resumable.journal.codec import encode
from pytest_resumable.journal.errors import JournalError, JournalLockTimeout
from pytest_resumable.journal.reader import check_trusted, read_header
from pytest_resumable.journal.records import VERSION, FsyncMode, HeaderRecord, Record

if TYPE_CHECKING:
    import filelock

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - not POSIX
    _fcntl = None  # type: ignore[assignment]

_WRITERS: weakref.WeakSet[JournalWriter] = weakref.WeakSet()
_LOCKS: weakref.WeakSet[FileLock] = weakref.WeakSet()


def _after_fork_in_child(
    writers: weakref.WeakSet[JournalWriter] = _WRITERS,
    locks: weakref.WeakSet[FileLock] = _LOCKS,
) -> None:
    # first every lock (the journal's, an attempt's, a compaction's): a child that outlives a
    # killed session must not keep them held; then the writers' journal descriptors
    for lock in list(locks):
        lock.forget()
    for writer in list(writers):
        writer.after_fork_in_child()


# The interpreter keeps a fork handler, and the globals of its function, until after it has
# torn down every module at exit. This module's globals hold its ``__loader__``: pytest's
# assertion-rewriting import hook, which holds the config and through it the whole session, so
# the session outlived the teardown and the exit's collections walked it again: every
# recording pytest process spent ~0.35 s more CPU exiting, at 10,000 tests (measured;
# docs/architecture.md). The handler is the same code with globals of its own: builtins only,
# the sets of writers and locks bound as its defaults.
FORK_HANDLER = types.FunctionType(
    _after_fork_in_child.__code__,
    {"__builtins__": builtins},
    "_after_fork_in_child",
    _after_fork_in_child.__defaults__,
)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=FORK_HANDLER)


#: how often a waiter tries the lock again (filelock polls; its default, 50 ms, lets a process
#: that takes the lock again at once starve the others)
_POLL = 0.005

#: places in the queue of waiters for the journal lock: up to this many waiters plus the
#: holder take the lock strictly in turn; more race for the last place (keep
#: ``resume_lock_timeout`` above ~0.5 s per writer that may wait ahead)
QUEUE_PLACES = 8

#: longest wait for a place in the queue before passing it. The queue moves on by one place
#: each time the lock is taken, which a lease frees within ``max_hold`` (0.5 s): a place
#: stays taken this long only when its holder is stopped (Ctrl-Z), or while the lock is held
#: long (a compaction, a writer of an earlier release)
QUEUE_PATIENCE = 1.0


def new_queue(lock_path: Path) -> _Queue:
    """The queue of waiters for ``lock_path``, in ``<lock>.queue``: see :func:`take_lock`."""
    return _Queue(lock_path.with_name(f"{lock_path.name}.queue"))


def lock_holder(lock_path: Path) -> str | None:
    """Who holds the lock, as its holder wrote it into the lock file: ``pid 123 on host``."""
    import stat

    try:
        # O_NONBLOCK: a FIFO planted at the path must not block the waiter forever
        fd = os.open(lock_path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, 200)
    except OSError:
        return None
    finally:
        os.close(fd)
    pid, _, host = raw.decode("utf-8", "replace").strip().partition(" ")
    if not pid.isdigit():
        return None
    return f"pid {pid} on {''.join(c for c in host if c.isprintable())[:100] or '?'}"


class _Wait:
    """The waiting of one :func:`take_lock`: its deadline, the one line saying who holds the
    lock when it lasts, and the timeout error."""

    def __init__(
        self,
        lock_path: Path,
        timeout: float,
        on_wait: Callable[[str], None] | None,
        setting: str,
    ) -> None:
        self.lock_path = lock_path
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.on_wait = on_wait
        self.setting = setting
        self.told = False

    def tell(self) -> None:
        if self.on_wait is not None and not self.told:
            self.told = True
            holder = lock_holder(self.lock_path)
            self.on_wait(
                f"resumable: waiting up to {self.timeout:g} s for the journal lock "
                f"{self.lock_path}, held by {holder or 'another process'}"
            )

    def timed_out(self) -> JournalLockTimeout:
        holder = lock_holder(self.lock_path)
        return JournalLockTimeout(
            f"resumable: waited {self.timeout:g} s for the journal lock {self.lock_path}, "
            f"held by {holder or 'another process'}; try again, or raise {self.setting}"
        )

    def poll(
        self, attempt: Callable[[], bool], limit: float | None = None, tell: bool = False
    ) -> bool:
        """Call ``attempt`` every 5 ms until it succeeds (``True``) or the deadline (or
        ``limit``) passes (``False``). With ``tell``, say who holds the lock once this poll
        has lasted a second (a lease lasts 0.5 s at most; waiting in the queue behind others
        is normal and says nothing)."""
        started = time.monotonic()
        end = self.deadline if limit is None else min(self.deadline, limit)
        while not attempt():
            now = time.monotonic()
            if now >= end:
                return False
            if tell and now - started >= 1.0:
                self.tell()
            time.sleep(min(_POLL, end - now))
        return True

    def acquire(self, lock: FileLock) -> bool:
        """Acquire ``lock`` by the deadline; ``False`` if it stayed busy."""
        return self.poll(lock.try_acquire, tell=True)


class _Queue:
    """The queue in front of the journal lock: :data:`QUEUE_PLACES` one-byte POSIX record
    locks (``lockf``) in one file, the place nearest the lock at offset 0. A waiter takes the
    last place, then each next place while still holding the one behind it, so nobody can
    pass it; it lets go of the place nearest the lock only once it holds the lock.

    A place that stays taken for :data:`QUEUE_PATIENCE` (see there) is passed: the writer
    goes on to the next place, still holding the one behind (so the queue stays whole and
    nobody passes this writer), and remembers it. A remembered place is only tried once the
    next times (a stopped waiter would cost every lease the patience again), and forgotten as
    soon as it is found free (the stopped waiter went on).

    Only for fairness: the journal lock alone keeps writers apart, so anything that goes
    wrong here (no ``fcntl``, an unwritable directory, a planted file) skips the queue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.held: int | None = None  # the place held
        #: places found taken for QUEUE_PATIENCE: tried once, not waited for
        self.passed: set[int] = set()

    def wait_turn(self, wait: _Wait) -> None:
        """Wait for a turn: when this returns, this writer holds the place nearest the lock
        that it got (the deadline may have passed: the caller then tries the lock once)."""
        if _fcntl is None:  # pragma: no cover - not POSIX
            return
        try:
            fd = self.fd = _open_queue(self.path)
            for place in reversed(range(QUEUE_PLACES)):

                def attempt(place: int = place) -> bool:
                    try:
                        _fcntl.lockf(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB, 1, place)
                    except (BlockingIOError, PermissionError):  # EAGAIN, EACCES: taken
                        return False
                    return True

                patience = 0.0 if place in self.passed else QUEUE_PATIENCE
                if wait.poll(attempt, limit=time.monotonic() + patience):
                    if self.held is not None:
                        _fcntl.lockf(fd, _fcntl.LOCK_UN, 1, self.held)
                    self.held = place
                    self.passed.discard(place)  # free again: the stopped waiter went on
                elif time.monotonic() >= wait.deadline:
                    return
                else:
                    self.passed.add(place)  # a stopped waiter holds it: pass it
        except (OSError, JournalError):
            self.leave()  # no queue (see the class): the lock still keeps writers apart

    def leave(self) -> None:
        fd, self.fd, self.held = self.fd, None, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # drops this process's places


def _open_queue(path: Path) -> int:
    import stat

    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError("not a regular file")
        # a file planted by another user could hold places forever: like a planted lock file
        check_trusted(path, st, "lock file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def take_lock(
    lock: FileLock,
    lock_path: Path,
    timeout: float,
    on_wait: Callable[[str], None] | None = None,
    *,
    queue: _Queue | None = None,
    setting: str = "resume_lock_timeout",
) -> None:
    """Acquire ``lock``; when it is still busy after a second, say who holds it (a stopped
    process holds it forever), then wait up to ``timeout`` in all. ``setting`` is what the
    timeout error tells the user to raise.

    With ``queue`` (see :class:`_Queue`) waiting is in turn: whoever wants the lock, the
    holder whose lease just ended included, first waits for a turn behind those already
    waiting. Without it a writer that appends nonstop took the lock back within
    microseconds of releasing it, before a waiter polling every 5 ms could, and other
    sessions waited for tens of seconds (measured: 14.5 s with 3 writers) until one gave up
    recording. A place held past :data:`QUEUE_PATIENCE` (a stopped waiter) is passed (see
    :class:`_Queue`).

    Re-checks after locking that the lock file is still the file at the path (a lock on a
    deleted file excludes nobody) and writes ``<pid> <host>`` into it for whoever waits next.
    Raises :class:`JournalLockTimeout` or :class:`JournalError` with one line.
    """
    wait = _Wait(lock_path, timeout, on_wait, setting)
    if queue is None or timeout <= 0:
        _take_lock(lock, lock_path, wait)
        return
    try:
        queue.wait_turn(wait)
        _take_lock(lock, lock_path, wait)
    finally:
        queue.leave()  # also on Ctrl-C while waiting: no place is kept


def _take_lock(lock: FileLock, lock_path: Path, wait: _Wait) -> None:
    for _ in range(100):  # the lock file can be deleted under us only so often
        try:
            got = wait.acquire(lock)
        except OSError as exc:
            raise JournalError(
                f"resumable: cannot lock the journal {lock_path}: {exc.strerror}"
            ) from exc
        if not got:
            raise wait.timed_out()
        fd = lock.fd
        on_path: os.stat_result | None = None
        try:
            on_path = os.stat(lock_path)
            mine = os.fstat(fd) if fd is not None else on_path
            check_trusted(lock_path, on_path, "lock file")
        except FileNotFoundError:
            pass
        except BaseException:
            lock.release()
            raise
        if on_path is not None and (mine.st_dev, mine.st_ino) == (on_path.st_dev, on_path.st_ino):
            if fd is not None and _plain_file(mine):
                with contextlib.suppress(OSError):
                    data = f"{os.getpid()} {socket.gethostname()}\n".encode()
                    os.pwrite(fd, data, 0)
                    os.ftruncate(fd, len(data))
            return
        lock.release()  # deleted or replaced while we waited: lock the file that is there now
    raise JournalError(f"resumable: the journal lock {lock_path} keeps disappearing")


_monotonic = time.monotonic


def _plain_file(st: os.stat_result) -> bool:
    # never write into a lock file planted as a hard link to someone's file
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


_LOCK_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_NONBLOCK  # a FIFO planted at the path must not block the open
    | getattr(os, "O_NOFOLLOW", 0)  # nor a symlink lead the open to someone's file
    | getattr(os, "O_CLOEXEC", 0)
)


class FileLock:
    """An exclusive lock on ``path``: ``flock`` on a descriptor of our own on POSIX, the lock
    ``filelock.FileLock`` takes there, so writers of earlier releases (which took it through
    filelock) and this one exclude each other. ``filelock`` only where there is no ``fcntl``.

    Why not filelock itself: importing filelock 4 installs an audit hook that the interpreter
    keeps to its very end. Through ``typing``'s overload registry the hook reached every
    assertion-rewritten module with an ``@overload`` (hypothesis's, a conftest's), and from
    their ``__loader__`` pytest's rewriting hook, the config and the whole session: the exit's
    collections walked the session again (+0.6 s of CPU at 10,000 tests with hypothesis
    installed; docs/architecture.md). Its fork handlers also gate a release while another
    thread forks, which deadlocked an earlier attempt at a fork-safe lease thread.

    Where ``flock`` is refused (some network file systems) the lock cannot be taken: the
    caller says so in one line and the session runs unrecorded. A forked child closes its copy
    of the descriptor at once (:func:`_after_fork_in_child`): a child that outlives a killed
    session must not keep its locks.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self._fallback: filelock.BaseFileLock | None = None
        if _fcntl is None:  # pragma: no cover - not POSIX
            import filelock

            self._fallback = filelock.FileLock(path, timeout=0, thread_local=False)
        _LOCKS.add(self)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; ``False`` if someone holds it. ``OSError`` when the
        lock file cannot be opened (a directory, a symlink) or ``flock`` is refused."""
        if self._fallback is not None:  # pragma: no cover - not POSIX
            import filelock

            try:
                self._fallback.acquire(timeout=0)
            except filelock.Timeout:
                return False
            return True
        if self.fd is not None:
            return True
        try:
            fd = os.open(self.path, _LOCK_FLAGS, 0o644)
        except FileNotFoundError:  # as filelock did: the directory is made
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, _LOCK_FLAGS, 0o644)
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self._fallback is not None:  # pragma: no cover - not POSIX
            self._fallback.release()
            return
        fd, self.fd = self.fd, None
        if fd is not None:
            # unlock first: a child forked without Python's fork handlers (``fork()`` from C,
            # ctypes) shares the open file, and closing alone would leave it locked by that
            # child: the session then waited for its own lock and stopped recording
            with contextlib.suppress(OSError):
                _fcntl.flock(fd, _fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)

    def forget(self) -> None:
        """In a forked child: close this process's copy of the descriptor. The lock belongs to
        the open file the parent shares, so this leaves the parent's lock held (``LOCK_UN``
        would drop it), and nothing of the child holds it once the parent is gone."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class JournalWriter:
    """Appends records to one journal file, safely when several processes share it."""

    def __init__(
        self,
        path: Path,
        *,
        fsync: FsyncMode = "interval",
        lock_timeout: float = 30.0,
        idle: float = 0.1,
        max_hold: float = 0.5,
        fsync_interval: float = 1.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.lock_path = Path(f"{path}.lock")
        self.fsync = fsync
        self._sync_always = fsync == "always"
        self._sync_interval = fsync == "interval"
        self.lock_timeout = lock_timeout
        self._idle = idle
        self._max_hold = max_hold
        self._fsync_interval = fsync_interval
        self._on_wait = on_wait
        self._lock = FileLock(self.lock_path)
        self._queue = new_queue(self.lock_path)
        # A raw lock: ``with`` on it is one C call on the per-record path.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._fd: int | None = None
        self._held = False
        #: when the append path hands the lease over (queues for the lock again): held for
        #: ``max_hold``; 0 while not held, so one comparison tells an append either
        self._turn_at = 0.0
        self._last_write = 0.0
        #: how often the lease thread woke (tests: appends nonstop must not wake it often)
        self.wakes = 0
        self._dirty = False
        self._last_sync = 0.0
        self._closing = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: ``created`` of the header of the file this writer started in: a file at the path
        #: with another one is not ours (deleted, or replaced by someone; compaction keeps it)
        self._created: float | None = None
        #: records written again at the top of a foreign file that replaced ours
        self.preamble: list[bytes] = []
        #: how often the journal was found deleted or replaced by another file
        self.replaced = 0
        self.forked = False
        _WRITERS.add(self)

    # -- public

    def after_fork_in_child(self) -> None:
        """Called in a forked child (a test that forks and whose child returns into pytest):
        a second process must never write this session's records (duplicates, two end
        records), and the child lets go of the descriptors (an inherited lock would outlive
        the parent)."""
        if self.forked:
            # a child's child: the descriptors were closed in the child, and their numbers may
            # be the child's own files now (a pipe it opened before forking again)
            return
        self.forked = True
        fd, self._fd = self._fd, None
        # (the lock's descriptor is closed by the fork handler, before this)
        for number in (fd, self._queue.fd):
            if number is not None:
                with contextlib.suppress(OSError):
                    os.close(number)

    def open(self) -> None:
        """Check that the journal can be written: take the lock once and open the file.

        Raises :class:`JournalError` with a one-line message when it cannot.
        """
        with self._cond:
            self._acquire()
            self._release()

    def append(self, record: Record) -> None:
        self.append_bytes(encode(record))

    def append_bytes(self, data: bytes) -> None:
        """Append whole lines. Raises :class:`JournalError` on any failure to write."""
        if self.forked:
            return
        # ``with``, never ``acquire(); try:``: a KeyboardInterrupt can land between those two
        # and leave the mutex held, and close() would hang (test_journal.py)
        with self._mutex:
            now = _monotonic()
            if now >= self._turn_at:  # not held, or held for max_hold: queue for a turn
                now = self._take_turn()
            fd = self._fd
            if fd is None:  # pragma: no cover - _acquire() opened it or raised
                raise JournalError(f"resumable: the journal {self.path} is not open")
            try:
                written = os.write(fd, data)
                if written != len(data):  # short write (disk full): the rest, or an OSError
                    _write_all(fd, data[written:])
                if self._sync_always:
                    os.fsync(fd)
            except OSError as exc:
                raise JournalError(
                    f"resumable: cannot write to the journal {self.path}: {exc.strerror}"
                ) from exc
            self._dirty = self._sync_interval
            self._last_write = now

    def close(self) -> None:
        """Release the lock, sync (unless ``fsync`` is ``never``) and close. Idempotent."""
        if self.forked:
            return  # a forked child: the descriptors were the parent's, and are closed
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            if self._fd is not None:
                if self.fsync != "never" and not self.forked:
                    with contextlib.suppress(OSError):
                        os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
            if self._held:
                self._release()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # -- lease

    @contextlib.contextmanager
    def without_thread(self) -> Iterator[None]:
        """Stop the lease thread (releasing the lease) for a ``fork``: a process with threads
        should not fork (Python 3.12 warns, and a lock held by the thread would be held
        forever in the child). The next append starts the thread again."""
        thread = self._thread
        with self._cond:
            if self._held:
                if self._fd is not None and self._dirty and self.fsync != "never":
                    with contextlib.suppress(OSError):
                        os.fsync(self._fd)
                    self._dirty = False
                self._release()
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=5)
        with self._cond:
            self._thread = None
            self._stopping = False
        yield

    def _take_turn(self) -> float:
        """The lease is not held, or has been held for ``max_hold``: (let go of it and) take
        it again behind those waiting (:func:`take_lock`'s queue). Runs in the append path,
        under the mutex: handing the lease over costs the lease thread no wake-up."""
        handing_over = self._held
        if handing_over:
            self._release()
        elif self._closing:
            raise JournalError("resumable: the journal writer is closed")
        self._acquire()
        if not handing_over:
            self._wake()  # (handing over: the thread's next look for a pause sees the new lease)
        return _monotonic()

    def _wake(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._lease_loop, name="pytest-resumable-journal", daemon=True
            )
            self._thread.start()
        else:
            self._cond.notify()

    def _lease_loop(self) -> None:
        """Release the lease when appends pause and sync at most every ``fsync_interval``.

        Appends never notify this thread while it holds the lease (they only update
        ``_last_write``), and the append path hands the lease over at ``max_hold`` itself:
        while appends go on, this thread wakes once per ``max_hold`` to look for a pause and
        once per ``fsync_interval`` to sync. Every wake-up costs the test loop: the thread
        takes the interpreter lock from the main thread, and gets it back from it, at each of
        its system calls. (Waking every 0.1 s was once measured at 1.5-2.4 % of the CPU of
        10,000 trivial tests; 24 pairs of the two codes run side by side later showed no
        difference beyond this machine's noise, +0.4 % median, so the saving is unproven;
        the thread is kept asleep anyway, which costs nothing.)
        """
        checked = 0.0
        with self._cond:
            while not self._closing and not self._stopping:
                if not self._held and not self._dirty:
                    self._cond.wait()  # the first look for a pause is ``idle`` after an append
                    continue
                now = time.monotonic()
                due = []
                if self._held:
                    # a pause of ``idle``, looked for once per max_hold at most
                    due.append(max(self._last_write + self._idle, checked + self._max_hold))
                if self._dirty:
                    due.append(self._last_sync + self._fsync_interval)
                wait = min(due) - now
                if wait > 0:
                    self._cond.wait(wait)
                    if self._closing:
                        break
                    now = time.monotonic()
                self.wakes += 1
                checked = now
                if (
                    self._dirty
                    and self._fd is not None
                    and now - self._last_sync >= self._fsync_interval
                ):
                    fd, self._dirty, self._last_sync = self._fd, False, now
                    # fsync without the mutex: appends must never wait for the disk. If
                    # close() closes fd meanwhile, fsync fails harmlessly; close() syncs.
                    self._cond.release()
                    try:
                        with contextlib.suppress(OSError):
                            os.fsync(fd)
                    finally:
                        self._cond.acquire()
                if self._held and now - self._last_write >= self._idle:
                    self._release()

    def _acquire(self) -> None:
        """Take the file lock and make ``self._fd`` the live, well-terminated journal file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"resumable: cannot create the journal directory {self.path.parent}: {exc.strerror}"
            ) from exc
        take_lock(self._lock, self.lock_path, self.lock_timeout, self._on_wait, queue=self._queue)
        self._held = True
        self._turn_at = time.monotonic() + self._max_hold
        try:
            self._check_file()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        self._held = False
        self._turn_at = 0.0
        if self._fd is not None:
            _unlock_fd(self._fd)
        try:
            self._lock.release()
        except OSError:  # pragma: no cover - nothing useful to do; the OS drops it at exit
            pass

    def _check_file(self) -> None:
        # Lock the journal file itself, then re-check that it is the file at the path:
        # compaction replaces it, and someone may delete the lock file while we hold the
        # lease (then ``compact`` could lock a new lock file): a second lock on the journal's
        # own inode keeps a rewrite from reading it while we may still append to it.
        try:
            for _ in range(100):
                if self._fd is None:
                    self._open_file()
                assert self._fd is not None
                _lock_fd_exclusively(self._fd)
                if same_file(self.path, self._fd):
                    break
                os.close(self._fd)  # replaced while we waited: closing drops that lock
                self._fd = None
            else:  # pragma: no cover - the path keeps being replaced
                raise JournalError(f"resumable: the journal {self.path} keeps being replaced")
            size = os.fstat(self._fd).st_size
            assert self._fd is not None
            if size == 0:
                created = round(time.time(), 3)
                _write_all(self._fd, encode(HeaderRecord(VERSION, created)))
                self._adopt(created)
            elif os.pread(self._fd, 1, size - 1) != b"\n":
                # A writer died mid-line (or the disk filled up): end the torn line so the
                # next record is not glued to it. Readers skip the torn line and count it.
                _write_all(self._fd, b"\n")
        except JournalError:
            raise
        except IsADirectoryError as exc:
            raise JournalError(f"resumable: the journal path {self.path} is a directory") from exc
        except OSError as exc:
            raise JournalError(
                f"resumable: cannot write to the journal {self.path}: {exc.strerror}"
            ) from exc

    def _open_file(self) -> None:
        header = read_header(self.path)  # refuses a newer version, a foreign or special file
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags | os.O_NONBLOCK, 0o644)
        import stat

        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):  # raced into a FIFO or device after read_header
            os.close(self._fd)
            self._fd = None
            raise JournalError(f"resumable: the journal path {self.path} is not a regular file")
        os.set_blocking(self._fd, True)
        if header is not None:
            self._adopt(header.created)

    def _adopt(self, created: float | None) -> None:
        if self._created is None:
            self._created = created if created is not None else -1.0
        elif created != self._created:
            # not compaction (which keeps ``created``): the journal was deleted or replaced
            self.replaced += 1
            self._created = created if created is not None else -1.0
            for line in self.preamble:
                _write_all(self._fd, line)  # type: ignore[arg-type]


def same_file(path: Path, fd: int) -> bool:
    """Whether ``fd`` is the file at ``path`` now (same device and inode)."""
    try:
        on_path = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_path.st_dev, on_path.st_ino) == (mine.st_dev, mine.st_ino)


def _lock_fd_exclusively(fd: int) -> None:
    if _fcntl is not None:  # not POSIX: the lock file alone
        _fcntl.flock(fd, _fcntl.LOCK_EX)


def _unlock_fd(fd: int) -> None:
    if _fcntl is not None:
        with contextlib.suppress(OSError):
            _fcntl.flock(fd, _fcntl.LOCK_UN)


def lock_journal_file(path: Path) -> int | None:
    """Open and lock the journal file itself (what writers lock while they hold the lease);
    ``None`` if there is no file. The caller closes the descriptor, which unlocks it."""
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError:
            return None
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        _lock_fd_exclusively(fd)
        if same_file(path, fd):
            return fd
        os.close(fd)
    return None  # pragma: no cover


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises instead on Linux
            raise OSError(28, "No space left on device")
        view = view[written:]


def attempt_alive(journal: Path, run: str) -> bool:
    """Whether a live session holds the attempt lock of ``run`` (is recording it now). A lock
    that cannot be tried (its path a directory, a symlink) counts as alive: whoever asks
    (compaction) then keeps the run, rather than failing or dropping a live one."""
    lock = AttemptLock(journal, run)
    if not lock.path.exists() and not lock.path.is_symlink():
        return False
    try:
        if lock.take() is not None:
            return True
    except JournalError:
        return True
    lock.release()
    return False


class AttemptLock:
    """Held by a live attempt of a run for its whole lifetime; the kernel drops it when the
    process dies. A second session finds it busy and does not continue the same run."""

    def __init__(self, journal: Path, run: str) -> None:
        safe = "".join(c for c in run if c.isalnum())[:64]
        self.path = journal.with_name(f"{journal.name}.run-{safe}.lock")
        self._lock = FileLock(self.path)
        self._held = False
        self._pid = os.getpid()

    def take(self) -> str | None:
        """Take the lock; ``None`` when taken, else who holds it (``pid 12 on host``)."""
        try:
            take_lock(self._lock, self.path, 0)
        except JournalLockTimeout:
            return lock_holder(self.path) or "another process"
        self._held = True
        return None

    def release(self) -> None:
        if self._held and os.getpid() == self._pid:  # never from a forked child
            self._held = False
            with contextlib.suppress(OSError):
                self.path.unlink()  # unlinked while held: a waiter re-checks the path
            with contextlib.suppress(OSError):
                self._lock.release()
