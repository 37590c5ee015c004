"""The line layout of the journal: the ONLY module that knows how a record looks on disk.

Encoding writes ``{"type":...,"run":...,...}`` with ``type`` first and ``run`` second, no
spaces; readers rely on that to recognise the start and result lines of other runs by their
first bytes and skip them unparsed (~0.1 µs instead of ~4 µs a line). Decoding accepts any key
order and never raises: a journal is data, never code. Everything decoded is type-checked field
by field; numbers must be finite and in sane ranges, strings bounded, nesting bounded. Anything
else makes the line corrupt (skipped and counted by the reader).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from typing import Any, Final

from pytest_resumable.journal.records import (
    FORMAT,
    OUTCOMES,
    AttemptRecord,
    DurationsRecord,
    EndRecord,
    HeaderRecord,
    Record,
    ResultRecord,
    RunRecord,
    SelectionRecord,
    ShardRecord,
    StartRecord,
)

#: Failure text kept for replay, per test (SPEC §5): one huge traceback must not bloat the file.
TEXT_CAP: Final = 64 * 1024
#: Short messages (skip reasons, crash lines).
MESSAGE_CAP: Final = 4096
#: Longest line a reader accepts; longer ones are skipped and counted, never held in memory
#: whole. A shard record of 100,000 node ids compresses to well under this.
MAX_LINE: Final = 32 * 1024 * 1024
#: Sane ranges of the numbers in a record; a line outside them is corrupt.
MAX_TIME: Final = 1e11  # year 5138
MAX_DURATION: Final = 1e7  # 115 days
MAX_COUNT: Final = 10**9
#: Nesting allowed inside a stored report (pytest's own serialized reports are ~6 deep).
MAX_DEPTH: Final = 32


class _Unknown:
    """A well-formed record of a type this version does not use: ignored, not counted."""


UNKNOWN: Final = _Unknown()

_enc = json.encoder.encode_basestring  # the C implementation when available
encode_str = _enc


def _s(value: str | None) -> str:
    return "null" if value is None else _enc(value)


def cap_text(text: str | None, limit: int = TEXT_CAP) -> str | None:
    """Cut ``text`` to at most ``limit`` characters, saying so at the cut."""
    if text is None or len(text) <= limit:
        return text
    note = f"\n[... {len(text) - limit} characters cut by pytest-resumable ...]"
    return text[: limit - len(note)] + note


# --------------------------------------------------------------------------------------------
# Fast builders of the two lines written for every test


START_PREFIX: Final = b'{"type":"start","run":"'
RESULT_PREFIX: Final = b'{"type":"result","run":"'


def start_prefix(run: str, attempt: int) -> str:
    """The fixed part of the start records of one attempt: ``start_line`` appends the test."""
    return f'{{"type":"start","run":{_s(run)},"attempt":{attempt},"test":'


def start_line(prefix: str, test: str) -> bytes:
    return start_line_encoded(prefix, _enc(test))


def result_prefix(run: str, attempt: int) -> str:
    """The fixed part of the result lines of one attempt, up to the test."""
    return f'{{"type":"result","run":{_s(run)},"attempt":{attempt},"test":'


def passed_line(
    run: str, attempt: int, test: str, duration: float, line: int | None, file_hash: str | None
) -> bytes:
    """``encode(ResultRecord(..., "passed", ...))`` without building the record."""
    return passed_line_after(result_prefix(run, attempt), test, duration, line, file_hash)


def passed_line_after(
    prefix: str, test: str, duration: float, line: int | None, file_hash: str | None
) -> bytes:
    """:func:`passed_line` with the attempt's :func:`result_prefix` made once."""
    return passed_line_encoded(prefix, _enc(test), duration, line, file_hash_field(file_hash))


def file_hash_field(file_hash: str | None) -> str:
    """The ``file_hash`` member of a result line (with its leading comma), or nothing."""
    return "" if file_hash is None else f',"file_hash":{_enc(file_hash)}'


