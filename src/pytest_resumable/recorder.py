"""The recording hot path: a start line before each test, a result line when its last report
arrives. Three to five calls per test; a plain pass costs a list, a check and one formatted line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_resumable.journal import codec
from pytest_resumable.journal.errors import JournalError
from pytest_resumable.journal.records import BAD_OUTCOMES, ResultRecord
from pytest_resumable.journal.writer import JournalWriter
from pytest_resumable.plan import AttemptPlan
from pytest_resumable.results import (
    RERUN,
    crashed_result,
    plain_pass,
    result_from_reports,
    serialize_reports,
)

_enc = codec.encode_str
_TestReport = pytest.TestReport
_NO_LOCATION = object()  # is no report's location


class FileHashes:
    """Content hashes of test files, by the path part of a node id (mtime is useless in CI)."""

    __slots__ = ("_cache", "last_field", "last_prefix", "rootpath")

    def __init__(self, rootpath: Path) -> None:
        self.rootpath = rootpath
        self._cache: dict[str, str | None] = {}
        self.last_prefix = "\0"  # the last file's path and "::" (no node id starts with NUL)
        self.last_field = ""

    def for_test(self, nodeid: str) -> str | None:
        rel = nodeid.split("::", 1)[0]
        try:
            return self._cache[rel]
        except KeyError:
            pass
        try:
            digest: str | None = hashlib.blake2b(
                (self.rootpath / rel).read_bytes(), digest_size=8
            ).hexdigest()
        except OSError:
            digest = None
        self._cache[rel] = digest
        return digest

    def field_for(self, nodeid: str) -> str:
        """The result line's ``file_hash`` member for ``nodeid``: the tests of one file
        follow each other, so the last file's member is kept at hand."""
        if nodeid.startswith(self.last_prefix):
            return self.last_field
        field = codec.file_hash_field(self.for_test(nodeid))  # the digest is cached
        self.last_prefix, self.last_field = nodeid.split("::", 1)[0] + "::", field
        return field


def _rank(outcome: str) -> int:
    return 2 if outcome in BAD_OUTCOMES else 0 if outcome == "passed" else 1


