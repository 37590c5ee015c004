"""The journal: an append-only JSON-lines file of runs, attempts, starts and results.

This module knows nothing of pytest. It encodes and decodes records, appends them safely when
several processes share one file, and reads a file back without ever raising on what it finds
in it. The format is a public interface, documented in ``docs/journal-format.md``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

if TYPE_CHECKING:
    import filelock

from pytest_resumable.outcomes import BAD_OUTCOMES, OUTCOMES, Outcome

__all__ = ["BAD_OUTCOMES", "OUTCOMES", "Outcome"]  # re-exported

FORMAT: Final = "pytest-resumable"
VERSION: Final = 1

FsyncMode: TypeAlias = Literal["always", "interval", "never"]
FSYNC_MODES: Final = ("always", "interval", "never")

#: Failure text kept for replay, per test (SPEC §5): one huge traceback must not bloat the file.
TEXT_CAP: Final = 64 * 1024


class JournalError(Exception):
    """A journal cannot be used. ``str()`` is one line meant for the user."""


class JournalVersionError(JournalError):
    """The journal was written by a newer pytest-resumable; it is never written to."""


class JournalLockTimeout(JournalError):
    """Another live process held the journal lock longer than the timeout."""


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class HeaderRecord:
    version: int
    created: float | None = None


@dataclass(frozen=True)
class RunRecord:
    run: str
    time: float
    resume_id: str | None = None
    shard: str | None = None


@dataclass(frozen=True)
class AttemptRecord:
    run: str
    attempt: int
    time: float
    pid: int | None = None
    host: str | None = None


@dataclass(frozen=True)
class StartRecord:
    run: str
    attempt: int
    test: str


@dataclass(frozen=True)
class ResultRecord:
    run: str
    attempt: int
    test: str
    outcome: Outcome
    duration: float
    when: str | None = None
    line: int | None = None
    file_hash: str | None = None
    message: str | None = None
    longrepr: str | None = None


@dataclass(frozen=True)
class EndRecord:
    run: str
    attempt: int
    time: float
    status: int
    selected: int
    results: int
    complete: bool


@dataclass(frozen=True)
class ShardRecord:
    """A shard's assignment, frozen on the run's first attempt (SPEC §4.10).

    ``tests``: the shard's own tests; ``selection``: every test selected when it was frozen
    (all shards) and ``assignment``: the 0-based shard of each of them, stored
    zlib-compressed and base64-encoded as ``selection_z`` and ``assignment_z``. The shards of
    one CI run that start later adopt the first one's assignment, so all agree.
    """

    run: str
    attempt: int
    shard: str
    tests: tuple[str, ...]
    selection: tuple[str, ...]
    assignment: tuple[int, ...] = ()


@dataclass(frozen=True)
class DurationsRecord:
    """Durations of tests whose results compaction dropped, so ordering keeps learning."""

    time: float
    tests: dict[str, float] = field(default_factory=dict)


Record: TypeAlias = (
    HeaderRecord
    | RunRecord
    | AttemptRecord
    | StartRecord
    | ResultRecord
    | EndRecord
    | ShardRecord
    | DurationsRecord
)


def pack_ids(ids: tuple[str, ...] | tuple[int, ...] | list[str]) -> str:
    """A list as one compact JSON string: zlib-compressed JSON list, base64."""
    import base64
    import zlib

    raw = json.dumps(list(ids), ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(zlib.compress(raw.encode("utf-8", "surrogatepass"), 6)).decode()


def unpack_ids(text: str) -> tuple[str, ...]:
    """The inverse of :func:`pack_ids`; raises ValueError on anything else (never evaluates)."""
    import base64
    import binascii
    import zlib

    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
        ids = json.loads(raw)
    except (binascii.Error, zlib.error, UnicodeError, ValueError) as exc:
        raise ValueError("selection_z") from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("selection_z")
    return tuple(ids)


def unpack_ints(text: str, size: int) -> tuple[int, ...]:
    """The shard numbers packed by :func:`pack_ids`: ``size`` ints >= 0, or ValueError."""
    import base64
    import binascii
    import zlib

    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
        values = json.loads(raw)
    except (binascii.Error, zlib.error, UnicodeError, ValueError) as exc:
        raise ValueError("assignment_z") from exc
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(type(v) is int and v >= 0 for v in values)
    ):
        raise ValueError("assignment_z")
    return tuple(values)


_enc = json.encoder.encode_basestring  # the C implementation when available


def _s(value: str | None) -> str:
    return "null" if value is None else _enc(value)


def _n(value: float | int | None) -> str:
    return "null" if value is None else repr(value)


def cap_text(text: str | None, limit: int = TEXT_CAP) -> str | None:
    """Cut ``text`` to at most ``limit`` characters, saying so at the cut."""
    if text is None or len(text) <= limit:
        return text
    note = f"\n[... {len(text) - limit} characters cut by pytest-resumable ...]"
    return text[: limit - len(note)] + note


# Every record starts with "type" then "run": readers use these prefixes to skip the start and
# result lines of other runs without parsing them (~0.1 µs instead of ~4 µs a line).
START_PREFIX: Final = b'{"type":"start",'
RESULT_PREFIX: Final = b'{"type":"result",'


def start_prefix(run: str, attempt: int) -> str:
    """The fixed part of the start records of one attempt; add ``encode_str(test) + "}\\n"``."""
    return f'{{"type":"start","run":{_s(run)},"attempt":{attempt},"test":'


encode_str = _enc


def encode_passed(
    run: str, attempt: int, test: str, duration: float, line: int | None, file_hash: str | None
) -> bytes:
    """``encode(ResultRecord(..., "passed", ...))``, without building the record: the hot path
    of a passing test (most tests), ~1 µs."""
    return (
        f'{{"type":"result","run":{_s(run)},"attempt":{attempt},"test":{_enc(test)},'
        f'"outcome":"passed","duration":{round(duration, 6)!r}'
        + ("" if line is None else f',"line":{line}')
        + ("" if file_hash is None else f',"file_hash":{_enc(file_hash)}')
        + "}\n"
    ).encode("utf-8", "surrogatepass")


def encode(record: Record) -> bytes:
    """One record as one ``\\n``-terminated line of UTF-8 JSON."""
    if isinstance(record, StartRecord):
        # Hand-formatted: the start and result lines are written for every test.
        return (start_prefix(record.run, record.attempt) + _enc(record.test) + "}\n").encode(
            "utf-8", "surrogatepass"
        )
    if isinstance(record, ResultRecord):
        line = (
            f'{{"type":"result","run":{_s(record.run)},"attempt":{record.attempt},'
            f'"test":{_s(record.test)},"outcome":"{record.outcome}",'
            f'"duration":{_n(round(record.duration, 6))}'
        )
        if record.when is not None:
            line += f',"when":{_s(record.when)}'
        if record.line is not None:
            line += f',"line":{record.line}'
        if record.file_hash is not None:
            line += f',"file_hash":{_s(record.file_hash)}'
        if record.message is not None:
            line += f',"message":{_s(cap_text(record.message, 4096))}'
        if record.longrepr is not None:
            line += f',"longrepr":{_s(cap_text(record.longrepr))}'
        return (line + "}\n").encode("utf-8", "surrogatepass")
    fields: dict[str, Any]
    if isinstance(record, HeaderRecord):
        fields = {"type": "header", "format": FORMAT, "version": record.version}
        if record.created is not None:
            fields["created"] = record.created
    elif isinstance(record, RunRecord):
        fields = {
            "type": "run",
            "run": record.run,
            "time": record.time,
            "resume_id": record.resume_id,
            "shard": record.shard,
        }
    elif isinstance(record, AttemptRecord):
        fields = {
            "type": "attempt",
            "run": record.run,
            "attempt": record.attempt,
            "time": record.time,
            "pid": record.pid,
            "host": record.host,
        }
    elif isinstance(record, ShardRecord):
        fields = {
            "type": "shard",
            "run": record.run,
            "attempt": record.attempt,
            "shard": record.shard,
            "tests": list(record.tests),
            "selection_z": pack_ids(record.selection),
            "assignment_z": pack_ids(record.assignment),
        }
    elif isinstance(record, DurationsRecord):
        fields = {"type": "durations", "time": record.time, "tests": record.tests}
    else:
        fields = {
            "type": "end",
            "run": record.run,
            "attempt": record.attempt,
            "time": record.time,
            "status": record.status,
            "selected": record.selected,
            "results": record.results,
            "complete": record.complete,
        }
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8", "surrogatepass")


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(key)
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(key)
    return value


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(key)
    return value


def _num(obj: dict[str, Any], key: str) -> float:
    value = obj[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise TypeError(key)
    return float(value)


class _Unknown:
    """A well-formed record of a type this version does not use: ignored, not counted."""


UNKNOWN: Final = _Unknown()


def decode(line: bytes) -> Record | _Unknown | None:
    """Parse one line. ``None`` when it is not a valid record (the caller counts it).

    Never raises, whatever the bytes: the journal is data, never code, and is only parsed
    as JSON and type-checked field by field.
    """
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict):
            return None
        kind = obj.get("type")
        if kind == "start":
            return StartRecord(_str(obj, "run"), _int(obj, "attempt"), _str(obj, "test"))
        if kind == "result":
            outcome = _str(obj, "outcome")
            if outcome not in OUTCOMES:
                return None
            return ResultRecord(
                run=_str(obj, "run"),
                attempt=_int(obj, "attempt"),
                test=_str(obj, "test"),
                outcome=outcome,  # type: ignore[arg-type]  # checked against OUTCOMES
                duration=_num(obj, "duration"),
                when=_opt_str(obj, "when"),
                line=_opt_int(obj, "line"),
                file_hash=_opt_str(obj, "file_hash"),
                message=_opt_str(obj, "message"),
                longrepr=_opt_str(obj, "longrepr"),
            )
        if kind == "run":
            return RunRecord(
                _str(obj, "run"),
                _num(obj, "time"),
                _opt_str(obj, "resume_id"),
                _opt_str(obj, "shard"),
            )
        if kind == "attempt":
            host = obj.get("host")
            return AttemptRecord(
                _str(obj, "run"),
                _int(obj, "attempt"),
                _num(obj, "time"),
                _opt_int(obj, "pid"),
                host if isinstance(host, str) else None,
            )
        if kind == "end":
            complete = obj["complete"]
            if not isinstance(complete, bool):
                return None
            return EndRecord(
                _str(obj, "run"),
                _int(obj, "attempt"),
                _num(obj, "time"),
                _int(obj, "status"),
                _int(obj, "selected"),
                _int(obj, "results"),
                complete,
            )
        if kind == "shard":
            tests = obj["tests"]
            if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
                return None
            selection = unpack_ids(_str(obj, "selection_z"))
            return ShardRecord(
                _str(obj, "run"),
                _int(obj, "attempt"),
                _str(obj, "shard"),
                tuple(tests),
                selection,
                unpack_ints(_str(obj, "assignment_z"), len(selection)),
            )
        if kind == "durations":
            given = obj["tests"]
            if not isinstance(given, dict):
                return None
            durations = {
                k: float(v)
                for k, v in given.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            }
            return DurationsRecord(_num(obj, "time"), durations)
        if kind == "header":
            if obj.get("format") != FORMAT:
                return None
            created = obj.get("created")
            return HeaderRecord(
                _int(obj, "version"), float(created) if isinstance(created, (int, float)) else None
            )
        if isinstance(kind, str):
            return UNKNOWN
        return None
    except (ValueError, TypeError, KeyError, RecursionError, OverflowError):
        return None


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class ReadStats:
    """What a read found besides records."""

    lines: int = 0
    corrupt: int = 0
    torn_tail: bool = False
    header: HeaderRecord | None = None
    corrupt_lines: list[int] = field(default_factory=list)


def check_version(header: HeaderRecord, path: Path | str) -> None:
    if header.version > VERSION:
        raise JournalVersionError(
            f"resumable: the journal {path} has format version {header.version}, but this "
            f"pytest-resumable understands version {VERSION} at most; upgrade "
            f"pytest-resumable or use another journal (the file is left untouched)"
        )


def iter_records(
    path: Path | str,
    stats: ReadStats,
    *,
    skip: Callable[[bytes], bool] | None = None,
    limit: int | None = None,
) -> Iterator[Record]:
    """Yield the valid records of the journal at ``path``, in file order.

    Lines that do not parse are counted in ``stats`` and skipped. A last line without ``\\n``
    is a write in progress or a torn write: it is ignored, not counted. ``skip`` sees each raw
    line first; lines it accepts are neither parsed nor counted (the caller knows what they
    are). ``limit`` stops reading at that byte offset. A newer format version raises
    :class:`JournalVersionError` before any record is yielded. A missing file has no records.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in finally
    except FileNotFoundError:
        return
    except IsADirectoryError as exc:
        raise JournalError(f"resumable: the journal path {path} is a directory") from exc
    except OSError as exc:
        raise JournalError(f"resumable: cannot read the journal {path}: {exc.strerror}") from exc
    try:
        offset = 0
        first = True
        for raw in f:
            offset += len(raw)
            if limit is not None and offset > limit:
                break
            if not raw.endswith(b"\n"):
                stats.torn_tail = True
                break
            stats.lines += 1
            if skip is not None and not first and skip(raw):
                continue
            record = decode(raw)
            if first:
                first = False
                if isinstance(record, HeaderRecord):
                    check_version(record, path)
                    stats.header = record
                    continue
            if record is None:
                if raw != b"\n":  # a lone newline is not worth a warning
                    stats.corrupt += 1
                    if len(stats.corrupt_lines) < 20:
                        stats.corrupt_lines.append(stats.lines)
                continue
            if isinstance(record, (_Unknown, HeaderRecord)):
                continue
            yield record
    finally:
        f.close()


