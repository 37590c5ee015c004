"""The hooks of the process that writes the journal: the single pytest process, or the xdist
controller.

Session start: read the journal once, plan the attempt (:mod:`pytest_resumable.plan`), take
the run's attempt lock, write the run and attempt records. Collection: apply the plan (shard
members, carried tests taken out of the test loop). While tests run: :class:`Recorder` appends
a start line before each test and a result line when its last report arrives. After the loop:
replay the carried results as pytest's own reports. Session end: the end record, the last line.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from pytest_resumable import terminal
from pytest_resumable.history import no_collection, read_history
from pytest_resumable.journal import codec
from pytest_resumable.journal.errors import JournalError, JournalLockTimeout
from pytest_resumable.journal.records import (
    BAD_OUTCOMES,
    AttemptRecord,
    EndRecord,
    RunRecord,
    SelectionRecord,
    ShardRecord,
)
from pytest_resumable.journal.writer import AttemptLock, JournalWriter
from pytest_resumable.options import Settings
from pytest_resumable.plan import AttemptPlan, PlanInputs, history_filters, plan_attempt
from pytest_resumable.recorder import FileHashes, Recorder
from pytest_resumable.results import (
    CARRIED_ATTR,
    carried_teststatus,
    plain_reports,
    replayed_reports,
)

if TYPE_CHECKING:
    from pytest_resumable.sharding import Split

#: options under which pytest runs no test: nothing is recorded (SPEC §2)
_NO_RUN_OPTIONS = (
    "collectonly",
    "setupplan",
    "setuponly",
    "showfixtures",
    "show_fixtures_per_test",
)


def uses_xdist(config: pytest.Config) -> bool:
    option = config.option
    return bool(getattr(option, "numprocesses", None) or getattr(option, "tx", None)) and (
        getattr(option, "dist", "no") != "no"
    )


class ControllerPlugin:
    """Records this session's results and reports the whole run. One per controller."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        #: the process of this session: a forked child of a test that returns into pytest
        #: ends the session too, and must neither end nor compact the attempt
        self._pid = os.getpid()
        self.settings = settings
        self.active = False
        self.plan: AttemptPlan | None = None
        self.writer: JournalWriter | None = None
        self.recorder: Recorder | None = None
        self.attempt_lock: AttemptLock | None = None
        self.hashes = FileHashes(config.rootpath)
        #: the node ids selected in this attempt (this shard's), known after collection
        self.selected: list[str] | None = None
        #: the carried tests among them, replayed after the loop
        self.carried_selected: list[str] = []
        self.shard_excluded = 0
        self.collection_errors: set[str] = set()
        self._old_sigterm: Any = None
        self._finished = False
        self._counted = False
        self._history_run: Any = None
        self._journal_existed = False
        self._inputs: Any = None

    # -- start

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Called by pytest before collection (and before xdist starts its workers)."""
        option = self.config.option
        if any(getattr(option, name, False) for name in _NO_RUN_OPTIONS):
            # nothing runs, so nothing is recorded and no run completes; --shard still shows
            # its tests (``--co --shard 2/4``), planned from the journal without writing
            if self.settings.shard is not None and self.settings.journal != Path():
                try:
                    self._plan(read_only=True)
                except JournalError as exc:
                    raise pytest.UsageError(str(exc)) from None
            return
        if self.settings.journal == Path():
            if self.config.option.verbose > 0:
                self._warn(
                    "pytest's cache is off (-p no:cacheprovider) and no journal is "
                    "named: this session is not recorded"
                )
            return
        try:
            self._start()
        except JournalError as exc:
            self._stop_recording()
            if self.settings.explicit:
                raise pytest.UsageError(str(exc)) from None
            self._warn(f"{exc}; this session is not recorded")
            return
        self.active = True

    def _start(self) -> None:
        plan = self._plan(read_only=False)
        self._record_start(plan)

    def _plan(self, *, read_only: bool) -> AttemptPlan:
        settings = self.settings
        self._journal_existed = settings.journal.exists()
        xdist = uses_xdist(self.config)
        inputs = PlanInputs(
            resume=settings.resume,
            resume_id=settings.resume_id,
            shard=settings.shard,
            retry_failed=settings.retry_failed,
            dist_each=xdist and getattr(self.config.option, "dist", "") == "each",
            xdist=xdist,
            rootdir=str(self.config.rootpath),
            inifile=str(self.config.inipath) if self.config.inipath else None,
        )
        want_durations = settings.shard is not None or (xdist and settings.order == "duration")
        if settings.journal_in_cache and self.config.cache is not None and not read_only:
            # through pytest's cache, so the cache directory is marked as pytest marks it
            # (.gitignore, CACHEDIR.TAG): the journal holds failure texts, maybe secrets
            self.config.cache.set("resumable/journal", "see d/resumable")
            self.config.cache.mkdir("resumable")
        history = read_history(settings.journal, **history_filters(inputs, want_durations))  # type: ignore[arg-type]
        plan = plan_attempt(history, inputs, self.hashes.for_test, lambda: secrets.token_hex(4))
        self.plan = plan
        self._history_run = history.runs.get(plan.run_id)
        self._inputs = inputs
        return plan

    def _record_start(self, plan: AttemptPlan) -> None:
        """Take the run's attempt lock and write the run and attempt records."""
        settings = self.settings
        inputs = self._inputs
        xdist = inputs.xdist
        self.attempt_lock = AttemptLock(settings.journal, plan.run_id)
        holder = self.attempt_lock.take()
        if holder is not None:
            self.attempt_lock = None
            raise JournalError(
                f"resumable: run {plan.run_id} is being continued right now by {holder}; "
                f"wait for it to end, or start a new run with --resume-new"
            )
        writer = JournalWriter(
            settings.journal,
            fsync=settings.fsync,
            lock_timeout=settings.lock_timeout,
            on_wait=self._warn,
        )
        self.writer = writer
        writer.open()
        now = round(time.time(), 3)
        chosen = self._history_run
        run_record = (
            chosen.record
            if chosen is not None
            else RunRecord(
                plan.run_id,
                now,
                settings.resume_id,
                settings.shard_spec,
                inputs.rootdir,
                inputs.inifile,
            )
        )
        attempt = AttemptRecord(
            plan.run_id, plan.attempt, now, os.getpid(), socket.gethostname(), xdist
        )
        # if the journal is deleted or replaced mid-run, these start the new file again
        writer.preamble = [codec.encode(run_record), codec.encode(attempt)]
        if plan.new_run:
            writer.append(run_record)
        writer.append(attempt)
        self.recorder = Recorder(self.config, plan, writer, self.hashes, self._recording_failed)
        # the recorder is itself the plugin of the per-test hooks: one call layer less
        self.config.pluginmanager.register(self.recorder, "resumable-recorder")
        if plan.carried:
            self.config.pluginmanager.register(CarriedStatus(), "resumable-carried")
        if plan.suspects and not xdist and hasattr(os, "fork"):
            self.config.pluginmanager.register(
                SuspectIsolation(self, set(plan.suspects)), "resumable-isolation"
            )
        if self._journal_taken_for_a_test_path():
            self._warn(
                f"pytest may have taken the journal {settings.journal} for a test path when "
                f"it chose rootdir {self.config.rootpath} (ini file "
                f"{self.config.inipath or 'none'}): write --resume-journal=PATH (with '='), "
                "or the project's ini file may not be read"
            )
        if plan.mismatch:
            self._warn(
                f"{plan.mismatch}. If pytest took the journal path for a test path, write "
                f"--resume-journal=PATH (with '=')"
            )

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        """Called by pytest's terminal before collection: where this session records."""
        if not self.active or self.plan is None:
            return None
        where = _display_path(self.settings.journal, config.invocation_params.dir)
        if self.plan.resumed:
            return f"resumable: journal {where}"
        return f"resumable: recording run {self.plan.run_id} to {where}"

    # -- collection

    @pytest.hookimpl(trylast=True)  # after -k / -m and other plugins deselected theirs
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Called by pytest after collection, in the single process (xdist workers have
        their own hook in :mod:`pytest_resumable.worker`)."""
        if self.plan is None:
            return
        ids = [item.nodeid for item in items]
        mine = self._apply_shard(ids)
        if not self.active:  # --co --shard K/N: only show the shard
            if len(mine) != len(ids):
                chosen = set(mine)
                config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in chosen])
                items[:] = [item for item in items if item.nodeid in chosen]
            return
        if len(mine) != len(ids):
            chosen = set(mine)
            dropped = [item for item in items if item.nodeid not in chosen]
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item.nodeid in chosen]
        self._set_selected(mine)
        if self.carried_selected:
            # carried tests leave the test loop entirely: replayed after it (a skip inside
            # the loop cost ~44 µs a test)
            carried = self.plan.carried
            items[:] = [item for item in items if item.nodeid not in carried]

    def _apply_shard(self, ids: Sequence[str]) -> list[str]:
        """This shard's tests among ``ids`` (all of them when not sharding); records the
        split on the run's first attempt."""
        plan = self.plan
        assert plan is not None
        if plan.shard is None:
            return list(ids)
        from pytest_resumable.sharding import members, split_for

        split = split_for(plan.shard, ids, plan.durations)
        mine = members(plan.shard, ids, split)
        self.shard_excluded = len(ids) - len(mine)
        if plan.shard.source != "frozen" and self.recorder is not None:
            self._record_split(split)
        return mine

    def _record_split(self, split: Split) -> None:
        plan = self.plan
        assert plan is not None
        assert plan.shard is not None
        assert self.recorder is not None
        record = ShardRecord(
            plan.run_id,
            plan.attempt,
            plan.shard.spec,
            split.own(plan.shard.k),
            split.selection,
            split.assignment,
        )
        line = codec.encode(record)
        if self.writer is not None:
            self.writer.preamble.append(line)
        self.recorder.append(line)

    def _set_selected(self, ids: Sequence[str]) -> None:
        plan = self.plan
        assert plan is not None
        self.selected = list(ids)
        carried = plan.carried
        self.carried_selected = [t for t in ids if t in carried]
        if self.recorder is not None:
            self.recorder.append(
                codec.encode(SelectionRecord(plan.run_id, plan.attempt, len(self.selected)))
            )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Called for every collector (on the controller, for workers' failed ones too)."""
        if report.failed:
            self.collection_errors.add(report.nodeid)

    def pytest_report_collectionfinish(self, config: pytest.Config) -> list[str] | None:
        """Called by pytest's terminal after collection (single process; under xdist the
        controller collects nothing and :class:`XdistControllerHooks` prints these)."""
        if not self.active or self.selected is None:
            return None
        return self.status_lines() or None

    def status_lines(self) -> list[str]:
        plan = self.plan
        assert plan is not None
        assert self.selected is not None
        lines = []
        if plan.shard is not None:
            lines.append(terminal.shard_line(plan, len(self.selected), self.shard_excluded))
        if plan.resumed:
            lines.append(terminal.header_line(plan, self.selected, self.carried_selected))
        elif plan.corrupt_lines:
            lines.append("resumable: new run" + terminal.corrupt_note(plan.corrupt_lines))
        return lines

    # -- running

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """Around pytest's (or xdist's) test loop: SIGTERM is Ctrl-C while it runs; carried
        results are replayed after it."""
        if self.active:
            self._install_sigterm()
            if self.carried_selected and not uses_xdist(self.config):
                # the carried tests are part of the run: progress figures count them (under
                # xdist, xdist sets the count from the workers' lists; the replay adds them)
                session.testscollected += len(self.carried_selected)
                self._counted = True
        try:
            return (yield)
        except KeyboardInterrupt:
            self._drain_xdist()
            raise
        finally:
            self._restore_sigterm()
            if self.active:
                self._replay(session)

    def _drain_xdist(self) -> None:
        """Ctrl-C under xdist: record the results that already reached the controller's queue
        (workers run ahead of the controller; on a big suite they had finished ~1,400 tests
        the controller had not handled yet), with a short deadline. Recorded only: the
        interrupted attempt's terminal report stays as xdist leaves it."""
        dsession = self.config.pluginmanager.get_plugin("dsession")
        queue = getattr(dsession, "queue", None)
        recorder = self.recorder
        if queue is None or recorder is None:
            return
        import queue as queues

        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                callname, kwargs = queue.get(timeout=0.1)
            except queues.Empty:
                return
            except BaseException:  # a second Ctrl-C: stop draining
                return
            if callname == "testreport" and isinstance(kwargs.get("rep"), pytest.TestReport):
                report = kwargs["rep"]
                if not hasattr(report, "node"):
                    report.node = kwargs.get("node")  # as xdist sets it when it handles one
                recorder.pytest_runtest_logreport(report)
            elif callname == "logstart" and isinstance(kwargs.get("nodeid"), str):
                recorder.pytest_runtest_logstart(kwargs["nodeid"], kwargs.get("location"))

    def _replay(self, session: pytest.Session) -> None:
        if not self.carried_selected:
            return
        assert self.plan is not None
        if not self._counted:
            session.testscollected += len(self.carried_selected)
        config = self.config
        hook = config.hook
        # -x / --maxfail count only tests run now (pytest cannot unset session.shouldfail, so
        # keep it from being set); the exit status still counts carried failures.
        option = config.option
        maxfail = getattr(option, "maxfail", 0)
        option.maxfail = 0
        self._pause(True)
        tr = config.pluginmanager.get_plugin("terminalreporter")
        carried = self.plan.carried
        todo = self.carried_selected
        try:
            if terminal.bulk_replay_possible(config, tr):
                plain = [
                    t for t in todo if carried[t].outcome == "passed" and not carried[t].reports
                ]
                with no_collection():  # one report each, all kept in the terminal's stats
                    terminal.bulk_replay_passes(
                        config, tr, plain_reports(carried[t] for t in plain)
                    )
                done = set(plain)
                todo = [t for t in todo if t not in done]
            for test in todo:
                reports = replayed_reports(config, carried[test])
                location = reports[0].location
                hook.pytest_runtest_logstart(nodeid=test, location=location)
                for report in reports:
                    hook.pytest_runtest_logreport(report=report)
                hook.pytest_runtest_logfinish(nodeid=test, location=location)
        finally:
            self._pause(False)
            option.maxfail = maxfail
        if tr is not None:
            terminal.mark_carried_in_stats_line(tr, CARRIED_ATTR)

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
        if os.getpid() != self._pid:
            return  # a forked child (its writer writes nothing): the parent ends the attempt
        try:
            self._end_attempt(session)
        finally:
            # the plan and the run read from the journal (a record per carried test) are not
            # needed any more: freed now, pytest's collections at exit do not walk them
            self.plan = self._history_run = None
            self.carried_selected = []

    def _end_attempt(self, session: pytest.Session) -> None:
        self._restore_sigterm()
        plan, recorder = self.plan, self.recorder
        assert plan is not None
        status = int(session.exitstatus)
        selected = self.selected or []
        new = recorder.outcomes if recorder is not None else {}
        chosen = set(selected)
        results: dict[str, str]
        if not self.carried_selected and new.keys() <= chosen:
            results = new  # every result of this attempt is of its selection (set operations in C)
        else:
            results = {t: plan.carried[t].outcome for t in self.carried_selected}
            results.update((t, o) for t, o in new.items() if t in chosen)
        # results holds tests of the selection only: as many as it has means all of them
        missing = [] if len(results) == len(chosen) else [t for t in selected if t not in results]
        outside = self._outside(chosen)
        complete = (
            self.selected is not None
            and not missing
            and status in (0, 1, 5)
            and not self.collection_errors
        )
        if recorder is not None and recorder.broken is None:
            if status == pytest.ExitCode.INTERRUPTED and self.writer is not None:
                # Ctrl-C (or SIGTERM), perhaps while waiting for the lock: exit promptly, not
                # after another resume_lock_timeout for the end record (it only says how the
                # attempt ended; a resumed attempt does without it)
                self.writer.lock_timeout = min(self.writer.lock_timeout, _END_LOCK_TIMEOUT)
            try:
                recorder.append(
                    codec.encode(
                        EndRecord(
                            plan.run_id,
                            plan.attempt,
                            round(time.time(), 3),
                            status,
                            len(selected),
                            len(selected) - len(missing),
                            complete,
                            outside or None,
                            len(self.collection_errors) or None,
                        )
                    )
                )
            except KeyboardInterrupt:  # a second Ctrl-C while it waits: no end record
                recorder.writer = None
                recorder.broken = "resumable: interrupted while writing the attempt's end record"
        broken = recorder.broken if recorder is not None else None
        replaced = self.writer.replaced if self.writer is not None else 0
        self._stop_recording()
        compacted = None if broken else self._maybe_compact()
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None or self.selected is None:
            return
        if compacted:
            tr.write_line(compacted)
        if replaced:
            tr.write_line(
                "resumable: the journal was deleted or replaced during this session; this "
                "attempt's records were started again in the new file (earlier results of "
                "the run are not in it)",
                yellow=True,
            )
        self._last_line(tr, results, missing, outside, complete, broken, status)

    def _outside(self, selected: set[str]) -> int:
        """Tests of the run outside this attempt's selection that still have no result."""
        plan = self.plan
        assert plan is not None
        if plan.new_run:
            return 0
        known = selected | plan.recorded
        return max(0, plan.run_size - len(known)) if plan.run_size else 0

    def _last_line(
        self,
        tr: Any,
        results: dict[str, str],
        missing: list[str],
        outside: int,
        complete: bool,
        broken: str | None,
        status: int,
    ) -> None:
        plan = self.plan
        assert plan is not None
        selected = self.selected or []
        if broken:
            tr.write_line(
                f"resumable: recording stopped: {broken}; the journal has no result for "
                f"{self._unrecorded()} of {len(selected)} tests of run {plan.run_id}; "
                f"continue with: "
                f"{self.continue_command()}",
                yellow=True,
                bold=True,
            )
            return
        note = ""
        if outside:
            note = (
                f"; {outside} {'test' if outside == 1 else 'tests'} of the run "
                f"{'lies' if outside == 1 else 'lie'} outside this selection, still without "
                "a result"
            )
        if self.collection_errors:
            n = len(self.collection_errors)
            tr.write_line(
                f"resumable: run {plan.run_id} incomplete: {n} collection "
                f"{'error' if n == 1 else 'errors'}; fix and continue with: "
                f"{self.continue_command()}",
                yellow=True,
                bold=True,
            )
        elif complete:
            # one count per selected test, a duplicate's copies (--keep-duplicates) each
            counts = terminal.count_outcomes(map(results.__getitem__, selected))
            attempts = f"{plan.attempt} attempt{'s' if plan.attempt != 1 else ''}"
            bad = any(counts.get(o) for o in BAD_OUTCOMES)
            tr.write_line(
                f"resumable: run {plan.run_id} complete after {attempts} "
                f"({terminal.describe_counts(counts)}){note}",
                red=bad,
                green=not bad,
                bold=True,
            )
        else:
            n = len(missing)
            why = (
                f"{n} of {len(selected)} tests {'has' if n == 1 else 'have'} no result yet"
                if n
                else f"the attempt ended with exit status {status}"
            )
            tr.write_line(
                f"resumable: run {plan.run_id} incomplete: {why}{note}; continue "
                f"with: {self.continue_command()}",
                yellow=True,
                bold=True,
            )

    def _journal_taken_for_a_test_path(self) -> bool:
        """``--resume-journal PATH`` with a space and an existing file: pytest picks rootdir
        and the ini file before it knows this plugin's options, so it takes PATH for a test
        path; when PATH is outside the invocation directory, rootdir moves."""
        args = list(self.config.invocation_params.args)
        if "--resume-journal" not in args or not self._journal_existed:
            return False
        try:
            self.settings.journal.resolve().relative_to(self.config.invocation_params.dir)
        except ValueError:
            return True
        return False

    def _unrecorded(self) -> int:
        written = self.recorder.written if self.recorder is not None else 0
        return max(0, len(self.selected or ()) - len(self.carried_selected) - written)

    def _maybe_compact(self) -> str | None:
        """Compact the journal once it passes ``resume_compact_bytes``, never waiting: if
        another process holds the lock, try again at the end of another session."""
        limit = self.settings.compact_bytes
        if not limit:
            return None
        try:
            if os.stat(self.settings.journal).st_size <= limit:
                return None
        except OSError:
            return None
        from pytest_resumable.journal.rewrite import compact

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
        """The command that continues this run, with ``--resume-journal=PATH`` (the ``=``
        form: with a space, pytest may take an existing journal for a test path)."""
        args: list[str] = []
        given = list(self.config.invocation_params.args)
        i = 0
        while i < len(given):
            arg = given[i]
            if arg == "--resume-new":
                pass
            elif arg == "--resume-journal" and i + 1 < len(given):
                args.append(f"--resume-journal={given[i + 1]}")
                i += 1
            else:
                args.append(arg)
            i += 1
        if not self.settings.resume:
            args.insert(0, "--resume")
        import shlex

        return terminal.escape(shlex.join(["pytest", *args]))

    def pytest_unconfigure(self) -> None:
        self._restore_sigterm()
        self._stop_recording()

    # -- helpers

    def _pause(self, paused: bool) -> None:
        if self.recorder is not None:
            self.recorder.paused = paused

    def _recording_failed(self, message: str) -> None:
        self._warn(f"{message}; recording stopped, test results are not affected")

    def _stop_recording(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
        if self.attempt_lock is not None:
            lock, self.attempt_lock = self.attempt_lock, None
            lock.release()

    def _install_sigterm(self) -> None:
        # pytest handles SIGINT but not SIGTERM, which CI sends when it cancels a job: end the
        # attempt the same clean way while tests run, unless someone else handles SIGTERM.
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        except (ValueError, OSError):  # not the main thread, or no signals here
            self._old_sigterm = None

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
            tr.write_line(line, yellow=True)
        else:
            print(line, file=sys.stderr)


#: an interrupted attempt's wait for the lock to write its end record
_END_LOCK_TIMEOUT = 1.0


def _display_path(path: Path, base: Path) -> str:
    try:
        return terminal.escape(str(path.relative_to(base)))
    except ValueError:
        return terminal.escape(str(path))


def _sigterm_to_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


class CarriedStatus:
    """Registered only when an attempt carries results: the word pytest's terminal shows for
    a carried report says so (kept off the per-report path of every other session)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.CollectReport | pytest.TestReport
    ) -> tuple[str, str, str] | None:
        if isinstance(report, pytest.TestReport) and hasattr(report, CARRIED_ATTR):
            return carried_teststatus(report)
        return None


class SuspectIsolation:
    """Registered in a single process when the previous attempt died with tests in flight:
    each of them runs in a child process first (:mod:`pytest_resumable.isolation`)."""

    def __init__(self, controller: ControllerPlugin, suspects: set[str]) -> None:
        self.controller = controller
        self.suspects = suspects

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        if item.nodeid not in self.suspects:
            return None
        from pytest_resumable.isolation import record_warnings, run_in_child
        from pytest_resumable.results import skip_protocol

        self.suspects.discard(item.nodeid)
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        writer = self.controller.writer
        reports, warned, died = run_in_child(
            item, nextitem, writer.without_thread if writer is not None else None
        )
        recorded = False
        if reports is None:
            recorder = self.controller.recorder
            result = recorder.crashed(item.nodeid, died) if recorder is not None else None
            reports = replayed_reports(item.config, result) if result is not None else []
            for report in reports:
                delattr(report, CARRIED_ATTR)
            recorded = True
        self.controller._pause(recorded)  # the crash is recorded: report, don't record
        try:
            for report in reports:
                ihook.pytest_runtest_logreport(report=report)
        finally:
            self.controller._pause(False)
        skip_protocol(item, nextitem)  # the teardown pytest would have done after it here
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        record_warnings(item, warned)  # where pytest's warnings plugin would have: after it
        return True


class XdistControllerHooks:
    """xdist hooks of the controller: hand out the resolved plan, learn the selection."""

    def __init__(self, controller: ControllerPlugin) -> None:
        self.controller = controller
        self._snapshot: dict[str, Any] | None = None
        #: gateway id -> the channel its worker says on which tests it does not run now
        self._channels: dict[str, Any] = {}
        self._each_counted = 0

    def pytest_configure_node(self, node: Any) -> None:
        """Called by xdist on the controller for every worker it starts (or restarts)."""
        controller = self.controller
        plan = controller.plan
        if not controller.active or plan is None:
            return
        from pytest_resumable.worker import CHANNEL_KEY, WORKERINPUT_KEY, WorkerSnapshot

        option = controller.config.option
        order = controller.settings.order
        if order == "duration" and getattr(option, "loadscopereorder", False):
            # xdist's loadscope/loadfile/loadgroup would re-sort the groups by their number
            # of tests; the workers' order (by total duration) replaces that
            option.loadscopereorder = False
        if self._snapshot is None:  # the same for every worker, replacements included
            durations: Mapping[str, float] = plan.durations
            if plan.shard is None:
                # the order needs the durations of the tests run now only; a shard split
                # needs every test's
                durations = {t: d for t, d in durations.items() if t not in plan.carried}
            self._snapshot = WorkerSnapshot(
                run=plan.run_id,
                attempt=plan.attempt,
                carried=frozenset(plan.carried),
                order=order,
                dist=str(getattr(option, "dist", "load")),
                durations=durations,
                shard=plan.shard,
            ).to_dict()
        node.workerinput[WORKERINPUT_KEY] = self._snapshot
        if controller.recorder is not None:  # --dist each: a result needs every worker's
            controller.recorder.each_workers = int(node.workerinput.get("workercount", 1))
        channel = node.gateway.newchannel()
        node.workerinput[CHANNEL_KEY] = channel
        self._channels[node.gateway.id] = channel

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Called by xdist on the controller when a worker has collected, with the list its
        scheduler hands tests out from: only the tests run now (the worker kept no others).

        The worker sent the tests it does not run now (carried results, other shards' tests)
        on our channel just before; the first worker's two lists together are the selection.
        """
        controller = self.controller
        channel = self._channels.pop(node.gateway.id, None)
        if not controller.active or channel is None:
            return
        from pytest_resumable.worker import COLLECTION_FAILED, read_not_run_now

        try:
            rest = read_not_run_now(channel.receive(timeout=_CHANNEL_TIMEOUT))
        except (channel.TimeoutError, channel.RemoteError, EOFError, OSError):
            rest = None
        if rest is None:
            # without it the carried results of this selection are unknown: reporting none
            # (or all) could turn the run green (or red) wrongly
            pytest.exit(
                f"resumable: worker {node.gateway.id} did not say which tests it does not run "
                "now (is the same pytest-resumable installed on every worker?)",
                returncode=pytest.ExitCode.INTERNAL_ERROR,
            )
        recorder = controller.recorder
        if recorder is not None and recorder.each and self._each_counted < recorder.each_workers:
            # --dist each: a test's result needs the results of the workers that collected it
            # (the first collections only: a replacement worker takes over a dead one's tests)
            self._each_counted += 1
            collected = recorder.each_collected
            for test in ids:
                collected[test] = collected.get(test, 0) + 1
        if rest is COLLECTION_FAILED:
            return  # a worker whose collection failed runs nothing; pytest reports why
        if controller.selected is not None:
            if recorder is not None and recorder.each:
                # --dist each runs what every worker collected, and collections may differ
                known = set(controller.selected)
                more = [t for t in ids if t not in known]  # its share: nothing is carried
                if more:
                    controller._set_selected([*controller.selected, *more])
            return
        # a test another plugin took out of the worker's items after ours is in neither list
        mine = controller._apply_shard([*ids, *rest])
        controller._set_selected(mine)
        tr = controller.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        if controller.shard_excluded:
            mine_set = set(mine)
            from types import SimpleNamespace

            tr.stats.setdefault("deselected", []).extend(
                SimpleNamespace(nodeid=t) for t in rest if t not in mine_set
            )
        for line in controller.status_lines():
            tr.write_line(line)


#: seconds the controller waits for a worker's list of tests not run now; it was sent before
#: the event being handled, on the same connection, so it is normally there already
_CHANNEL_TIMEOUT = 5.0