def passed_line_encoded(
    prefix: str, test_json: str, duration: float, line: int | None, hash_field: str
) -> bytes:
    """The hot path of a passing test (most tests): :func:`passed_line_after` with the test id
    already JSON-encoded (``encode_str``, done once for its start line) and the file hash
    member made once per file (:func:`file_hash_field`)."""
    if not 0 <= duration <= MAX_DURATION:  # pytest's are; as _duration() does otherwise
        duration = MAX_DURATION if MAX_DURATION < duration < math.inf else 0.0
    # "%.6f" is round(duration, 6) in fixed notation: the same number, cheaper than
    # repr(round(...)) (it may keep trailing zeros: "0.250000"); one f-string a line
    if line is None:
        text = f'{prefix}{test_json},"outcome":"passed","duration":{duration:.6f}{hash_field}}}\n'
    else:
        text = (
            f'{prefix}{test_json},"outcome":"passed","duration":{duration:.6f},'
            f'"line":{line}{hash_field}}}\n'
        )
    try:
        return text.encode()  # ~300 instructions less than with an error handler
    except UnicodeEncodeError:  # a lone surrogate in the test id: kept, as everywhere
        return text.encode("utf-8", "surrogatepass")


def start_line_encoded(prefix: str, test_json: str) -> bytes:
    """:func:`start_line` with the test id already JSON-encoded."""
    text = prefix + test_json + "}\n"
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate in the test id
        return text.encode("utf-8", "surrogatepass")


def _duration(value: float) -> float:
    # pytest's durations are finite and small; clamp what is not, so the line stays valid
    if not math.isfinite(value) or value < 0:
        return 0.0
    return round(min(value, MAX_DURATION), 6)


# --------------------------------------------------------------------------------------------
# Encoding


def pack_ids(ids: tuple[str, ...] | tuple[int, ...] | list[str]) -> str:
    """A list as one compact JSON string: zlib-compressed JSON list, base64."""
    raw = json.dumps(list(ids), ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(zlib.compress(raw.encode("utf-8", "surrogatepass"), 6)).decode()


def _unpack(text: str, name: str) -> list[Any]:
    try:
        # bounded: a "zip bomb" line cannot take more than MAX_LINE * 8 bytes
        raw = zlib.decompressobj().decompress(
            base64.b64decode(text.encode("ascii"), validate=True), MAX_LINE * 8
        )
        values = json.loads(raw)
    except (binascii.Error, zlib.error, UnicodeError, ValueError, RecursionError) as exc:
        raise ValueError(name) from exc
    if not isinstance(values, list):
        raise ValueError(name)
    return values


def unpack_ids(text: str) -> tuple[str, ...]:
    """The inverse of :func:`pack_ids` for node ids; ValueError on anything else."""
    ids = _unpack(text, "selection_z")
    if not all(isinstance(i, str) for i in ids):
        raise ValueError("selection_z")
    return tuple(ids)


def unpack_ints(text: str, size: int) -> tuple[int, ...]:
    """The shard numbers packed by :func:`pack_ids`: ``size`` ints >= 0, or ValueError."""
    values = _unpack(text, "assignment_z")
    if len(values) != size or not all(type(v) is int and 0 <= v < 10000 for v in values):
        raise ValueError("assignment_z")
    return tuple(values)


def _dumps(fields: dict[str, Any]) -> bytes:
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8", "surrogatepass")


def encode_result(record: ResultRecord) -> bytes:
    fields: dict[str, Any] = {
        "type": "result",
        "run": record.run,
        "attempt": record.attempt,
        "test": record.test,
        "outcome": record.outcome,
        "duration": _duration(record.duration),
    }
    if record.when is not None:
        fields["when"] = record.when
    if record.line is not None:
        fields["line"] = record.line
    if record.file_hash is not None:
        fields["file_hash"] = record.file_hash
    if record.message is not None:
        fields["message"] = cap_text(record.message, MESSAGE_CAP)
    if record.longrepr is not None:
        fields["longrepr"] = cap_text(record.longrepr)
    if record.reports:
        fields["reports"] = list(record.reports)
        try:
            return _dumps(fields)
        except (ValueError, TypeError):
            # a plugin put something JSON cannot hold (NaN, an object) into a report: keep
            # the result, without the reports (the replay falls back to the text)
            del fields["reports"]
    return _dumps(fields)


def encode(record: Record) -> bytes:
    """One record as one ``\\n``-terminated line of UTF-8 JSON."""
    # one branch per record type, in the order of docs/journal-format.md: the layout is
    # easier to check against the documentation in one place than split into functions
    if isinstance(record, StartRecord):
        return start_line(start_prefix(record.run, record.attempt), record.test)
    if isinstance(record, ResultRecord):
        return encode_result(record)
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
        if record.rootdir is not None:
            fields["rootdir"] = record.rootdir
            fields["inifile"] = record.inifile
    elif isinstance(record, AttemptRecord):
        fields = {
            "type": "attempt",
            "run": record.run,
            "attempt": record.attempt,
            "time": record.time,
            "pid": record.pid,
            "host": record.host,
        }
        if record.xdist is not None:
            fields["xdist"] = record.xdist
    elif isinstance(record, SelectionRecord):
        fields = {
            "type": "selection",
            "run": record.run,
            "attempt": record.attempt,
            "selected": record.selected,
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
        if record.outside is not None:
            fields["outside"] = record.outside
        if record.collection_errors is not None:
            fields["collection_errors"] = record.collection_errors
    return _dumps(fields)


# --------------------------------------------------------------------------------------------
# Decoding


def _str(obj: dict[str, Any], key: str, limit: int = MAX_LINE) -> str:
    value = obj[key]
    if not isinstance(value, str) or len(value) > limit:
        raise TypeError(key)
    return value


def _opt_str(obj: dict[str, Any], key: str, limit: int = MAX_LINE) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise TypeError(key)
    return value


def _int(obj: dict[str, Any], key: str, low: int = 0, high: int = MAX_COUNT) -> int:
    value = obj[key]
    if type(value) is not int or not low <= value <= high:
        raise TypeError(key)
    return value


def _opt_int(obj: dict[str, Any], key: str, low: int = 0, high: int = MAX_COUNT) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, low, high)


def _num(obj: dict[str, Any], key: str, high: float) -> float:
    value = obj[key]
    if type(value) not in (int, float) or not 0 <= value <= high:  # NaN and inf fail too
        raise TypeError(key)
    return float(value)


def _depth_ok(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _depth_ok(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool))


def _reports(obj: dict[str, Any]) -> tuple[dict[str, Any], ...] | None:
    value = obj.get("reports")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > 10000
        or not all(isinstance(r, dict) for r in value)
        or not _depth_ok(value)
    ):
        raise TypeError("reports")
    return tuple(value)


