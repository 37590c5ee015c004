"""Runs rebuilt from a journal: one fold, used by every reader (the plugin and the CLI).

:func:`read_history` reads the file once. Runs the caller wants in detail get their per-test
state (latest result per test, what was in flight); every run gets its attempts and end
records; durations are gathered in the same pass, read at C speed from the result lines of
other runs without parsing them. Memory grows with the runs kept in detail, not with the
journal's history. No pytest import.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_resumable.journal import codec
from pytest_resumable.journal.reader import ReadStats, check_version, open_regular
from pytest_resumable.journal.records import (
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
from pytest_resumable.values import Value


class AttemptSummary(Value):
    number: int
    time: float
    pid: int | None
    host: str | None
    xdist: bool
    #: tests selected, as recorded right after collection
    selected: int | None
    end: EndRecord | None

    def __init__(
        self,
        number: int,
        time: float,
        pid: int | None = None,
        host: str | None = None,
        xdist: bool = False,
        selected: int | None = None,
        end: EndRecord | None = None,
    ) -> None:
        self.number = number
        self.time = time
        self.pid = pid
        self.host = host
        self.xdist = xdist
        self.selected = selected
        self.end = end

    @property
    def died(self) -> bool:
        """No end record: the process was killed (or is still running)."""
        return self.end is None


class RunState(Value):
    """One run: its attempts, and (when read in detail) the latest result of each test."""

    record: RunRecord
    attempts: dict[int, AttemptSummary]
    last_time: float
    detailed: bool
    results: dict[str, ResultRecord]
    #: per attempt, the tests that started in it and have no result from it
    unfinished: dict[int, set[str]]
    #: the shard assignment frozen on the run's first attempt, if it is a shard
    shard: ShardRecord | None

    def __init__(
        self,
        record: RunRecord,
        attempts: dict[int, AttemptSummary] | None = None,
        last_time: float = 0.0,
        detailed: bool = False,
        results: dict[str, ResultRecord] | None = None,
        unfinished: dict[int, set[str]] | None = None,
        shard: ShardRecord | None = None,
    ) -> None:
        self.record = record
        self.attempts = {} if attempts is None else attempts
        self.last_time = last_time
        self.detailed = detailed
        self.results = {} if results is None else results
        self.unfinished = {} if unfinished is None else unfinished
        self.shard = shard

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

    def in_flight(self, attempt: int) -> set[str]:
        return self.unfinished.get(attempt, set())

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in self.results.values():
            out[result.outcome] = out.get(result.outcome, 0) + 1
        return out

    @property
    def selected(self) -> int | None:
        """How many tests the run has: the widest selection of its attempts (an end record
        counts the tests outside its selection too), never fewer than its results."""
        sizes: list[int] = []
        for summary in self.attempts.values():
            if summary.selected is not None:
                sizes.append(summary.selected)
            if summary.end is not None:
                sizes.append(summary.end.selected + (summary.end.outside or 0))
        if self.shard is not None:
            sizes.append(len(self.shard.tests))
        return max(*sizes, len(self.results)) if sizes else None

    # -- folding

    def add_events(self, events: list[codec.TestEvent]) -> None:
        """Fold the run's start and result lines, in journal order (:func:`codec.test_events`)."""
        results, unfinished = self.results, self.unfinished
        for attempt, test, result in events:
            if result is None:
                started = unfinished.get(attempt)
                if started is None:
                    started = unfinished[attempt] = set()
                started.add(test)
            else:
                results[test] = result
                pending = unfinished.get(attempt)
                if pending is not None:
                    pending.discard(test)

    def add(self, record: Any) -> None:
        """Fold one record of this run (a start, result or shard record)."""
        if isinstance(record, ResultRecord):
            self.add_events([(record.attempt, record.test, record)])
        elif isinstance(record, StartRecord):
            self.add_events([(record.attempt, record.test, None)])
        elif isinstance(record, ShardRecord) and self.shard is None:
            self.shard = record


class History(Value):
    """Every run of a journal, in the order they started."""

    path: Path
    runs: dict[str, RunState]
    corrupt: int
    #: latest recorded duration per test (setup + call + teardown), when asked for
    durations: dict[str, float]

    def __init__(
        self,
        path: Path,
        runs: dict[str, RunState] | None = None,
        corrupt: int = 0,
        durations: dict[str, float] | None = None,
    ) -> None:
        self.path = path
        self.runs = {} if runs is None else runs
        self.corrupt = corrupt
        self.durations = {} if durations is None else durations

    def find_resumable(self, resume_id: str | None, shard: str | None) -> RunState | None:
        """The newest run with this identity, if it is not complete."""
        for state in reversed(self.runs.values()):
            if state.matches(resume_id, shard):
                return None if state.complete else state
        return None


