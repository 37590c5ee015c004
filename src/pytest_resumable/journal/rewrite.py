"""Replacing a journal: ``compact`` (one record per test per run, old runs folded into a
durations summary) and ``merge`` (several journals into one). No pytest import.

Both hold the target journal's lock the whole time and read under it, write a temp file in the
target's directory, fsync it, ``os.replace`` it over the target and fsync the directory, so the
target is always either the old or the new file. Sessions that append meanwhile wait for the
lock (their lease is short) and, having it, see the new inode and reopen; the new file keeps
the old header's ``created``, which tells a writer its journal was rewritten, not replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_resumable.history import History, read_history
from pytest_resumable.journal import codec
from pytest_resumable.journal.errors import JournalError
from pytest_resumable.journal.reader import ReadStats, bounded_lines, iter_records, read_header
from pytest_resumable.journal.records import (
    VERSION,
    AttemptRecord,
    DurationsRecord,
    EndRecord,
    HeaderRecord,
    ResultRecord,
    RunRecord,
    SelectionRecord,
    ShardRecord,
    StartRecord,
)
from pytest_resumable.journal.writer import (
    FileLock,
    attempt_alive,
    lock_journal_file,
    new_queue,
    take_lock,
)

#: runs kept by default: the newest ones, whatever their state
DEFAULT_KEEP_RUNS = 3


@dataclass
class CompactResult:
    before: int
    after: int
    runs_kept: int
    runs_dropped: int
    cleaned: list[str]


def temp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.compact-{os.getpid()}.tmp")


def leftover_temps(path: Path) -> list[Path]:
    """Temp files of a compaction or merge that was killed; ignored by readers."""
    escaped = re.sub(r"([*?\[])", r"[\1]", path.name)
    return sorted(path.parent.glob(f"{escaped}.compact-*.tmp"))


def kept_runs(history: History, keep: int) -> set[str]:
    """The newest ``keep`` runs, every run another attempt could still resume (the newest
    unfinished run of each identity), every unfinished run a live session is recording now
    (two sessions without a ``--resume-id`` share an identity: the older one is not the
    newest, and is still being written), and every run that shares a ``--resume-id`` with a
    kept run (the other shards of one CI run, for ``verify``)."""
    runs = list(history.runs.values())
    kept = {r.id for r in runs[max(0, len(runs) - keep) :]} if keep > 0 else set()
    newest: dict[tuple[str | None, str | None], str] = {}
    for r in runs:
        newest[(r.record.resume_id, r.record.shard)] = r.id
    kept |= {run_id for run_id in newest.values() if not history.runs[run_id].complete}
    kept |= {
        r.id
        for r in runs
        if r.id not in kept and not r.complete and attempt_alive(history.path, r.id)
    }
    ids = {history.runs[r].record.resume_id for r in kept} - {None}
    kept |= {r.id for r in runs if r.record.resume_id in ids}
    return kept


@contextlib.contextmanager
def locked(
    path: Path, timeout: float, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold ``<path>.lock`` (the lock every writer of ``path`` takes); a timeout tells the user
    to raise ``--lock-timeout`` (the commands' option). ``on_wait`` gets the line saying who
    holds the lock, once the wait has lasted a second."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(f"resumable: cannot create {path.parent}: {exc.strerror}") from exc
    lock_path = Path(f"{path}.lock")
    lock = FileLock(lock_path)
    take_lock(
        lock, lock_path, timeout, on_wait, queue=new_queue(lock_path), setting="--lock-timeout"
    )
    try:
        # and the journal file itself, as writers do while they append: if someone deleted
        # the lock file while a writer held its lease, this waits for that writer
        fd = lock_journal_file(path)
        try:
            yield
        finally:
            if fd is not None:
                os.close(fd)
    finally:
        lock.release()


def compact(
    path: Path,
    *,
    keep_runs: int = DEFAULT_KEEP_RUNS,
    lock_timeout: float = 30.0,
    on_step: Callable[[str], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> CompactResult:
    """Compact the journal at ``path`` in place. ``lock_timeout`` 0: give up at once if the
    lock is busy (:class:`JournalLockTimeout`). ``on_step`` is called with the name of each
    step (tests use it to kill the process there); ``on_wait`` as for :func:`locked`."""
    with locked(path, lock_timeout, on_wait=on_wait):
        return _compact_locked(path, keep_runs, on_step or (lambda step: None))


def _compact_locked(path: Path, keep_runs: int, step: Callable[[str], None]) -> CompactResult:
    cleaned = []
    for leftover in leftover_temps(path):
        with contextlib.suppress(OSError):
            leftover.unlink()
            cleaned.append(leftover.name)
    header = read_header(path)  # refuses a newer version or a foreign file: never rewritten
    if header is None:
        return CompactResult(0, 0, 0, 0, cleaned)
    before = os.stat(path).st_size
    # every run's attempts, and every test's latest duration for the new summary
    history = read_history(path, detail=lambda r: False, durations=lambda r: True, limit=before)
    kept = kept_runs(history, keep_runs)
    meta: dict[str, list[bytes]] = {r: [] for r in history.runs if r in kept}
    results: dict[str, dict[bytes, bytes]] = {r: {} for r in meta}
    starts: dict[str, dict[bytes, bytes]] = {r: {} for r in meta}
    _collect(path, before, meta, results, starts)
    step("read")

    def write(out: Callable[[bytes], object]) -> None:
        out(codec.encode(HeaderRecord(VERSION, header.created)))
        if history.durations:
            out(codec.encode(DurationsRecord(round(time.time(), 3), history.durations)))
        for run, lines in meta.items():
            for line in lines:
                out(line)
            for line in results[run].values():
                out(line)
            for key, line in starts[run].items():
                if _newer_start(line, results[run].get(key)):
                    out(line)
        step("temp-written")

    replace_atomically(path, write, step)
    after = os.stat(path).st_size
    return CompactResult(before, after, len(meta), len(history.runs) - len(meta), cleaned)


def _collect(
    path: Path,
    size: int,
    meta: dict[str, list[bytes]],
    results: dict[str, dict[bytes, bytes]],
    starts: dict[str, dict[bytes, bytes]],
) -> None:
    """The lines of the kept runs: their run/attempt/shard/end records, the latest result per
    test and the first start of each test (what was in flight when it has no result)."""
    with open(path, "rb") as f:
        for raw in bounded_lines(f, size):
            if raw is None:
                continue
            fast = codec.test_line_run(raw)
            if fast is None:
                record = codec.decode(raw)
                if isinstance(
                    record, (RunRecord, AttemptRecord, SelectionRecord, EndRecord, ShardRecord)
                ):
                    if record.run in meta:
                        meta[record.run].append(raw)
                    continue
                if not isinstance(record, (ResultRecord, StartRecord)) or record.run not in meta:
                    continue
                raw = codec.encode(record)  # a test line in another key order: ours now
                fast = (isinstance(record, ResultRecord), record.run.encode())
            is_result, run_b = fast
            run = run_b.decode("utf-8", "replace")
            if run not in meta:
                continue  # a dropped run: its durations are in the summary already
            key = codec.test_key(raw)
            if key is None or (is_result and codec.decode(raw) is None):
                continue  # corrupt: dropped
            if is_result:
                bucket = results[run]
                bucket.pop(key, None)  # the latest result last
                bucket[key] = raw
            else:
                # the latest start: what was in flight in the newest attempt is what a
                # resumed attempt must isolate (the first start would hide it)
                starts[run][key] = raw


def _newer_start(start: bytes, result: bytes | None) -> bool:
    """A start line is kept when the test has no result, or started again after it."""
    if result is None:
        return True
    started, ended = codec.decode(start), codec.decode(result)
    return (
        isinstance(started, StartRecord)
        and isinstance(ended, ResultRecord)
        and started.attempt > ended.attempt
    )


def replace_atomically(
    path: Path,
    write: Callable[[Callable[[bytes], object]], None],
    step: Callable[[str], None] = lambda step: None,
) -> None:
    """Write a new file through ``write``, fsync it and rename it over ``path``."""
    tmp = temp_name(path)
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644
        )
        with open(fd, "wb", buffering=1 << 20) as out:
            write(out.write)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        step("before-replace")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise JournalError(f"resumable: cannot write {path}: {exc.strerror}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    step("after-replace")
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def merge(
    inputs: Iterable[Path],
    output: Path,
    *,
    lock_timeout: float = 30.0,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[int, int]:
    """Merge journals into ``output``: every valid record of every input once, in input
    order (runs have random ids, so they stay apart; a line found twice, e.g. the part of a
    journal restored from one CI cache into every shard, is kept once). Returns (records
    written, duplicates dropped). Holds ``output``'s lock and reads every input under it, so
    a session appending to ``output`` (also an input) loses nothing."""
    inputs = list(inputs)
    for path in inputs:
        if not path.is_file():
            raise JournalError(f"resumable: no journal at {path}")
    with locked(output, lock_timeout, on_wait=on_wait):
        existing = read_header(output) if output.exists() else None
        created = existing.created if existing is not None else round(time.time(), 3)
        counts = [0, 0]

        def write(out: Callable[[bytes], object]) -> None:
            seen: set[bytes] = set()
            out(codec.encode(HeaderRecord(VERSION, created)))
            for path in inputs:
                read_header(path)
                for record in iter_records(path, ReadStats()):
                    line = codec.encode(record)
                    digest = hashlib.blake2b(line, digest_size=16).digest()
                    if digest in seen:
                        counts[1] += 1
                        continue
                    seen.add(digest)
                    out(line)
                    counts[0] += 1

        replace_atomically(output, write)
    return counts[0], counts[1]