def _decode_obj(obj: dict[str, Any]) -> Record | _Unknown | None:
    # one branch per record type, each checking every field's type and range: kept together
    # so that the decoder can be read against docs/journal-format.md
    kind = obj.get("type")
    if kind == "start":
        return StartRecord(_str(obj, "run", 200), _int(obj, "attempt"), _str(obj, "test"))
    if kind == "result":
        outcome = _str(obj, "outcome", 20)
        if outcome not in OUTCOMES:
            return None
        return ResultRecord(
            run=_str(obj, "run", 200),
            attempt=_int(obj, "attempt"),
            test=_str(obj, "test"),
            outcome=outcome,  # type: ignore[arg-type,unused-ignore]  # checked: OUTCOMES
            duration=_num(obj, "duration", MAX_DURATION),
            when=_opt_str(obj, "when", 20),
            line=_opt_int(obj, "line"),
            file_hash=_opt_str(obj, "file_hash", 200),
            message=_opt_str(obj, "message", MESSAGE_CAP * 2),
            longrepr=_opt_str(obj, "longrepr", TEXT_CAP * 2),
            reports=_reports(obj),
        )
    if kind == "run":
        return RunRecord(
            _str(obj, "run", 200),
            _num(obj, "time", MAX_TIME),
            _opt_str(obj, "resume_id", 1000),
            _opt_str(obj, "shard", 50),
            _opt_str(obj, "rootdir", 8192),
            _opt_str(obj, "inifile", 8192),
        )
    if kind == "attempt":
        host = obj.get("host")
        return AttemptRecord(
            _str(obj, "run", 200),
            _int(obj, "attempt"),
            _num(obj, "time", MAX_TIME),
            _opt_int(obj, "pid", 0, 2**31),
            host[:255] if isinstance(host, str) else None,
            obj.get("xdist") if isinstance(obj.get("xdist"), bool) else None,
        )
    if kind == "selection":
        return SelectionRecord(_str(obj, "run", 200), _int(obj, "attempt"), _int(obj, "selected"))
    if kind == "end":
        complete = obj["complete"]
        if not isinstance(complete, bool):
            return None
        return EndRecord(
            _str(obj, "run", 200),
            _int(obj, "attempt"),
            _num(obj, "time", MAX_TIME),
            _int(obj, "status", -1000, 1000),
            _int(obj, "selected"),
            _int(obj, "results"),
            complete,
            _opt_int(obj, "outside"),
            _opt_int(obj, "collection_errors"),
        )
    if kind == "shard":
        tests = obj["tests"]
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            return None
        selection = unpack_ids(_str(obj, "selection_z"))
        return ShardRecord(
            _str(obj, "run", 200),
            _int(obj, "attempt"),
            _str(obj, "shard", 50),
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
            if type(v) in (int, float) and 0 <= v <= MAX_DURATION
        }
        return DurationsRecord(_num(obj, "time", MAX_TIME), durations)
    if kind == "header":
        if obj.get("format") != FORMAT:
            return None
        created: Any = obj.get("created")
        ok = type(created) in (int, float) and 0 <= created <= MAX_TIME
        return HeaderRecord(_int(obj, "version", 0, 10**6), float(created) if ok else None)
    if isinstance(kind, str):
        return UNKNOWN
    return None


