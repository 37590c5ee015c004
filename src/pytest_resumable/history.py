"""Runs rebuilt from a journal: one fold, used by every reader (the plugin and the CLI).

:func:`read_history` reads the file once. Runs the caller wants in detail get their per-test
state (latest result per test, what was in flight); every run gets its attempts and end
records; durations are gathered in the same pass, read at C speed from the result lines of
other runs without parsing them. Memory grows with the runs kept in detail, not with the
journal's history. No pytest import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_resumable.journal import codec
from pytest_resumable.journal.reader import ReadStats, bounded_lines, check_version, open_regular
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


@dataclass
class AttemptSummary:
    number: int
    time: float
    pid: int | None = None
    host: str | None = None
    xdist: bool = False
    #: tests selected, as recorded right after collection
    selected: int | None = None
    end: EndRecord | None = None

    @property
    def died(self) -> bool:
        """No end record: the process was killed (or is still running)."""
        return self.end is None


@dataclass
class RunState:
    """One run: its attempts, and (when read in detail) the latest result of each test."""

    record: RunRecord
    attempts: dict[int, AttemptSummary] = field(default_factory=dict)
    last_time: float = 0.0
    detailed: bool = False
    results: dict[str, ResultRecord] = field(default_factory=dict)
    #: per attempt, the tests that started in it and have no result from it
    unfinished: dict[int, set[str]] = field(default_factory=dict)
    #: the shard assignment frozen on the run's first attempt, if it is a shard
    shard: ShardRecord | None = None

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

    def add(self, record: Any) -> None:
        """Fold one record of this run (a start, result or shard record)."""
        if isinstance(record, ResultRecord):
            self.results[record.test] = record
            pending = self.unfinished.get(record.attempt)
            if pending is not None:
                pending.discard(record.test)
        elif isinstance(record, StartRecord):
            self.unfinished.setdefault(record.attempt, set()).add(record.test)
        elif isinstance(record, ShardRecord) and self.shard is None:
            self.shard = record


@dataclass
class History:
    """Every run of a journal, in the order they started."""

    path: Path
    runs: dict[str, RunState] = field(default_factory=dict)
    corrupt: int = 0
    #: latest recorded duration per test (setup + call + teardown), when asked for
    durations: dict[str, float] = field(default_factory=dict)

    def find_resumable(self, resume_id: str | None, shard: str | None) -> RunState | None:
        """The newest run with this identity, if it is not complete."""
        for state in reversed(self.runs.values()):
            if state.matches(resume_id, shard):
                return None if state.complete else state
        return None


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
    history = History(path)
    runs = history.runs
    stats = ReadStats()
    latest: dict[bytes, bytes] = {}
    detailed: RunState | None = None
    excluded: set[bytes] = set()  # run ids whose durations are not wanted
    with_shard: set[str] = set()
    f = open_regular(path)
    if f is None:
        return history
    with f:
        first = True
        for raw in bounded_lines(f, limit):
            if raw is None:
                stats.corrupt += 1
                continue
            fast = codec.test_line_run(raw)
            if fast is not None:
                is_result, run_b = fast
                state = runs.get(run_b.decode("utf-8", "replace"))
                if state is None or not state.detailed:
                    if is_result and durations is not None and run_b not in excluded:
                        found = codec.result_durations(raw, 0, len(raw))
                        if found:
                            latest[found[0][1]] = found[0][2]
                    continue
            record = codec.decode(raw)
            if first:
                first = False
                if isinstance(record, HeaderRecord):
                    check_version(record, path)
                    continue
            if record is None:
                if raw != b"\n":
                    stats.corrupt += 1
                continue
            if isinstance(record, (ResultRecord, StartRecord, ShardRecord)):
                state = runs.get(record.run)
                if state is not None and (
                    state.detailed or (isinstance(record, ShardRecord) and record.run in with_shard)
                ):
                    state.add(record)
                if (
                    isinstance(record, ResultRecord)
                    and durations is not None
                    and record.run.encode() not in excluded
                ):
                    latest[json.dumps(record.test, ensure_ascii=False).encode()] = repr(
                        record.duration
                    ).encode()
            elif isinstance(record, RunRecord):
                if record.run in runs:
                    continue
                state = RunState(record, last_time=record.time)
                runs[record.run] = state
                if shard_records(record):
                    with_shard.add(record.run)
                if durations is not None and not durations(record):
                    excluded.add(record.run.encode("utf-8", "surrogatepass"))
                if detail(record):
                    state.detailed = True
                    if newest_detail_only and detailed is not None:
                        detailed.detailed = False
                        detailed.results.clear()
                        detailed.unfinished.clear()
                    detailed = state
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
            elif isinstance(record, DurationsRecord) and durations is not None:
                for test, seconds in record.tests.items():
                    latest[json.dumps(test, ensure_ascii=False).encode()] = repr(seconds).encode()
    history.corrupt = stats.corrupt
    for key, value in latest.items():
        name = codec.key_to_test(key)
        duration = codec.parse_duration(value)
        if name is not None and duration is not None:
            history.durations[name] = duration
    return history


def read_durations(path: Path) -> dict[str, float]:
    """The latest recorded duration of every test in the journal (for export)."""
    return read_history(path, detail=lambda record: False, durations=_all).durations


# --------------------------------------------------------------------------------------------
# verify: the shards of one CI run gave every selected test exactly one result


@dataclass
class Verdict:
    ok: bool
    lines: list[str]
    missing: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    absent_shards: list[int] = field(default_factory=list)

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