_TEST_PREFIXES = (codec.START_PREFIX, codec.RESULT_PREFIX)

#: bytes read at a time (the whole lines of a block are searched together)
BLOCK = 8 << 20


def _all(record: RunRecord) -> bool:
    return True


def read_history(
    path: Path,
    *,
    detail: Callable[[RunRecord], bool] = _all,
    newest_detail_only: bool = False,
    durations: Callable[[RunRecord], bool] | None = None,
    shard_records: Callable[[RunRecord], bool] = _all,
    limit: int | None = None,
) -> History:
    """Fold the journal at ``path`` into runs, in one pass.

    ``detail``: the runs whose per-test state is kept. ``newest_detail_only``: when a newer
    run passes ``detail``, the older one's per-test state is dropped (a session needs only the
    newest run of its identity; memory stays with the current run). ``durations``: gather the
    latest duration of every test from the runs it accepts (and from compaction's summaries).
    ``shard_records``: runs whose frozen shard split is kept even when not in detail (the
    other shards of this CI run). ``limit``: read up to this byte offset.
    """
    fold = _Fold(path, detail, newest_detail_only, durations, shard_records)
    f = open_regular(path)
    if f is None:
        return fold.history
    with no_collection(), f:
        for data, end in codec.line_blocks(f, limit, fold.stats, BLOCK):
            fold.block(data, end)
        return fold.finish()


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """The garbage collector paused while objects that all live on and form no cycles are made
    in bulk (a record per test read from the journal, a report per carried test replayed):
    its passes over the host's whole heap, triggered by the allocations, would find nothing
    to free. In a pytest session they doubled the cost of reading a 10,000-test run."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class _RunLines:
    """The start and result lines of one run read in detail, kept raw. They are searched for
    in the blocks that hold them only when wanted (at the end of the read), or when the blocks
    waiting for a search exceed :attr:`HELD_BLOCKS` (memory stays bounded): a run that a newer
    run of its identity supersedes is dropped without a search."""

    #: 32 MB with the reader's blocks: the lines of a run of ~150,000 tests
    HELD_BLOCKS = 4

    __slots__ = ("blocks", "found", "run", "segments")

    def __init__(self, run: str) -> None:
        self.run = run
        self.found: list[bytes] = []
        self.segments: list[tuple[bytes, int, int]] = []
        self.blocks = 0

    def add_segment(self, data: bytes, start: int, end: int) -> None:
        segments = self.segments
        if segments and segments[-1][0] is data:
            # one span per block: what lies between is meta lines, which never begin as a
            # test line (one glued inside makes the search start over anchored)
            segments[-1] = (data, segments[-1][1], end)
            return
        if self.blocks == self.HELD_BLOCKS:
            self.search()
        self.blocks += 1
        self.segments.append((data, start, end))

    def add_line(self, raw: bytes) -> None:
        if self.segments:
            self.search()
        self.found.append(raw)

    def search(self) -> None:
        run, found = self.run, self.found
        for data, start, end in self.segments:
            found.extend(codec.run_lines(run, data, start, end))
        self.segments = []
        self.blocks = 0

    def lines(self) -> list[bytes]:
        self.search()
        return self.found


class _Fold:
    """The state of one pass. The test lines of runs read in detail are kept raw and decoded
    once at the end, only for the runs still wanted then (a journal of a hundred runs of one
    identity searches and decodes one); the result lines of other runs give durations,
    extracted by a regular expression over batches of lines (C speed) instead of decoded one
    by one."""

    #: more runs in detail than this (the command line tools read every run): each block's
    #: test lines are sorted to their runs in one search
    FEW_RUNS = 8

    def __init__(
        self,
        path: Path,
        detail: Callable[[RunRecord], bool],
        newest_only: bool,
        durations: Callable[[RunRecord], bool] | None,
        shard_records: Callable[[RunRecord], bool],
    ) -> None:
        self.history = History(path)
        self.path = path
        self.detail = detail
        self.newest_only = newest_only
        self.durations = durations
        self.shard_records = shard_records
        self.stats = ReadStats()
        self.raw: dict[str, _RunLines] = {}  # detailed run -> its test lines, undecoded
        self.newest: str | None = None
        self.excluded: set[bytes] = set()  # run ids whose durations are not wanted
        self.with_shard: set[str] = set()
        self.latest: dict[bytes, bytes] = {}  # test key -> duration text
        self.header_pending = True

    def block(self, data: bytes, end: int) -> None:
        """Fold the whole lines ``data[:end]``. Searches at C speed: the few lines that are
        not start or result lines (run, attempt, end... records) by a regular expression;
        between them, the test lines of the runs read in detail, and every result's duration.
        A block with lines of any other shape (garbage, another key order) is folded line by
        line."""
        metas = [
            (m.start(), m.end())
            for m in codec.META_LINE.finditer(data, 0, end)
            if m.start() == 0 or data[m.start() - 1] == 10
        ]
        tests = codec.count_test_lines(data, 0, end)
        if data.count(b"\n", 0, end) != tests + len(metas):
            # split at newlines only (bytes.splitlines also splits at "\r", which would make a
            # record of what follows a "\r" inside a garbage line)
            lines = data[:end].split(b"\n")
            lines.pop()  # empty: the block ends with a newline
            for raw in lines:
                self.slow_line(raw + b"\n")
            return
        pos = 0
        for start, stop in [*metas, (end, end)]:
            if start > pos:
                self._tests(data, pos, start)
            if stop > start:
                self.line(data[start:stop])
            pos = stop

    def _tests(self, data: bytes, start: int, end: int) -> None:
        if len(self.raw) > self.FEW_RUNS:
            raw_of = self.raw.get
            for line, run_b in codec.all_run_lines(data, start, end):
                pending = raw_of(run_b.decode("utf-8", "replace"))
                if pending is not None:
                    pending.add_line(line)
        else:
            for lines in self.raw.values():
                lines.add_segment(data, start, end)
        if self.durations is not None:
            latest, excluded = self.latest, self.excluded
            if not excluded:
                latest.update(codec.durations_by_test(data, start, end))
                return
            for run_b, test, value in codec.result_durations(data, start, end):
                if run_b not in excluded:
                    latest[test] = value

    def slow_line(self, raw: bytes) -> None:
        """A line of a block read line by line: one that begins as a start or result line is
        searched for exactly as in a clean block (so a block's shape never changes what is
        read, nor what is counted corrupt: the lines of runs read in detail are decoded,
        those of other runs are not read)."""
        if raw.startswith(_TEST_PREFIXES):
            self._tests(raw, 0, len(raw))
        else:
            self.line(raw)

    def line(self, raw: bytes) -> None:
        """A line that is not a start or result line in this package's layout."""
        record = codec.decode(raw)
        if self.header_pending:
            self.header_pending = False
            if isinstance(record, HeaderRecord):
                check_version(record, self.path)
                return
        if record is None:
            if raw != b"\n":
                self.stats.corrupt += 1
        elif isinstance(record, (ResultRecord, StartRecord)):
            self._test_record(record)  # a test line in another key order
        else:
            self._meta(record)

    def _test_record(self, record: ResultRecord | StartRecord) -> None:
        pending = self.raw.get(record.run)
        if pending is not None:
            pending.add_line(codec.encode(record))
        elif (
            isinstance(record, ResultRecord)
            and self.durations is not None
            and record.run.encode() not in self.excluded
        ):
            self.latest[_key(record.test)] = repr(record.duration).encode()

    def _meta(self, record: Any) -> None:
        runs = self.history.runs
        if isinstance(record, RunRecord):
            self._run(record)
        elif isinstance(record, ShardRecord):
            state = runs.get(record.run)
            if state is not None and (state.detailed or record.run in self.with_shard):
                state.add(record)
        elif isinstance(record, AttemptRecord):
            state = runs.get(record.run)
            if state is not None:
                state.attempts[record.attempt] = AttemptSummary(
                    record.attempt, record.time, record.pid, record.host, bool(record.xdist)
                )
                state.last_time = max(state.last_time, record.time)
        elif isinstance(record, SelectionRecord):
            state = runs.get(record.run)
            if state is not None and record.attempt in state.attempts:
                state.attempts[record.attempt].selected = record.selected
        elif isinstance(record, EndRecord):
            state = runs.get(record.run)
            if state is not None and record.attempt in state.attempts:
                state.attempts[record.attempt].end = record
                state.last_time = max(state.last_time, record.time)
        elif isinstance(record, DurationsRecord) and self.durations is not None:
            for test, seconds in record.tests.items():
                self.latest[_key(test)] = repr(seconds).encode()

    def _run(self, record: RunRecord) -> None:
        runs = self.history.runs
        if record.run in runs:
            return
        state = RunState(record, last_time=record.time)
        runs[record.run] = state
        if self.shard_records(record):
            self.with_shard.add(record.run)
        if self.durations is not None and not self.durations(record):
            self.excluded.add(record.run.encode("utf-8", "surrogatepass"))
        if self.detail(record):
            state.detailed = True
            if self.newest_only and self.newest is not None:
                runs[self.newest].detailed = False
                del self.raw[self.newest]
            self.newest = record.run
            self.raw[record.run] = _RunLines(record.run)
            if len(self.raw) == self.FEW_RUNS + 1:  # from now on sorted block by block
                for lines in self.raw.values():
                    lines.search()

    def finish(self) -> History:
        history = self.history
        for run_id, lines in self.raw.items():
            events, corrupt = codec.test_events(lines.lines())
            self.stats.corrupt += corrupt
            history.runs[run_id].add_events(events)
        history.corrupt = self.stats.corrupt
        for key, value in self.latest.items():
            name = codec.key_to_test(key)
            duration = codec.parse_duration(value)
            if name is not None and duration is not None:
                history.durations[name] = duration
        return history