# The two lines written for most tests, in exactly this package's layout: the one place the
# readers' fast paths spell them (a line by itself, or a run's lines searched together)
_START = (
    rb'\{"type":"start","run":"([^"\\\n]{0,200})","attempt":(\d{1,9}),'
    rb'"test":("[^"\\\n]*(?:\\.[^"\\\n]*)*")\}\n'
)
_PASSED = (
    rb'\{"type":"result","run":"([^"\\\n]{0,200})","attempt":(\d{1,9}),'
    rb'"test":("[^"\\\n]*(?:\\.[^"\\\n]*)*"),"outcome":"passed",'
    rb'"duration":(\d{1,9}(?:\.\d{1,20})?(?:e-?\d{1,3})?)'
    rb'(?:,"line":(\d{1,9}))?(?:,"file_hash":"([0-9a-f]{1,64})")?\}\n'
)
_START_LINE = re.compile(_START)
_PASSED_LINE = re.compile(_PASSED)


def decode_test_line(line: bytes) -> Record | _Unknown | None:
    """:func:`decode`, with a fast path for the two lines written for most tests (a start,
    a plain pass) in exactly the layout this package writes: ~1 µs instead of ~5 µs."""
    match = _START_LINE.fullmatch(line)
    if match is not None:
        test = key_to_test(match.group(3))
        if test is not None:
            run = match.group(1).decode("utf-8", "surrogatepass")
            return StartRecord(run, int(match.group(2)), test)
    match = _PASSED_LINE.fullmatch(line)
    if match is not None:
        test = key_to_test(match.group(3))
        duration = float(match.group(4))
        if test is not None and duration <= MAX_DURATION:
            lineno, digest = match.group(5), match.group(6)
            return ResultRecord.passed(
                match.group(1).decode("utf-8", "surrogatepass"),
                int(match.group(2)),
                test,
                duration,
                int(lineno) if lineno is not None else None,
                digest.decode("ascii") if digest is not None else None,
            )
    return decode(line)


#: A run's lines joined, one match a line (``^`` and the final newline): a start or a plain
#: pass in exactly the layout of :func:`decode_test_line`'s fast path, read at C speed, or
#: any other line, whole (decoded on its own).
_TEST_LINES = re.compile(rb"(?m)^(?:" + _START + rb"|" + _PASSED + rb"|([^\n]*\n))")

#: ``(attempt, test, None)`` for a start line, ``(attempt, test, record)`` for a result line
TestEvent = tuple[int, str, "ResultRecord | None"]


def test_events(lines: list[bytes]) -> tuple[list[TestEvent], int]:
    """The start and result lines of one run, in order, and how many of them are corrupt:
    the same as :func:`decode_test_line` on each line, ~4x faster. One search over the joined
    lines reads the starts and plain passes written in this package's layout (nearly every
    line) at C speed; only the other lines are decoded one by one."""
    found = _TEST_LINES.findall(b"".join(lines))
    if len(found) != len(lines):  # a line without its newline (a torn end): line by line
        found = [(b"",) * 9 + (raw,) for raw in lines]
    events: list[TestEvent] = []
    add = events.append
    corrupt = 0
    runs: dict[bytes, str] = {}
    passed = ResultRecord.passed
    for _, s_attempt, s_test, run_b, r_attempt, r_test, seconds, lineno, digest, other in found:
        if s_test:
            test = key_to_test(s_test)
            if test is not None:
                add((int(s_attempt), test, None))
                continue
        elif r_test:
            test = key_to_test(r_test)
            duration = float(seconds)
            if test is not None and duration <= MAX_DURATION:
                run = runs.get(run_b)
                if run is None:
                    run = runs[run_b] = run_b.decode("utf-8", "surrogatepass")
                attempt = int(r_attempt)
                line = int(lineno) if lineno else None
                file_hash = digest.decode("ascii") if digest else None
                add((attempt, test, passed(run, attempt, test, duration, line, file_hash)))
                continue
        record = decode(other) if other else None
        if isinstance(record, StartRecord):
            add((record.attempt, record.test, None))
        elif isinstance(record, ResultRecord):
            add((record.attempt, record.test, record))
        elif record is None:
            corrupt += 1
    return events, corrupt


