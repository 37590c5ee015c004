"""The plan of an attempt: from one read of the journal, decide once what this attempt does.

Pure: ``(history, the session's inputs, file hashes) -> AttemptPlan``, no pytest and no I/O.
The controller (or the single process) computes it at session start; workers get the resolved
parts of it (:class:`pytest_resumable.worker.WorkerSnapshot`) and never decide anything again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pytest_resumable.history import History, RunState
from pytest_resumable.journal.records import BAD_OUTCOMES, ResultRecord, RunRecord
from pytest_resumable.values import Frozen

if TYPE_CHECKING:
    from pytest_resumable.sharding import ShardRule


class PlanInputs(Frozen):
    """What the plan depends on besides the journal: the session's resolved options."""

    resume: bool
    resume_id: str | None
    shard: tuple[int, int] | None
    retry_failed: bool
    #: ``--dist each``: every test runs on every worker; a result says nothing about the others
    dist_each: bool
    #: this attempt runs under xdist: a test that kills its worker is seen by xdist
    xdist: bool
    rootdir: str
    inifile: str | None

    def __init__(
        self,
        resume: bool,
        resume_id: str | None,
        shard: tuple[int, int] | None,
        retry_failed: bool,
        dist_each: bool,
        xdist: bool,
        rootdir: str,
        inifile: str | None,
    ) -> None:
        self.__dict__.update(
            resume=resume,
            resume_id=resume_id,
            shard=shard,
            retry_failed=retry_failed,
            dist_each=dist_each,
            xdist=xdist,
            rootdir=rootdir,
            inifile=inifile,
        )

    @property
    def shard_spec(self) -> str | None:
        return f"{self.shard[0]}/{self.shard[1]}" if self.shard else None


class AttemptPlan(Frozen):
    """What this attempt does. Immutable; made once per session."""

    run_id: str
    attempt: int
    #: the run starts now: its run record is written
    new_run: bool
    #: the tests carried from earlier attempts (not run again), by node id
    carried: Mapping[str, ResultRecord]
    #: tests that had started but had no result when the previous attempt died
    in_flight: tuple[str, ...]
    #: of those, the tests to run in a child process first (the previous attempt was a
    #: single process: one of them may have killed it); only a child's death blames a test
    suspects: tuple[str, ...]
    #: results of the run not carried because their test file changed
    not_carried_changed: int
    #: results not carried because this attempt runs under ``--dist each``
    each_not_carried: int
    #: why an unfinished run of this identity is not continued (started elsewhere)
    mismatch: str | None
    corrupt_lines: int
    durations: Mapping[str, float]
    shard: ShardRule | None
    #: how many tests the run has selected at most so far (its earlier attempts)
    run_size: int
    #: every test of the run with a result (carried or not)
    recorded: frozenset[str]

    def __init__(
        self,
        run_id: str,
        attempt: int,
        new_run: bool,
        carried: Mapping[str, ResultRecord] | None = None,
        in_flight: tuple[str, ...] = (),
        suspects: tuple[str, ...] = (),
        not_carried_changed: int = 0,
        each_not_carried: int = 0,
        mismatch: str | None = None,
        corrupt_lines: int = 0,
        durations: Mapping[str, float] | None = None,
        shard: ShardRule | None = None,
        run_size: int = 0,
        recorded: frozenset[str] = frozenset(),
    ) -> None:
        self.__dict__.update(
            run_id=run_id,
            attempt=attempt,
            new_run=new_run,
            carried={} if carried is None else carried,
            in_flight=in_flight,
            suspects=suspects,
            not_carried_changed=not_carried_changed,
            each_not_carried=each_not_carried,
            mismatch=mismatch,
            corrupt_lines=corrupt_lines,
            durations={} if durations is None else durations,
            shard=shard,
            run_size=run_size,
            recorded=recorded,
        )

    @property
    def resumed(self) -> bool:
        return not self.new_run


def _same_place(state: RunState, inputs: PlanInputs) -> bool:
    # runs recorded before rootdir was recorded match anywhere
    return state.record.rootdir is None or (
        (state.record.rootdir, state.record.inifile) == (inputs.rootdir, inputs.inifile)
    )


