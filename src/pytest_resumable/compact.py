"""Rewriting a journal: ``compact`` (one record per test per run, old runs folded into a
durations summary) and ``merge`` (several journals into one). No pytest import.

Both write a temp file in the journal's directory, fsync it, ``os.replace`` it over the target
and fsync the directory, so the target is always either the old or the new file. ``compact``
holds the journal lock the whole time: sessions that append meanwhile wait for it (their lease
is short) and, having the lock, see the new inode and reopen, so nothing they write is lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_resumable.journal import (
    VERSION,
    AttemptRecord,
    DurationsRecord,
    EndRecord,
    HeaderRecord,
    JournalError,
    JournalLockTimeout,
    RunRecord,
    ShardRecord,
    decode,
    encode,
    read_header,
)
from pytest_resumable.runstate import JournalIndex, load_durations, load_index

#: runs kept by default: the newest ones, whatever their state
DEFAULT_KEEP_RUNS = 3

_TEST_LINE = re.compile(rb'^\{"type":"(start|result)","run":"([^"\\\n]*)",')
_RESULT_KEY = re.compile(
    rb'^\{"type":"result","run":"[^"\\\n]*","attempt":\d+,"test":("(?:[^"\\\n]|\\.)*"),'
)
_START_KEY = re.compile(
    rb'^\{"type":"start","run":"[^"\\\n]*","attempt":\d+,"test":("(?:[^"\\\n]|\\.)*")\}\n$'
)


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
    return sorted(path.parent.glob(f"{glob_escape(path.name)}.compact-*.tmp"))


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def kept_runs(index: JournalIndex, keep: int) -> set[str]:
    """The newest ``keep`` runs, every run another attempt could still resume (the newest
    unfinished run of each identity), and every run that shares a ``--resume-id`` with a kept
    run (the other shards of one CI run, for ``verify``)."""
    runs = list(index.runs.values())
    kept = {r.id for r in runs[len(runs) - keep :]} if keep > 0 else set()
    newest: dict[tuple[str | None, str | None], str] = {}
    for r in runs:
        newest[(r.record.resume_id, r.record.shard)] = r.id
    for run_id in newest.values():
        if not index.runs[run_id].complete:
            kept.add(run_id)
    ids = {index.runs[r].record.resume_id for r in kept} - {None}
    kept |= {r.id for r in runs if r.record.resume_id in ids}
    return kept


def _test_of(raw: bytes, key: re.Pattern[bytes]) -> str | None:
    import json

    match = key.match(raw)
    if match is not None:
        text = match.group(1)
        try:
            return json.loads(text) if b"\\" in text else text[1:-1].decode("utf-8")
        except (ValueError, UnicodeError):
            return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    test = obj.get("test") if isinstance(obj, dict) else None
    return test if isinstance(test, str) else None


def compact(
    path: Path,
    *,
    keep_runs: int = DEFAULT_KEEP_RUNS,
    lock_timeout: float = 30.0,
    on_step: Callable[[str], None] | None = None,
) -> CompactResult:
    """Compact the journal at ``path`` in place. ``lock_timeout`` 0: give up at once if the
    lock is busy (:class:`JournalLockTimeout`). ``on_step`` is called with the name of each
    step (tests use it to kill the process there)."""
    import filelock

    lock_path = Path(f"{path}.lock")
    lock = filelock.FileLock(lock_path, timeout=lock_timeout, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise JournalLockTimeout(
            f"resumable: waited {lock_timeout:g} s for the journal lock {lock_path}, held by "
            f"another process; try again"
        ) from None
    except OSError as exc:
        raise JournalError(
            f"resumable: cannot lock the journal {lock_path}: {exc.strerror}"
        ) from exc
    try:
        return _compact_locked(path, keep_runs, on_step or (lambda step: None))
    finally:
        lock.release()


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
    index = load_index(path)
    kept = kept_runs(index, keep_runs)
    # every test's latest duration (old summaries and all results), for the new summary
    durations = load_durations(path)
    meta: dict[str, list[bytes]] = {r: [] for r in index.runs if r in kept}
    results: dict[str, dict[str, bytes]] = {r: {} for r in meta}
    starts: dict[str, dict[str, bytes]] = {r: {} for r in meta}
    with open(path, "rb") as f:
        first = True
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # torn tail: nothing in it is a record
            if first:
                first = False
                continue  # the header; a new one is written
            match = _TEST_LINE.match(raw)
            if match is not None:
                kind, run = match.group(1), match.group(2).decode("utf-8", "replace")
                if run not in meta:
                    continue  # a dropped run: its durations are in ``durations`` already
                if kind == b"result":
                    test = _test_of(raw, _RESULT_KEY)
                    if test is not None and decode(raw) is not None:
                        bucket = results[run]
                        bucket.pop(test, None)  # the latest result last
                        bucket[test] = raw
                else:
                    test = _test_of(raw, _START_KEY)
                    if test is not None:
                        starts[run].setdefault(test, raw)
                continue
            record = decode(raw)
            if (
                isinstance(record, (RunRecord, AttemptRecord, EndRecord, ShardRecord))
                and record.run in meta
            ):
                meta[record.run].append(raw)
    step("read")
    tmp = temp_name(path)
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644
        )
        with open(fd, "wb", buffering=1 << 20) as out:
            out.write(encode(HeaderRecord(VERSION, header.created)))
            if durations:
                out.write(encode(DurationsRecord(round(time.time(), 3), durations)))
            for run, lines in meta.items():
                out.writelines(lines)
                out.writelines(results[run].values())
                out.writelines(raw for test, raw in starts[run].items() if test not in results[run])
            step("temp-written")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        step("before-replace")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise JournalError(f"resumable: cannot compact the journal {path}: {exc.strerror}") from exc
    step("after-replace")
    fsync_dir(path.parent)
    after = os.stat(path).st_size
    return CompactResult(before, after, len(meta), len(index.runs) - len(meta), cleaned)


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def merge(inputs: Iterable[Path], output: Path) -> tuple[int, int]:
    """Merge journals into ``output``: every valid record of every input once, in input
    order (runs have random ids, so they stay apart; a line found twice, e.g. the part of a
    journal restored from one CI cache into every shard, is kept once). Returns (records
    written, duplicates dropped). The output is replaced atomically."""
    import hashlib

    from pytest_resumable.journal import ReadStats, iter_records

    seen: set[bytes] = set()
    written = dropped = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(output)
    try:
        with open(tmp, "wb", buffering=1 << 20) as out:
            out.write(encode(HeaderRecord(VERSION, round(time.time(), 3))))
            for path in inputs:
                if not path.is_file():
                    raise JournalError(f"resumable: no journal at {path}")
                read_header(path)
                for record in iter_records(path, ReadStats()):
                    line = encode(record)
                    digest = hashlib.blake2b(line, digest_size=16).digest()
                    if digest in seen:
                        dropped += 1
                        continue
                    seen.add(digest)
                    out.write(line)
                    written += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise JournalError(f"resumable: cannot write {output}: {exc.strerror}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(output.parent)
    return written, dropped