def decode(line: bytes) -> Record | _Unknown | None:
    """Parse one line. ``None`` when it is not a valid record (the caller counts it).

    Never raises, whatever the bytes.
    """
    if len(line) > MAX_LINE:
        return None
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict):
            return None
        return _decode_obj(obj)
    except (ValueError, TypeError, KeyError, RecursionError, OverflowError, MemoryError):
        return None


# --------------------------------------------------------------------------------------------
# Reading test lines without parsing them


_LINE_START_PREFIXES: Final = (b"\n" + START_PREFIX, b"\n" + RESULT_PREFIX)


def count_test_lines(data: bytes, start: int = 0, end: int | None = None) -> int:
    """How many lines of ``data[start:end]`` (whole lines) begin as a start or result line:
    counted where a line begins, so that a line with anything in front of the prefix (a
    foreign writer, a hand edit) is not counted and the block is read line by line (where it
    is corrupt)."""
    return _lines_beginning(data, (START_PREFIX, RESULT_PREFIX), start, end)


def _lines_beginning(
    data: bytes, prefixes: tuple[bytes, ...], start: int = 0, end: int | None = None
) -> int:
    stop = len(data) if end is None else end
    first = data.startswith(prefixes, start, stop)
    return int(first) + sum(data.count(b"\n" + p, start, stop) for p in prefixes)


def run_lines(run: str, data: bytes, start: int, end: int) -> list[bytes]:
    """The start and result lines of ``run`` in ``data[start:end]`` (whole lines, ``start`` at
    a line start), found at C speed by a literal-prefix search; only a line that begins
    otherwise but holds such a line glued inside (hand edits, a foreign writer) makes the
    search start over anchored at line starts (~8x slower), so it is never taken for one."""
    pattern = lines_of_run(run)
    found = pattern.findall(data, start, end)
    if found and len(found) != _lines_beginning(data, _run_prefixes(run), start, end):
        found = _anchored(pattern).findall(data, start, end)
    return found


