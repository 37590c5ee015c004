"""Reading a journal: only a regular file, line by line, bounded, never raising on content.

Lines that do not parse are skipped and counted. A last line without ``\\n`` is a write in
progress or a torn write: ignored, not counted. A newer format version raises
:class:`~pytest_resumable.journal.errors.JournalVersionError` before any record is yielded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from pytest_resumable.journal.codec import MAX_LINE, UNKNOWN, decode
from pytest_resumable.journal.errors import JournalError, JournalVersionError
from pytest_resumable.journal.records import VERSION, HeaderRecord, Record
from pytest_resumable.values import Value


class ReadStats(Value):
    """What a read found besides records: the count of lines skipped as corrupt."""

    corrupt: int

    def __init__(self, corrupt: int = 0) -> None:
        self.corrupt = corrupt


def check_version(header: HeaderRecord, path: Path | str) -> None:
    if header.version > VERSION:
        raise JournalVersionError(
            f"resumable: the journal {path} has format version {header.version}, but this "
            f"pytest-resumable understands version {VERSION} at most; upgrade "
            f"pytest-resumable or use another journal (the file is left untouched)"
        )


def _owner_name(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_trusted(path: Path | str, st: os.stat_result, what: str = "journal") -> None:
    """Refuse a file owned by another user in a directory others can write (as ssh refuses
    keys with loose permissions): anyone could have planted it, with forged results."""
    if not hasattr(os, "geteuid") or st.st_uid == os.geteuid():
        return
    try:
        parent = os.stat(os.path.dirname(os.path.abspath(path)) or ".")
    except OSError:
        return
    if parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise JournalError(
            f"resumable: refusing the {what} {path}: it is owned by {_owner_name(st.st_uid)} "
            f"in a directory others can write; remove it or use another journal"
        )


def open_regular(path: Path | str) -> BinaryIO | None:
    """Open the journal for reading: ``None`` if missing; :class:`JournalError` if it is not
    a regular file (a FIFO would block, a device never ends) or is not to be trusted."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise JournalError(f"resumable: the journal path {path} is a directory") from exc
    except OSError as exc:
        raise JournalError(f"resumable: cannot read the journal {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise JournalError(f"resumable: the journal path {path} is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise JournalError(
                f"resumable: the journal path {path} is not a regular file (a FIFO, socket "
                f"or device); point --resume-journal=PATH at a file"
            )
        check_trusted(path, st)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def bounded_lines(f: BinaryIO, limit: int | None) -> Iterator[bytes | None]:
    """The lines of ``f`` up to byte ``limit``; ``None`` for a line longer than
    :data:`MAX_LINE` (skipped without holding it whole). A last line without ``\\n`` is not
    yielded."""
    offset = 0
    readline = f.readline
    while True:
        raw = readline(MAX_LINE + 1)
        if not raw:
            return
        offset += len(raw)
        if limit is not None and offset > limit:
            return
        if raw[-1:] != b"\n":
            if len(raw) <= MAX_LINE:
                return  # the torn tail
            while raw and raw[-1:] != b"\n":  # too long: skip to its end
                raw = readline(MAX_LINE + 1)
                offset += len(raw)
            if not raw:
                return
            yield None
            continue
        yield raw


def iter_records(
    path: Path | str,
    stats: ReadStats,
    *,
    skip: Callable[[bytes], bool] | None = None,
    limit: int | None = None,
) -> Iterator[Record]:
    """Yield the valid records of the journal at ``path``, in file order.

    ``skip`` sees each raw line after the header; lines it accepts are neither parsed nor
    counted (the caller knows what they are). ``limit`` stops reading at that byte offset
    (the size when reading began: appends that follow are not read half).
    """
    f = open_regular(path)
    if f is None:
        return
    with f:
        first = True
        for raw in bounded_lines(f, limit):
            if raw is None:
                stats.corrupt += 1
                first = False
                continue
            if first:
                first = False
                record = decode(raw)
                if isinstance(record, HeaderRecord):
                    check_version(record, path)
                    continue
            elif skip is not None and skip(raw):
                continue
            else:
                record = decode(raw)
            if record is None:
                if raw != b"\n":  # a lone newline (a terminated torn write) is not worth it
                    stats.corrupt += 1
                continue
            if record is UNKNOWN or isinstance(record, HeaderRecord):
                continue
            yield record  # type: ignore[misc]  # UNKNOWN excluded above


def read_header(path: Path | str) -> HeaderRecord | None:
    """The header of the journal at ``path``, ``None`` if the file is missing or empty.

    Raises :class:`JournalError` when the file is not a pytest-resumable journal and
    :class:`JournalVersionError` when it is newer than this code.
    """
    f = open_regular(path)
    if f is None:
        return None
    with f:
        first = f.readline(1 << 16)
    if not first.strip(b"\x00\r\n\t "):
        return None
    record = decode(first)
    if not isinstance(record, HeaderRecord):
        raise JournalError(
            f"resumable: {path} is not a pytest-resumable journal (its first line is not a "
            f"header); point --resume-journal=PATH elsewhere or remove the file"
        )
    check_version(record, path)
    return record