def read_header(path: Path | str) -> HeaderRecord | None:
    """The header of the journal at ``path``, ``None`` if the file is missing or empty.

    Raises :class:`JournalError` when the file is not a pytest-resumable journal and
    :class:`JournalVersionError` when it is newer than this code.
    """
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 16)
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise JournalError(f"resumable: the journal path {path} is a directory") from exc
    except OSError as exc:
        raise JournalError(f"resumable: cannot read the journal {path}: {exc.strerror}") from exc
    if not first.strip(b"\x00\r\n\t "):
        return None
    record = decode(first)
    if not isinstance(record, HeaderRecord):
        raise JournalError(
            f"resumable: {path} is not a pytest-resumable journal (its first line is not a "
            f"header); point --resume-journal elsewhere or remove the file"
        )
    check_version(record, path)
    return record


# --------------------------------------------------------------------------------------------
# Writing


class JournalWriter:
    """Appends records to one journal file, safely when several processes share it.

    Each record is one ``os.write`` of a whole line to a file opened with ``O_APPEND``, made while
    this process holds ``filelock.FileLock`` on ``<journal>.lock``. Taking that lock costs ~90 µs
    (measured), more than a trivial test's whole budget of 3 %, so the lock is *leased*: taken at
    the first append, kept across the appends that follow, and released by a background thread
    once appends pause for ``idle`` seconds or the lease is ``max_hold`` seconds old. Other
    writers and ``compact`` therefore wait at most ~``max_hold``. No record waits in a buffer:
    each is in the file (the OS page cache) when :meth:`append` returns, so killing the process
    at any moment loses nothing, and the OS drops the lock of a dead process.

    Each time the lock is taken the writer re-checks that its open file is still the file at the
    path (device and inode; ``compact`` replaces it) and terminates a torn last line left by a
    writer that died mid-write, so no record is ever glued to garbage.
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync: FsyncMode = "interval",
        lock_timeout: float = 30.0,
        idle: float = 0.05,
        max_hold: float = 0.5,
        fsync_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.lock_path = Path(f"{path}.lock")
        self.fsync = fsync
        self.lock_timeout = lock_timeout
        self._idle = idle
        self._max_hold = max_hold
        self._fsync_interval = fsync_interval
        # Imported here: only the process that writes needs filelock (xdist workers never do).
        import filelock

        self._filelock_timeout: type[Exception] = filelock.Timeout
        self._lock: filelock.BaseFileLock = filelock.FileLock(
            self.lock_path, timeout=lock_timeout, thread_local=False
        )
        # A raw lock: ``with`` on it is one C call on the per-record path.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._fd: int | None = None
        self._held = False
        self._held_since = 0.0
        self._last_write = 0.0
        self._dirty = False
        self._last_sync = 0.0
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- public

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
        with self._mutex:
            if not self._held:
                if self._closing:
                    raise JournalError("resumable: the journal writer is closed")
                self._acquire()
                self._wake()
            fd = self._fd
            assert fd is not None
            try:
                written = os.write(fd, data)
                if written != len(data):  # short write (disk full): the rest, or an OSError
                    _write_all(fd, data[written:])
                if self.fsync == "always":
                    os.fsync(fd)
                elif not self._dirty and self.fsync == "interval":
                    self._dirty = True
                    self._wake()
            except OSError as exc:
                raise JournalError(
                    f"resumable: cannot write to the journal {self.path}: {exc.strerror}"
                ) from exc
            self._last_write = time.monotonic()

    def close(self) -> None:
        """Release the lock, sync (unless ``fsync`` is ``never``) and close. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            if self._fd is not None:
                if self.fsync != "never":
                    with contextlib.suppress(OSError):
                        os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
            if self._held:
                self._release()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # -- lease

    def _wake(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._lease_loop, name="pytest-resumable-journal", daemon=True
            )
            self._thread.start()
        else:
            self._cond.notify()

    def _lease_loop(self) -> None:
        tick = min(self._idle, self._fsync_interval) / 2
        with self._cond:
            while not self._closing:
                if not self._held and not self._dirty:
                    self._cond.wait()
                    continue
                self._cond.wait(tick)
                if self._closing:
                    break
                now = time.monotonic()
                if (
                    self._dirty
                    and self._fd is not None
                    and (now - self._last_sync >= self._fsync_interval)
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
                if self._held and (
                    now - self._last_write >= self._idle or now - self._held_since >= self._max_hold
                ):
                    self._release()

    def _acquire(self) -> None:
        """Take the file lock and make ``self._fd`` the live, well-terminated journal file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"resumable: cannot create the journal directory {self.path.parent}: {exc.strerror}"
            ) from exc
        try:
            self._lock.acquire()
        except self._filelock_timeout:
            raise JournalLockTimeout(
                f"resumable: waited {self.lock_timeout:g} s for the journal lock "
                f"{self.lock_path}, held by another process; try again, or raise "
                f"resume_lock_timeout"
            ) from None
        except OSError as exc:
            raise JournalError(
                f"resumable: cannot lock the journal {self.lock_path}: {exc.strerror}"
            ) from exc
        self._held = True
        self._held_since = time.monotonic()
        try:
            self._check_file()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        self._held = False
        try:
            self._lock.release()
        except OSError:  # pragma: no cover - nothing useful to do; the OS drops it at exit
            pass

    def _check_file(self) -> None:
        # Re-check the inode after locking: compaction replaces the file at the path.
        try:
            if self._fd is not None:
                try:
                    on_path = os.stat(self.path)
                except FileNotFoundError:
                    on_path = None
                mine = os.fstat(self._fd)
                if on_path is None or (on_path.st_dev, on_path.st_ino) != (
                    mine.st_dev,
                    mine.st_ino,
                ):
                    os.close(self._fd)
                    self._fd = None
            if self._fd is None:
                read_header(self.path)  # refuses a newer version or a file that is not ours
                self._fd = os.open(
                    self.path,
                    os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                    0o644,
                )
            size = os.fstat(self._fd).st_size
            if size == 0:
                _write_all(self._fd, encode(HeaderRecord(VERSION, round(time.time(), 3))))
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises instead on Linux
            raise OSError(28, "No space left on device")
        view = view[written:]