def all_run_lines(data: bytes, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """``(line, run id)`` of every start and result line in ``data[start:end]``, as
    :func:`run_lines` finds them."""
    found = RUN_LINE.findall(data, start, end)
    if found and len(found) != count_test_lines(data, start, end):
        found = _anchored(RUN_LINE).findall(data, start, end)
    return found


def _run_prefixes(run: str) -> tuple[bytes, bytes]:
    run_json = _enc(run).encode("utf-8", "surrogatepass")
    return (b'{"type":"start","run":' + run_json, b'{"type":"result","run":' + run_json)


_ANCHORED: dict[bytes, re.Pattern[bytes]] = {}


def _anchored(pattern: re.Pattern[bytes]) -> re.Pattern[bytes]:
    anchored = _ANCHORED.get(pattern.pattern)
    if anchored is None:
        anchored = _ANCHORED[pattern.pattern] = re.compile(rb"(?m)^" + pattern.pattern)
    return anchored


def test_line_run(raw: bytes) -> tuple[bool, bytes] | None:
    """``(is_result, run id bytes)`` of a start or result line written in this layout, else
    ``None`` (then decode the line). This package's run ids are 8 hex digits; one with a
    backslash (an escape, in a hand-made journal) is ``None`` too: its bytes are not the id."""
    if raw.startswith(RESULT_PREFIX):
        end = raw.find(b'"', 24)
        run = raw[24:end]
        is_result = True
    elif raw.startswith(START_PREFIX):
        end = raw.find(b'"', 23)
        run = raw[23:end]
        is_result = False
    else:
        return None
    if end < 0 or b"\\" in run or not raw.endswith(b"}\n"):
        return None
    return is_result, run


# A result line as this package writes it: the test and duration, read at C speed. Not
# anchored with ``^`` when searched: a pattern starting with a literal is searched for as a
# literal, and the literal cannot occur inside a JSON string, where quotes are escaped.
_RESULT_DURATION = re.compile(
    rb'\{"type":"result","run":"([^"\\\n]*)","attempt":\d+,"test":("[^"\\\n]*(?:\\.[^"\\\n]*)*"),'
    rb'"outcome":"[a-z]+","duration":([0-9.eE+-]+)[,}]',
)
_TEST_KEY = re.compile(
    rb'\{"type":"(?:start|result)","run":"[^"\\\n]*(?:\\.[^"\\\n]*)*","attempt":\d+,'
    rb'"test":("[^"\\\n]*(?:\\.[^"\\\n]*)*")'
)


_TEST_DURATION = re.compile(
    rb'\{"type":"result","run":"[^"\\\n]*","attempt":\d+,"test":("[^"\\\n]*(?:\\.[^"\\\n]*)*"),'
    rb'"outcome":"[a-z]+","duration":([0-9.eE+-]+)[,}]',
)


def result_durations(data: bytes | memoryview, start: int, end: int) -> list[tuple[bytes, ...]]:
    """``(run, test key, duration)`` of every result line in ``data[start:end]``, as bytes."""
    return _RESULT_DURATION.findall(data, start, end)


def durations_by_test(data: bytes | memoryview, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """``(test key, duration)`` of every result line in ``data[start:end]``: pairs that
    ``dict.update`` takes at C speed when no run's durations are left out."""
    return _TEST_DURATION.findall(data, start, end)


#: a line that is not a start or result line (the caller checks it begins a line: the
#: pattern starts with a literal, so it is searched for at C speed)
META_LINE = re.compile(rb'\{"type":"(?!start"|result")[^\n]*\n')
#: a start or result line and its run id
RUN_LINE = re.compile(rb'(\{"type":"(?:start|result)","run":"([^"\\\n]*)"[^\n]*\n)')
_RUN_LINES: dict[str, re.Pattern[bytes]] = {}


def lines_of_run(run: str) -> re.Pattern[bytes]:
    """The start and result lines of one run (a literal prefix: searched for at C speed)."""
    pattern = _RUN_LINES.get(run)
    if pattern is None:
        run_json = re.escape(_enc(run).encode("utf-8", "surrogatepass"))
        pattern = re.compile(rb'\{"type":"(?:start|result)","run":' + run_json + rb"[^\n]*\n")
        _RUN_LINES[run] = pattern
    return pattern


def line_blocks(f: Any, limit: int | None, stats: Any, size: int = 8 << 20) -> Any:
    """Blocks of whole lines read from ``f`` (a seekable file) up to byte ``limit``, as
    ``(data, end)``: the lines are ``data[:end]``, never copied out of what was read. The part
    line after them is read again with the next block (a seek back, not a concatenation of
    megabytes). A line longer than :data:`MAX_LINE` is skipped and counted in
    ``stats.corrupt``; a last line without ``\\n`` (a write in progress, a torn write) is not
    returned."""
    left = limit
    rest = b""  # a line without its newline yet: longer than a block, or at the end for now
    skipping = False
    while True:
        want = size if left is None else min(size, left)
        data = f.read(want) if want > 0 else b""
        if not data:
            return
        if left is not None:
            left -= len(data)
        read = len(data)
        end = data.rfind(b"\n") + 1
        if rest:
            data = rest + data
            if end:
                end += len(rest)
                first = data.find(b"\n") + 1
                if first > MAX_LINE:  # the line gathered is too long after all
                    stats.corrupt += 1
                    data, end = data[first:], end - first
            rest = b""
        if skipping:
            if end == 0:
                continue
            first = data.find(b"\n") + 1
            data, end, skipping = data[first:], end - first, False
        if end == 0:
            rest = data
            if len(rest) > MAX_LINE:
                stats.corrupt += 1
                rest, skipping = b"", True
            continue
        tail = len(data) - end
        if tail:
            if read == want:
                # the block ended inside a line that goes on: read it again, from its start,
                # with the next block (``tail`` came from this read: what was gathered before
                # holds no newline)
                f.seek(-tail, 1)
                if left is not None:
                    left += tail
            else:  # the end of the file for now: a write in progress, kept to join its end
                rest = data[end:]
        yield data, end


def test_key(raw: bytes) -> bytes | None:
    """The JSON-encoded test of a start or result line in this layout (cheap; a dict key)."""
    match = _TEST_KEY.match(raw)
    return match.group(1) if match is not None else None


def key_to_test(key: bytes) -> str | None:
    """The node id of a key from :func:`test_key` / :func:`result_durations`."""
    try:
        if b"\\" in key:
            value = json.loads(key)
            return value if isinstance(value, str) else None
        return key[1:-1].decode("utf-8", "surrogatepass")
    except (ValueError, UnicodeError):
        return None


def parse_duration(value: bytes) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0 <= number <= MAX_DURATION else None
