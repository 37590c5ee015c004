"""The plugin object of one pytest session, on the single process or the xdist controller.

It alone writes the journal. At session start it reads the journal once, picks the run to
continue (or starts one), and decides which results are carried. Tests with a carried result
stay collected, so the selection (and xdist's collection on every worker) is the whole run, but
they are not run: after the tests of this attempt ran, their results are replayed through
``pytest_runtest_logreport`` so the terminal, ``--junitxml`` and the exit status describe the
whole run.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shlex
import signal
import socket
import sys
import time
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from pytest_resumable.journal import (
    BAD_OUTCOMES,
    AttemptRecord,
    EndRecord,
    JournalError,
    JournalWriter,
    Outcome,
    ResultRecord,
    RunRecord,
    ShardRecord,
    encode,
    encode_passed,
    encode_str,
    start_prefix,
)
from pytest_resumable.order import partition, shard_tests
from pytest_resumable.plugin import Settings
from pytest_resumable.replay import CARRIED_ATTR, CarriedResults, carried_reports
from pytest_resumable.runstate import (
    JournalIndex,
    RunState,
    load_durations,
    load_index,
    load_run,
)

#: pytest-rerunfailures' outcome for a report that is not final (not in pytest's Literal).
RERUN: str = "rerun"

_ORDER = ("passed", "failed", "error", "crashed", "skipped", "xfailed", "xpassed")


def describe_counts(counts: dict[str, int]) -> str:
    parts = [f"{counts[o]} {o}" for o in _ORDER if counts.get(o)]
    return ", ".join(parts) if parts else "none"


def _crash_message(report: pytest.TestReport) -> str | None:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if isinstance(message, str):
        return message
    text = report.longreprtext
    return text.strip().splitlines()[-1] if text.strip() else None


def result_from_reports(
    run: str,
    attempt: int,
    nodeid: str,
    setup: pytest.TestReport | None,
    call: pytest.TestReport | None,
    teardown: pytest.TestReport,
    file_hash: str | None,
) -> ResultRecord:
    """The one result of a test, from its setup, call and teardown reports."""
    reports = [r for r in (setup, call, teardown) if r is not None]
    duration = sum(r.duration for r in reports)
    outcome: Outcome = "passed"
    deciding = teardown
    if setup is not None and setup.failed:
        outcome, deciding = "error", setup
    elif setup is not None and setup.skipped:
        outcome = "xfailed" if hasattr(setup, "wasxfail") else "skipped"
        deciding = setup
    elif call is not None:
        deciding = call
        if call.failed:
            outcome = "failed"
        elif call.skipped:
            outcome = "xfailed" if hasattr(call, "wasxfail") else "skipped"
        else:
            outcome = "xpassed" if hasattr(call, "wasxfail") else "passed"
    if teardown.failed and outcome not in ("failed", "error"):
        outcome, deciding = "error", teardown

    message: str | None = None
    longrepr: str | None = None
    if outcome in ("failed", "error"):
        message = _crash_message(deciding)
        longrepr = deciding.longreprtext
    elif outcome in ("xfailed", "xpassed"):
        message = str(getattr(deciding, "wasxfail", "")) or None
    elif outcome == "skipped" and isinstance(deciding.longrepr, tuple):
        message = str(deciding.longrepr[2])
    return ResultRecord(
        run=run,
        attempt=attempt,
        test=nodeid,
        outcome=outcome,
        duration=duration,
        when=deciding.when if outcome != "passed" else None,
        line=deciding.location[1] if deciding.location else None,
        file_hash=file_hash,
        message=message,
        longrepr=longrepr,
    )


class FileHashes:
    """Content hashes of test files, by the path part of a node id (mtime is useless in CI)."""

    def __init__(self, rootpath: Path) -> None:
        self.rootpath = rootpath
        self._cache: dict[str, str | None] = {}

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


class ResumableSession:
    """Records this session's results and reports the whole run. One per controller."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.active = False
        self.writer: JournalWriter | None = None
        self.run_id = ""
        self.attempt = 0
        self.resumed = False
        self.state: RunState | None = None
        #: carried results this attempt replays, by node id
        self.carried: dict[str, ResultRecord] = {}
        self.in_flight: list[str] = []
        self.crashed_now: list[str] = []
        self.not_carried_changed = 0
        self.each_not_carried = 0
        self.corrupt_lines = 0
        #: the node ids selected in this attempt, known after collection
        self.selected: list[str] | None = None
        #: outcome of each test that got a result in this attempt
        self.new_results: dict[str, str] = {}
        self._setups: dict[str, pytest.TestReport] = {}
        self._calls: dict[str, pytest.TestReport] = {}
        self._reran: set[str] = set()
        self._start_prefix = ""
        self._replaying = False
        self._hashes = FileHashes(config.rootpath)
        self._broken: str | None = None
        #: recorded durations, when they are needed (xdist ordering, sharding)
        self.durations: dict[str, float] = {}
        #: (own tests, every selected test) of this shard, frozen on the run's first attempt
        self.frozen: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        #: (selection, assignment) frozen by another shard of this CI run, to agree with it
        self.adopted: tuple[tuple[str, ...], tuple[int, ...]] | None = None
        self.adopted_from: str | None = None
        self.shard_excluded = 0
        self._old_sigterm: Any = None
        self._finished = False

    # -- start

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Called by pytest before collection (and before xdist starts its workers)."""
        if self.config.option.collectonly:
            return
        try:
            self._start()
        except JournalError as exc:
            if self.settings.explicit:
                raise pytest.UsageError(str(exc)) from None
            self._warn(f"{exc}; this session is not recorded")
            self._close_writer()
            return
        self.active = True
        self._start_prefix = start_prefix(self.run_id, self.attempt)
        if self.carried:
            self.config.pluginmanager.register(CarriedResults(self.carried), "resumable-carried")
        self._install_sigterm()

    def _start(self) -> None:
        settings = self.settings
        index = load_index(settings.journal)
        self.corrupt_lines = index.stats.corrupt
        shard = settings.shard_spec
        summary = index.find_resumable(settings.resume_id, shard) if settings.resume else None
        writer = JournalWriter(
            settings.journal, fsync=settings.fsync, lock_timeout=settings.lock_timeout
        )
        self.writer = writer
        writer.open()
        now = round(time.time(), 3)
        if summary is None:
            self.run_id = secrets.token_hex(4)
            while self.run_id in index.runs:  # pragma: no cover - 1 in 4 billion
                self.run_id = secrets.token_hex(4)
            self.attempt = 1
            writer.append(RunRecord(self.run_id, now, settings.resume_id, shard))
        else:
            self.resumed = True
            self.run_id = summary.id
            state = load_run(settings.journal, summary, limit=None)
            self.state = state
            self.corrupt_lines += state.stats.corrupt
            last = summary.last_attempt
            self.attempt = (last.number if last else 0) + 1
            if last is not None:
                self.in_flight = sorted(state.in_flight(last.number) - set(state.results))
            if not settings.retry_failed:
                self.crashed_now = state.crashed_candidates(self.attempt)
            if state.shard is not None:
                self.frozen = (state.shard.tests, state.shard.selection)
        if settings.shard is not None and self.frozen is None and settings.resume_id is not None:
            self._adopt_sibling_assignment(index)
        if settings.shard is not None or (self._uses_xdist() and settings.order == "duration"):
            # durations order the work and balance shards; leave out this CI run's other
            # shards, which may or may not have recorded anything yet (same input everywhere)
            exclude = frozenset(
                r.id
                for r in index.runs.values()
                if settings.resume_id is not None and r.record.resume_id == settings.resume_id
            )
            self.durations = load_durations(settings.journal, exclude)
        writer.append(
            AttemptRecord(self.run_id, self.attempt, now, os.getpid(), socket.gethostname())
        )
        for test in self.crashed_now:
            crashed = ResultRecord(
                self.run_id,
                self.attempt,
                test,
                "crashed",
                0.0,
                when="call",
                file_hash=self._hashes.for_test(test),
                message="crashed: the process died while this test ran, in two attempts in a "
                "row; not run again automatically (--resume-retry-failed runs it)",
            )
            writer.append(crashed)
            assert self.state is not None
            self.state.results[test] = crashed
        if self.state is not None and self._dist_each():
            # --dist each runs every test on every worker; a result says nothing about the
            # other workers, so nothing is carried: the attempt runs everything again.
            self.each_not_carried = len(self.state.results)
        elif self.state is not None:
            for test, result in self.state.results.items():
                if settings.retry_failed and result.outcome in BAD_OUTCOMES:
                    continue
                if result.file_hash != self._hashes.for_test(test):
                    self.not_carried_changed += 1
                    continue
                self.carried[test] = result

    def _adopt_sibling_assignment(self, index: JournalIndex) -> None:
        """The first shard of this CI run (same --resume-id, same N) to start froze the split
        of the whole selection: use it, so shards started later agree whatever durations
        were recorded in between."""
        shard = self.settings.shard
        assert shard is not None
        for summary in index.runs.values():
            spec = summary.record.shard or ""
            if (
                summary.id == self.run_id
                or summary.record.resume_id != self.settings.resume_id
                or spec.partition("/")[2] != str(shard[1])
            ):
                continue
            sibling = load_run(self.settings.journal, summary).shard
            if sibling is not None and sibling.assignment:
                self.adopted = (sibling.selection, sibling.assignment)
                self.adopted_from = spec
                return

    def _uses_xdist(self) -> bool:
        option = self.config.option
        return bool(getattr(option, "numprocesses", None) or getattr(option, "tx", None)) and (
            getattr(option, "dist", "no") != "no"
        )

    def shard_of(self, ids: Sequence[str]) -> list[str]:
        """This shard's tests among ``ids``; freezes the assignment on the first attempt."""
        shard = self.settings.shard
        assert shard is not None
        k, n = shard
        if self.frozen is not None:  # a retry: exactly the rest of the frozen assignment
            mine = shard_tests(ids, k, n, self.durations, self.frozen)
        else:
            if self.adopted is not None:  # another shard of this CI run split the tests
                selection, assignment = self.adopted
            else:
                parts = partition(ids, self.durations, n)
                owner = {t: i for i, part in enumerate(parts) for t in part}
                selection, assignment = tuple(ids), tuple(owner[t] for t in ids)
            own = tuple(t for t, a in zip(selection, assignment, strict=True) if a == k - 1)
            self.frozen = (own, selection)
            mine = shard_tests(ids, k, n, self.durations, self.frozen)
            record = ShardRecord(
                self.run_id,
                self.attempt,
                self.settings.shard_spec or "",
                own,
                selection,
                assignment,
            )
            if self.writer is not None:
                try:
                    self.writer.append(record)
                except JournalError as exc:
                    self._broken = str(exc)
                    self._warn(f"{exc}; recording stopped, test results are not affected")
                    self._close_writer()
        self.shard_excluded = len(ids) - len(mine)
        return mine

    @pytest.hookimpl(trylast=True)  # after -k / -m and other plugins deselected theirs
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Called by pytest after collection, in the single process (workers: xdist.py)."""
        if not self.active or self.settings.shard is None:
            return
        mine = set(self.shard_of([item.nodeid for item in items]))
        keep = [item for item in items if item.nodeid in mine]
        dropped = [item for item in items if item.nodeid not in mine]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def _dist_each(self) -> bool:
        option = self.config.option
        return bool(getattr(option, "numprocesses", None) or getattr(option, "tx", None)) and (
            getattr(option, "dist", "no") == "each"
        )

    def _install_sigterm(self) -> None:
        # pytest handles SIGINT but not SIGTERM, which CI sends when it cancels a job: end the
        # attempt the same clean way, unless someone else already handles SIGTERM.
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        except (ValueError, AttributeError, OSError):  # not the main thread, or no SIGTERM
            self._old_sigterm = None

    # -- collection and the header

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        if not self.active:
            return None
        where = _display_path(self.settings.journal, config.invocation_params.dir)
        if self.resumed:
            return f"resumable: journal {where}"
        return f"resumable: recording run {self.run_id} to {where}"

    @pytest.hookimpl(tryfirst=True)  # before the terminal asks for the header line
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Called by pytest after collection in the single process (not on the controller)."""
        if self.active:
            self.set_selected([item.nodeid for item in session.items])

    def set_selected(self, ids: Iterable[str]) -> None:
        if self.selected is None:
            self.selected = list(ids)

    def pytest_report_collectionfinish(self, config: pytest.Config) -> list[str] | None:
        if not self.active:
            return None
        lines = []
        if self.settings.shard is not None:
            lines.append(self.shard_line())
        if self.resumed:
            lines.append(self.header_line())
        return lines or None

    def header_line(self) -> str:
        selected = set(self.selected or ())
        have = {t: r for t, r in self.carried.items() if t in selected}
        counts: dict[str, int] = {}
        for result in have.values():
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        line = (
            f"resumable: resuming run {self.run_id} (attempt {self.attempt}): "
            f"{len(have)}/{len(selected)} have results ({describe_counts(counts)}); "
            f"{len(selected) - len(have)} to run"
        )
        in_flight = [t for t in self.in_flight if t in selected]
        if in_flight:
            shown = ", ".join(in_flight[:3]) + (", ..." if len(in_flight) > 3 else "")
            line += (
                f"; {len(in_flight)} {'was' if len(in_flight) == 1 else 'were'} in flight: {shown}"
            )
        if self.crashed_now:
            line += f"; {len(self.crashed_now)} recorded crashed (in flight in 2 dead attempts)"
        if self.not_carried_changed:
            line += f"; {self.not_carried_changed} not carried (test file changed)"
        if self.each_not_carried:
            line += "; --dist each: nothing is carried, every test runs on every worker"
        if self.corrupt_lines:
            line += f"; {self.corrupt_lines} corrupt journal lines skipped"
        return line

    def shard_line(self) -> str:
        shard = self.settings.shard_spec
        if self.resumed:
            frozen = "the rest of its assignment frozen in attempt 1"
        elif self.adopted_from:
            frozen = f"split as frozen by shard {self.adopted_from} of this run"
        else:
            frozen = "split by recorded durations, frozen"
        return (
            f"resumable: shard {shard}: {len(self.selected or ())} tests "
            f"({self.shard_excluded} belong to other shards; {frozen})"
        )

    # -- running

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """Called before each test runs (by xdist on the controller for worker tests)."""
        if self.active and not self._replaying and self.writer is not None:
            line = self._start_prefix + encode_str(nodeid) + "}\n"
            self._append_bytes(line.encode("utf-8", "surrogatepass"))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Called for each phase report; the teardown report completes a test's result.

        The hot path of the plugin (3 calls per test): a passing test costs two dict stores,
        two pops and one formatted line.
        """
        if not self.active or self._replaying:
            return
        nodeid = report.nodeid
        when = report.when
        if report.outcome == RERUN:
            # pytest-rerunfailures: only the final attempt's reports make the result; the
            # teardown of a rerun attempt still arrives, as "passed".
            self._setups.pop(nodeid, None)
            self._calls.pop(nodeid, None)
            self._reran.add(nodeid)
        elif when == "call":
            self._calls[nodeid] = report
        elif when == "setup":
            if self._reran:
                self._reran.discard(nodeid)
            self._setups[nodeid] = report
        elif when == "teardown":
            if nodeid in self._reran:
                self._reran.discard(nodeid)
                self._setups.pop(nodeid, None)
                return
            setup = self._setups.pop(nodeid, None)
            call = self._calls.pop(nodeid, None)
            file_hash = self._hashes.for_test(nodeid)
            if (
                report.passed
                and call is not None
                and call.passed
                and setup is not None
                and setup.passed
                and not hasattr(call, "wasxfail")
            ):
                self.new_results[nodeid] = "passed"
                duration = setup.duration + call.duration + report.duration
                self._append_bytes(
                    encode_passed(
                        self.run_id, self.attempt, nodeid, duration, call.location[1], file_hash
                    )
                )
            else:
                self._record(
                    result_from_reports(
                        self.run_id, self.attempt, nodeid, setup, call, report, file_hash
                    )
                )
        else:  # xdist: a worker crashed while running this test ("???")
            self._setups.pop(nodeid, None)
            self._calls.pop(nodeid, None)
            text = report.longreprtext.strip()
            self._record(
                ResultRecord(
                    self.run_id,
                    self.attempt,
                    nodeid,
                    "crashed",
                    report.duration,
                    when="call",
                    file_hash=self._hashes.for_test(nodeid),
                    message=text.splitlines()[-1] if text else "crashed",
                    longrepr=report.longreprtext or None,
                )
            )

    def _record(self, result: ResultRecord) -> None:
        self.new_results[result.test] = result.outcome
        self._append_bytes(encode(result))

    def _append_bytes(self, line: bytes) -> None:
        if self.writer is None:
            return
        try:
            self.writer.append_bytes(line)
        except JournalError as exc:
            # A failure to record never fails or hides a test result: stop recording, say so.
            self._broken = str(exc)
            self._warn(f"{exc}; recording stopped, test results are not affected")
            self._close_writer()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """Around pytest's (or xdist's) test loop: replay carried results after it."""
        try:
            return (yield)
        finally:
            if self.active:
                self._replay(session)

    def _replay(self, session: pytest.Session) -> None:
        if not self.carried or not self.selected:
            return
        hook = self.config.hook
        # -x / --maxfail count only tests run now (pytest cannot unset session.shouldfail, so
        # keep it from being set); the exit status still counts carried failures.
        option = self.config.option
        maxfail = getattr(option, "maxfail", 0)
        option.maxfail = 0
        self._replaying = True
        try:
            for test in self.selected:
                result = self.carried.get(test)
                if result is None or test in self.new_results:
                    continue
                reports = carried_reports(result)
                location = reports[0].location
                hook.pytest_runtest_logstart(nodeid=test, location=location)
                for report in reports:
                    hook.pytest_runtest_logreport(report=report)
                hook.pytest_runtest_logfinish(nodeid=test, location=location)
        finally:
            self._replaying = False
            option.maxfail = maxfail
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            mark_carried_in_stats_line(tr)

    # -- end

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(
        self, session: pytest.Session, exitstatus: int
    ) -> Generator[None, object, object]:
        """Outermost around pytest_sessionfinish: the terminal's summary is printed inside,
        so the line said here is the last one."""
        try:
            return (yield)
        finally:
            if self.active:
                self._finish(session)

    def _finish(self, session: pytest.Session) -> None:
        if self._finished:
            return
        self._finished = True
        self._restore_sigterm()
        status = int(session.exitstatus)
        results = {**{t: r.outcome for t, r in self.carried.items()}, **self.new_results}
        selected = self.selected
        missing: list[str] = []
        if selected is not None:
            missing = [t for t in selected if t not in results]
        complete = selected is not None and not missing and status in (0, 1, 5)
        if self.writer is not None:
            try:
                self.writer.append(
                    EndRecord(
                        self.run_id,
                        self.attempt,
                        round(time.time(), 3),
                        status,
                        len(selected or ()),
                        len(selected or ()) - len(missing),
                        complete,
                    )
                )
            except JournalError as exc:
                self._broken = self._broken or str(exc)
        self._close_writer()
        compacted = self._maybe_compact()
        if not selected:
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and compacted:
            tr.write_line(compacted)
        if tr is None:
            return
        if self._broken:
            tr.write_line(f"resumable: recording stopped: {self._broken}", yellow=True)
        if complete:
            counts: dict[str, int] = {}
            for test in selected:
                outcome = results[test]
                counts[outcome] = counts.get(outcome, 0) + 1
            attempts = f"{self.attempt} attempt{'s' if self.attempt != 1 else ''}"
            bad = any(counts.get(o) for o in BAD_OUTCOMES)
            tr.write_line(
                f"resumable: run {self.run_id} complete after {attempts} "
                f"({describe_counts(counts)})",
                red=bad,
                green=not bad,
                bold=True,
            )
        else:
            tr.write_line(
                f"resumable: run {self.run_id} incomplete: {len(missing)} of {len(selected)} "
                f"tests have no result yet; continue with: {self.continue_command()}",
                yellow=True,
                bold=True,
            )

    def _maybe_compact(self) -> str | None:
        """Compact the journal once it passes ``resume_compact_bytes``, never waiting: if
        another process holds the lock, try again at the end of another session."""
        limit = self.settings.compact_bytes
        if not limit or self._broken:
            return None
        try:
            if os.stat(self.settings.journal).st_size <= limit:
                return None
        except OSError:
            return None
        from pytest_resumable.compact import compact
        from pytest_resumable.journal import JournalLockTimeout

        try:
            result = compact(self.settings.journal, lock_timeout=0)
        except JournalLockTimeout:
            return None
        except JournalError as exc:
            return f"{exc} (automatic compaction skipped)"
        return (
            f"resumable: journal compacted: {result.before:,} -> {result.after:,} bytes "
            f"(resume_compact_bytes = {limit:,})"
        )

    def continue_command(self) -> str:
        args = [a for a in self.config.invocation_params.args if a != "--resume-new"]
        if not self.settings.resume:
            args.insert(0, "--resume")
        return shlex.join(["pytest", *args])

    def pytest_unconfigure(self) -> None:
        self._restore_sigterm()
        self._close_writer()

    # -- helpers

    def _close_writer(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            try:
                signal.signal(signal.SIGTERM, self._old_sigterm)
            except (ValueError, OSError):  # pragma: no cover
                pass
            self._old_sigterm = None

    def _warn(self, message: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        line = message if message.startswith("resumable:") else f"resumable: {message}"
        if tr is not None:
            tr.write_line(f"{line}", yellow=True)
        else:
            print(line, file=sys.stderr)


def mark_carried_in_stats_line(tr: Any) -> None:
    """Make the terminal's stats line say how many of each count were carried, e.g.
    ``1 failed (1 carried), 27 passed (19 carried) in 4.07s``.

    pytest has no hook for the wording of that line; its parts are built by
    ``TerminalReporter.build_summary_stats_line``, so wrap that method on this one reporter
    (if a future pytest renames it, the line simply stays pytest's own).
    """
    original = getattr(tr, "build_summary_stats_line", None)
    if original is None or getattr(original, "_resumable", False):
        return

    def build_summary_stats_line() -> tuple[list[tuple[str, dict[str, bool]]], str]:
        parts, main_color = original()
        carried_by_text: dict[str, int] = {}
        for key, reports in tr.stats.items():
            if not key:
                continue
            shown = [r for r in reports if getattr(r, "count_towards_summary", True)]
            n_carried = sum(1 for r in shown if hasattr(r, CARRIED_ATTR))
            if n_carried:
                count, noun = pluralize(len(shown), key)
                carried_by_text[f"{count} {noun}"] = n_carried
        out = []
        for text, markup in parts:
            of_them = carried_by_text.get(text)
            out.append((f"{text} ({of_them} carried)" if of_them else text, markup))
        return out, main_color

    build_summary_stats_line._resumable = True  # type: ignore[attr-defined]
    tr.build_summary_stats_line = build_summary_stats_line


def pluralize(count: int, noun: str) -> tuple[int, str]:
    """The count and noun as pytest's stats line writes them ("1 error", "2 errors")."""
    if noun in ("error", "warnings", "test"):
        noun = noun.replace("warnings", "warning")
        return count, noun + "s" if count != 1 else noun
    return count, noun


def _sigterm_to_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def _display_path(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)
