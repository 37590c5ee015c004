"""The state of runs, rebuilt from journal records.

Reading is done in two passes so that memory and time grow with the run being resumed, not with
the journal's history: :func:`load_index` parses only the small run, attempt and end records
(start and result lines are recognised by their prefix and skipped unparsed), then
:func:`load_run` parses only the lines that mention the chosen run.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import re
from collections.abc import Set
from dataclasses import dataclass, field
from pathlib import Path

from pytest_resumable.journal import (
    BAD_OUTCOMES,
    RESULT_PREFIX,
    START_PREFIX,
    AttemptRecord,
    DurationsRecord,
    EndRecord,
    ReadStats,
    ResultRecord,
    RunRecord,
    ShardRecord,
    StartRecord,
    decode,
    iter_records,
)


@dataclass
class AttemptSummary:
    number: int
    time: float
    end: EndRecord | None = None

    @property
    def died(self) -> bool:
        """No end record: the process was killed (or is still running)."""
        return self.end is None


@dataclass
class RunSummary:
    record: RunRecord
    attempts: dict[int, AttemptSummary] = field(default_factory=dict)
    last_time: float = 0.0

    @property
    def id(self) -> str:
        return self.record.run

    @property
    def last_attempt(self) -> AttemptSummary | None:
        return self.attempts[max(self.attempts)] if self.attempts else None

    @property
    def complete(self) -> bool:
        last = self.last_attempt
        return bool(last and last.end and last.end.complete)

    def matches(self, resume_id: str | None, shard: str | None) -> bool:
        return self.record.resume_id == resume_id and self.record.shard == shard


@dataclass
class JournalIndex:
    """Every run in a journal, without its per-test records."""

    runs: dict[str, RunSummary]
    stats: ReadStats
    size: int

    def find_resumable(self, resume_id: str | None, shard: str | None) -> RunSummary | None:
        """The newest run with this identity that is not complete."""
        for summary in reversed(self.runs.values()):
            if summary.matches(resume_id, shard):
                return None if summary.complete else summary
        return None


def _is_test_line(raw: bytes) -> bool:
    return (raw.startswith((RESULT_PREFIX, START_PREFIX))) and raw.endswith(b"}\n")


def load_index(path: Path) -> JournalIndex:
    stats = ReadStats()
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        size = 0
    except OSError:
        size = 0
    runs: dict[str, RunSummary] = {}
    for record in iter_records(path, stats, skip=_is_test_line, limit=size):
        if isinstance(record, RunRecord):
            runs.setdefault(record.run, RunSummary(record, last_time=record.time))
        elif isinstance(record, AttemptRecord):
            summary = runs.get(record.run)
            if summary is not None:
                summary.attempts[record.attempt] = AttemptSummary(record.attempt, record.time)
                summary.last_time = max(summary.last_time, record.time)
        elif isinstance(record, EndRecord):
            summary = runs.get(record.run)
            if summary is not None and record.attempt in summary.attempts:
                summary.attempts[record.attempt].end = record
                summary.last_time = max(summary.last_time, record.time)
    return JournalIndex(runs, stats, size)


@dataclass
class RunState:
    """One run's per-test state: the latest result of each test and what was in flight."""

    summary: RunSummary
    results: dict[str, ResultRecord] = field(default_factory=dict)
    #: per attempt, the tests that started in it and have no result from it
    unfinished: dict[int, set[str]] = field(default_factory=dict)
    stats: ReadStats = field(default_factory=ReadStats)
    #: the shard assignment frozen on the run's first attempt, if it is a shard
    shard: ShardRecord | None = None

    def in_flight(self, attempt: int) -> set[str]:
        return self.unfinished.get(attempt, set())

    def crashed_candidates(self, next_attempt: int) -> list[str]:
        """Tests in flight when the two attempts before ``next_attempt`` both died.

        Such a test most likely kills the process itself; it is recorded ``crashed`` rather
        than run a third time, so that resuming cannot loop forever (SPEC §4.3).
        """
        prev = self.summary.attempts.get(next_attempt - 1)
        before = self.summary.attempts.get(next_attempt - 2)
        if prev is None or before is None or not prev.died or not before.died:
            return []
        both = self.in_flight(prev.number) & self.in_flight(before.number)
        return sorted(t for t in both if t not in self.results)

    def counts(self, tests: set[str] | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        for test, result in self.results.items():
            if tests is None or test in tests:
                out[result.outcome] = out.get(result.outcome, 0) + 1
        return out

    def bad(self) -> list[ResultRecord]:
        return [r for r in self.results.values() if r.outcome in BAD_OUTCOMES]


def load_run(path: Path, summary: RunSummary, limit: int | None = None) -> RunState:
    state = RunState(summary)
    needle = b'"' + summary.id.encode() + b'"'
    run_id = summary.id
    unfinished = state.unfinished
    results = state.results
    for record in iter_records(path, state.stats, skip=lambda raw: needle not in raw, limit=limit):
        if isinstance(record, ResultRecord):
            if record.run == run_id:
                results[record.test] = record
                pending = unfinished.get(record.attempt)
                if pending is not None:
                    pending.discard(record.test)
        elif isinstance(record, StartRecord) and record.run == run_id:
            unfinished.setdefault(record.attempt, set()).add(record.test)
        elif isinstance(record, ShardRecord) and record.run == run_id and state.shard is None:
            state.shard = record
    return state


# A result line as this package writes it; durations are read with this (C speed) instead of
# parsing every line: ~1 s for 1,000,000 lines instead of ~4 s. Not anchored with ``^``: a
# pattern that starts with a literal is searched for as a literal (5x faster here), and the
# literal cannot occur inside a JSON string, where quotes are escaped. Lines written otherwise
# (by hand, by another tool) still count as results for resuming; only their duration is not
# learnt, and durations only order and balance work, they never decide what runs.
_RESULT_RE = re.compile(
    rb'\{"type":"result","run":"([^"\\\n]*)","attempt":\d+,"test":("(?:[^"\\\n]|\\.)*"),'
    rb'"outcome":"[a-z]+","duration":([0-9.eE+-]+)[,}]',
)


def load_durations(path: Path, exclude_runs: Set[str] = frozenset()) -> dict[str, float]:
    """The latest recorded duration of every test in the journal (setup + call + teardown),
    from results and from the summaries compaction leaves; results of ``exclude_runs`` are
    left out (the other shards of this CI run, which may or may not have started yet)."""
    durations: dict[str, float] = {}
    latest: dict[bytes, bytes] = {}
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return durations
            with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as data:
                for match in _DURATIONS_RE.finditer(data):
                    record = decode(match.group(0))
                    if isinstance(record, DurationsRecord):
                        durations.update(record.tests)
                # latest per raw key first (C speed), then decode each distinct test once;
                # in windows of whole lines, so memory does not grow with the journal
                skip = {r.encode("utf-8", "surrogatepass") for r in exclude_runs}
                pos = 0
                while pos < size:
                    end = data.find(b"\n", min(pos + _WINDOW, size - 1))
                    end = size if end == -1 else end + 1
                    for run, test, value in _RESULT_RE.findall(data, pos, end):
                        if run not in skip:
                            latest[test] = value
                    pos = end
    except OSError:
        return durations
    for test, value in latest.items():
        try:
            key = json.loads(test) if b"\\" in test else test[1:-1].decode("utf-8", "surrogatepass")
            durations[key] = float(value)
        except (ValueError, UnicodeError):
            continue
    return durations


_DURATIONS_RE = re.compile(rb'\{"type":"durations",[^\n]*\n')
_WINDOW = 8 << 20


def load_all(path: Path) -> tuple[JournalIndex, dict[str, RunState]]:
    """Every run with its per-test state, in one pass (for the command line tools)."""
    stats = ReadStats()
    runs: dict[str, RunSummary] = {}
    states: dict[str, RunState] = {}
    size = 0
    with contextlib.suppress(OSError):
        size = os.stat(path).st_size
    for record in iter_records(path, stats, limit=size):
        if isinstance(record, (ResultRecord, StartRecord, ShardRecord)):
            state = states.get(record.run)
            if state is None:
                continue
            if isinstance(record, ResultRecord):
                state.results[record.test] = record
                pending = state.unfinished.get(record.attempt)
                if pending is not None:
                    pending.discard(record.test)
            elif isinstance(record, StartRecord):
                state.unfinished.setdefault(record.attempt, set()).add(record.test)
            elif state.shard is None:
                state.shard = record
        elif isinstance(record, RunRecord):
            if record.run not in runs:
                runs[record.run] = RunSummary(record, last_time=record.time)
                states[record.run] = RunState(runs[record.run])
        elif isinstance(record, AttemptRecord):
            summary = runs.get(record.run)
            if summary is not None:
                summary.attempts[record.attempt] = AttemptSummary(record.attempt, record.time)
                summary.last_time = max(summary.last_time, record.time)
        elif isinstance(record, EndRecord):
            summary = runs.get(record.run)
            if summary is not None and record.attempt in summary.attempts:
                summary.attempts[record.attempt].end = record
                summary.last_time = max(summary.last_time, record.time)
    return JournalIndex(runs, stats, size), states