def _key(test: str) -> bytes:
    return json.dumps(test, ensure_ascii=False).encode("utf-8", "surrogatepass")


def read_durations(path: Path) -> dict[str, float]:
    """The latest recorded duration of every test in the journal (for export)."""
    return read_history(path, detail=lambda record: False, durations=_all).durations


# --------------------------------------------------------------------------------------------
# verify: the shards of one CI run gave every selected test exactly one result


class Verdict(Value):
    ok: bool
    lines: list[str]
    missing: list[str]
    doubled: list[str]
    unassigned: list[str]
    absent_shards: list[int]

    def __init__(
        self,
        ok: bool,
        lines: list[str],
        missing: list[str] | None = None,
        doubled: list[str] | None = None,
        unassigned: list[str] | None = None,
        absent_shards: list[int] | None = None,
    ) -> None:
        self.ok = ok
        self.lines = lines
        self.missing = [] if missing is None else missing
        self.doubled = [] if doubled is None else doubled
        self.unassigned = [] if unassigned is None else unassigned
        self.absent_shards = [] if absent_shards is None else absent_shards

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lines": self.lines,
            "missing": self.missing,
            "doubled": self.doubled,
            "unassigned": self.unassigned,
            "absent_shards": self.absent_shards,
        }


def verify_runs(states: Iterable[RunState]) -> Verdict:
    """Whether the runs (the shards of one CI run) gave every selected test one result."""
    states = list(states)
    sharded = [s for s in states if s.shard is not None]
    if not sharded:
        missing = []
        for state in states:
            selected = state.selected
            if selected is None or len(state.results) < selected:
                missing.append(
                    f"run {state.id}: {len(state.results)} results of "
                    f"{selected if selected is not None else '?'} selected"
                )
        ok = not missing
        line = f"{len(states)} run(s), not sharded: " + (
            "every selected test has a result" if ok else "; ".join(missing)
        )
        return Verdict(ok, [line], missing=missing)
    specs = sorted({s.record.shard or "" for s in sharded})
    n = int(specs[0].split("/")[1]) if "/" in specs[0] else 0
    present = {int(spec.split("/")[0]) for spec in specs if "/" in spec}
    selection: set[str] = set()
    owners: dict[str, list[str]] = {}
    results: dict[str, list[str]] = {}
    for state in sharded:
        assert state.shard is not None
        selection |= set(state.shard.selection)
        for test in state.shard.tests:
            owners.setdefault(test, []).append(state.shard.shard)
        for test in state.results:
            results.setdefault(test, []).append(state.shard.shard)
    verdict = Verdict(False, [])
    for test in sorted(selection | set(results)):
        got = results.get(test, [])
        if not got:
            verdict.missing.append(test)
            if test in selection and not owners.get(test):
                verdict.unassigned.append(test)
        elif len(got) > 1:
            verdict.doubled.append(f"{test} (shards {', '.join(sorted(got))})")
    verdict.absent_shards = sorted(set(range(1, n + 1)) - present)
    verdict.ok = not verdict.missing and not verdict.doubled
    absent = verdict.absent_shards
    verdict.lines.append(
        f"{len(sharded)} shard run(s) of {n}"
        + (f" (shard {', '.join(map(str, absent))} never ran)" if absent else "")
        + f": {len(selection)} selected tests, {sum(1 for t in selection if t in results)} "
        f"with a result, {len(verdict.missing)} missing, {len(verdict.doubled)} doubled"
    )
    for kind, items in (("missing", verdict.missing), ("doubled", verdict.doubled)):
        verdict.lines.extend(f"{kind}: {item}" for item in items[:50])
        if len(items) > 50:
            verdict.lines.append(f"{kind}: ... and {len(items) - 50} more")
    verdict.lines.append("OK" if verdict.ok else "FAILED")
    return verdict