class Recorder:
    """Turns this attempt's reports into journal lines, as they arrive. Registered as a
    plugin of its own: pytest calls its two hooks for every test.

    Its attributes are slots. Registering a plugin lists its attributes (``dir()``), which on
    Python 3.11 turns an instance's attributes into a dict of their own, and from then on
    every ``self.x`` of the hot path takes the interpreter's slow path: ~340 instructions
    instead of ~55, ~25 reads a test (measured, cachegrind). Slots have no such dict.
    """

    __slots__ = (
        "_each_held",
        "_each_seen",
        "_pending",
        "_reran",
        "_result_prefix",
        "_start_prefix",
        "_test_id",
        "_test_json",
        "_test_loc",
        "attempt",
        "broken",
        "config",
        "each",
        "each_collected",
        "each_workers",
        "hashes",
        "on_broken",
        "outcomes",
        "paused",
        "run",
        "writer",
        "written",
    )

    def __init__(
        self,
        config: pytest.Config,
        plan: AttemptPlan,
        writer: JournalWriter,
        hashes: FileHashes,
        on_broken: Callable[[str], None],
    ) -> None:
        self.config = config
        self.run = plan.run_id
        self.attempt = plan.attempt
        self.writer: JournalWriter | None = writer
        self.hashes = hashes
        self.on_broken = on_broken
        #: ``--dist each``: a test's result is the worst of its workers' results
        self.each = getattr(config.option, "dist", "") == "each" and bool(
            getattr(config.option, "numprocesses", None) or getattr(config.option, "tx", None)
        )
        #: ``--dist each``: how many workers run every test (set by the xdist controller
        #: hooks, from xdist's ``workercount``)
        self.each_workers = 1
        #: ``--dist each``: per test, how many workers collected it (xdist does not require
        #: the workers' collections to be equal); filled by the xdist controller hooks
        self.each_collected: dict[str, int] = {}
        #: ``--dist each``: per test, how many workers' results arrived, and the worst one that
        #: is not bad (written when every worker's result is in: a pass of one worker says
        #: nothing of the others; a bad result is written at once, nothing can beat it)
        self._each_seen: dict[str, int] = {}
        self._each_held: dict[str, tuple[int, str, bytes]] = {}
        #: outcome of each test that got a result in this attempt
        self.outcomes: dict[str, str] = {}
        #: why recording stopped (the journal could not be written), if it did
        self.broken: str | None = None
        self.written = 0
        self._pending: dict[Any, list[pytest.TestReport]] = {}
        self._reran: set[Any] = set()  # keys of tests whose last attempt was a rerun
        self._start_prefix = codec.start_prefix(self.run, self.attempt)
        self._result_prefix = codec.result_prefix(self.run, self.attempt)
        self._test_id = ""
        self._test_json = '""'
        #: the ``location`` tuple of the test this process started last: its reports carry
        #: the very same tuple (``Item.location`` is cached), so an identity check tells them
        #: apart without ``report.nodeid`` (a property, ~1.6 k instructions on pytest 9.2)
        self._test_loc: object = _NO_LOCATION
        #: set while the controller replays reports it does not want recorded
        self.paused = False

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        """Called before each test runs (by xdist on the controller for worker tests)."""
        writer = self.writer
        if writer is not None and not self.paused:
            # the id as JSON, kept for the result line of the same test (single process: the
            # next line; under xdist, when the same worker's test ends without another start)
            test_json = self._test_json = _enc(nodeid)
            self._test_id = nodeid
            self._test_loc = location if location is not None else _NO_LOCATION
            try:
                writer.append_bytes(codec.start_line_encoded(self._start_prefix, test_json))
            except JournalError as exc:
                self._broke(exc)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Called for each report of a test; the last one completes its result."""
        if self.paused:
            return
        if type(report) is _TestReport and (d := report.__dict__).get("location") is (
            self._test_loc
        ):
            # a report this process made for the test it started last (never one from a
            # worker or a child: theirs are deserialized); read from its ``__dict__``, where
            # ``TestReport`` keeps these, each ``report.x`` being a slow read
            nodeid = self._test_id
            when = d["when"]
            outcome = d["outcome"]
        else:
            nodeid = report.nodeid
            when = report.when
            outcome = report.outcome
        pending = self._pending
        # --dist each: two workers run the same test at once; their reports must not mix
        key: Any = (nodeid, getattr(report, "node", None)) if self.each else nodeid
        if outcome == RERUN:
            # pytest-rerunfailures: only the final attempt's reports make the result. Depending
            # on the pytest and rerunfailures versions, a rerun attempt's teardown still
            # arrives (as "passed") before the next attempt's setup, or does not arrive at all.
            pending.pop(key, None)
            self._reran.add(key)
        elif when == "teardown":
            if self._reran and key in self._reran:
                self._reran.discard(key)
                pending.pop(key, None)
                return
            done = pending.pop(key, None)
            if done is None:
                done = [report]
            else:
                done.append(report)
            plain = plain_pass(done)
            if plain is not None:
                hashes = self.hashes
                line = codec.passed_line_encoded(
                    self._result_prefix,
                    self._test_json if nodeid == self._test_id else _enc(nodeid),
                    plain[0],
                    plain[1],
                    hashes.last_field
                    if nodeid.startswith(hashes.last_prefix)
                    else hashes.field_for(nodeid),
                )
                if self.each:
                    self._each_result(nodeid, "passed", line)
                else:
                    self.outcomes[nodeid] = "passed"
                    self._write_result(line)
            else:
                self._record(
                    result_from_reports(
                        self.config, self.run, self.attempt, done, self.hashes.for_test(nodeid)
                    )
                )
        elif when == "setup" or when == "call":
            if self._reran and when == "setup":
                self._reran.discard(key)  # the next attempt starts: no teardown came between
            reports = pending.get(key)
            if reports is None:
                pending[key] = [report]
            else:
                reports.append(report)
        else:  # xdist: a worker crashed while running this test ("???")
            crashed = pending.pop(key, None) or []
            text = report.longreprtext.strip()
            result = crashed_result(
                self.run,
                self.attempt,
                nodeid,
                text.splitlines()[-1] if text else "crashed",
                report.duration,
                self.hashes.for_test(nodeid),
                report.longreprtext or None,
            )
            crashed.append(report)
            serialized = serialize_reports(self.config, crashed)
            self._record(ResultRecord(**{**result.__dict__, "reports": serialized}))

    def crashed(self, nodeid: str, how: str) -> ResultRecord:
        """Record that ``nodeid`` killed the child process it ran in (single process)."""
        result = crashed_result(
            self.run,
            self.attempt,
            nodeid,
            f"crashed: the test killed its process ({how})",
            0.0,
            self.hashes.for_test(nodeid),
        )
        self._record(result)
        return result

    def _record(self, result: ResultRecord) -> None:
        if self.each:
            self._each_result(result.test, result.outcome, codec.encode(result))
            return
        self.outcomes[result.test] = result.outcome
        self._write_result(codec.encode(result))

    def _each_result(self, nodeid: str, outcome: str, line: bytes) -> None:
        """``--dist each``: one worker's result of ``nodeid``. The test's result is the worst
        over the workers: a bad one is written at once (the first stands); any other waits
        until every worker's result is in, so an interrupted attempt never records one
        worker's pass for a test another worker would have failed."""
        previous = self.outcomes.get(nodeid)
        if previous is not None:
            return  # a bad result is written: nothing beats it
        seen = self._each_seen[nodeid] = self._each_seen.get(nodeid, 0) + 1
        rank = _rank(outcome)
        if rank == 2:
            self._each_held.pop(nodeid, None)
            self.outcomes[nodeid] = outcome
            self._write_result(line)
            return
        held = self._each_held.get(nodeid)
        if held is None or rank > held[0]:
            held = self._each_held[nodeid] = (rank, outcome, line)
        if seen >= (self.each_collected.get(nodeid) or self.each_workers):
            del self._each_held[nodeid]
            self.outcomes[nodeid] = held[1]
            self._write_result(held[2])

    def _write_result(self, line: bytes) -> None:
        # append() with the count, one call less on the hot path
        writer = self.writer
        if writer is not None:
            try:
                writer.append_bytes(line)
            except JournalError as exc:
                self._broke(exc)
            else:
                self.written += 1

    def append(self, line: bytes) -> bool:
        """Append ``line``; ``False`` if it is not in the journal (recording has stopped)."""
        writer = self.writer
        if writer is None:
            return False
        try:
            writer.append_bytes(line)
        except JournalError as exc:
            self._broke(exc)
            return False
        return True

    def _broke(self, exc: JournalError) -> None:
        # A failure to record never fails or hides a test result: stop recording, say so.
        self.broken = str(exc)
        self.writer = None
        self.on_broken(str(exc))