def choose_run(history: History, inputs: PlanInputs) -> tuple[RunState | None, str | None]:
    """The run to continue (newest of this identity, not complete, started in the same
    rootdir with the same ini file), and why a newer unfinished one is not continued."""
    if not inputs.resume:
        return None, None
    same = [r for r in history.runs.values() if r.matches(inputs.resume_id, inputs.shard_spec)]
    if not same:
        return None, None
    newest = same[-1]
    here = [r for r in same if _same_place(r, inputs)]
    chosen = here[-1] if here and not here[-1].complete else None
    mismatch = None
    if newest is not chosen and not newest.complete and not _same_place(newest, inputs):
        mismatch = (
            f"run {newest.id} was started with rootdir {newest.record.rootdir} and ini file "
            f"{newest.record.inifile or '(none)'}, this session has rootdir {inputs.rootdir} "
            f"and ini file {inputs.inifile or '(none)'}: its results are not carried"
        )
    return chosen, mismatch


def plan_attempt(
    history: History,
    inputs: PlanInputs,
    file_hash: Callable[[str], str | None],
    new_run_id: Callable[[], str],
) -> AttemptPlan:
    """Decide what this attempt runs. ``file_hash(nodeid)``: the content hash of the test's
    file now; ``new_run_id()``: a fresh run id."""
    chosen, mismatch = choose_run(history, inputs)
    rule = _shard_rule(history, inputs, chosen)
    if chosen is None:
        run_id = new_run_id()
        while run_id in history.runs:  # pragma: no cover - 1 in 4 billion
            run_id = new_run_id()
        return AttemptPlan(
            run_id,
            1,
            True,
            mismatch=mismatch,
            corrupt_lines=history.corrupt,
            durations=history.durations,
            shard=rule,
        )
    last = chosen.last_attempt
    in_flight: tuple[str, ...] = ()
    suspects: tuple[str, ...] = ()
    if last is not None:
        in_flight = tuple(sorted(chosen.in_flight(last.number) - set(chosen.results)))
    # A dead xdist controller blames nobody (xdist itself reports a worker's crash); after a
    # dead single process, one of its in-flight tests may have killed it: run those in a
    # child first. Under xdist now, a worker's death is xdist's to see.
    if last is not None and last.died and not last.xdist and not inputs.xdist:
        suspects = in_flight
    carried: dict[str, ResultRecord] = {}
    changed = each = 0
    if inputs.dist_each:
        each = len(chosen.results)
    else:
        for test, result in chosen.results.items():
            if inputs.retry_failed and result.outcome in BAD_OUTCOMES:
                continue
            if result.file_hash != file_hash(test):
                changed += 1
                continue
            carried[test] = result
    return AttemptPlan(
        chosen.id,
        (last.number if last else 0) + 1,
        False,
        carried=carried,
        in_flight=in_flight,
        suspects=suspects,
        not_carried_changed=changed,
        each_not_carried=each,
        mismatch=mismatch,
        corrupt_lines=history.corrupt,
        durations=history.durations,
        shard=rule,
        run_size=chosen.selected or 0,
        recorded=frozenset(chosen.results),
    )


def _shard_rule(history: History, inputs: PlanInputs, chosen: RunState | None) -> ShardRule | None:
    """The shard split this attempt applies: its run's frozen one, else the one another shard
    of this CI run froze (same ``--resume-id``, same N), else a fresh one."""
    if inputs.shard is None:
        return None
    from pytest_resumable.sharding import ShardRule  # only when sharding

    k, n = inputs.shard
    if chosen is not None and chosen.shard is not None:
        frozen = chosen.shard
        return ShardRule(k, n, "frozen", frozen.selection, frozen.assignment)
    if inputs.resume_id is not None:
        for state in history.runs.values():
            spec = state.record.shard or ""
            if (
                state.record.resume_id == inputs.resume_id
                and spec.partition("/")[2] == str(n)
                and state.shard is not None
                and state.shard.assignment
            ):
                sibling = state.shard
                return ShardRule(k, n, "adopted", sibling.selection, sibling.assignment, spec)
    return ShardRule(k, n)


def history_filters(
    inputs: PlanInputs, want_durations: bool
) -> dict[str, Callable[[RunRecord], bool] | bool | None]:
    """The arguments of :func:`pytest_resumable.history.read_history` for this plan: detail
    for the runs of this identity (the newest only), shard splits of this CI run, durations
    from every run but this CI run's (its other shards may or may not have recorded yet:
    leaving them out gives every shard the same input)."""
    resume_id, spec = inputs.resume_id, inputs.shard_spec

    def detail(record: RunRecord) -> bool:
        return inputs.resume and record.resume_id == resume_id and record.shard == spec

    def shard_records(record: RunRecord) -> bool:
        return (
            inputs.shard is not None and resume_id is not None and (record.resume_id == resume_id)
        )

    def durations(record: RunRecord) -> bool:
        return resume_id is None or record.resume_id != resume_id

    return {
        "detail": detail,
        "newest_detail_only": True,
        "shard_records": shard_records,
        "durations": durations if want_durations else None,
    }
