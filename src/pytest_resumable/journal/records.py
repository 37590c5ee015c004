"""The records of a journal and the outcomes a result can have.

Plain frozen value classes (:mod:`pytest_resumable.values`) and constants, no I/O and no
pytest: xdist workers import this module, so it stays light. How a record looks on disk is
:mod:`pytest_resumable.journal.codec`'s business alone.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias

from pytest_resumable.values import Frozen

Outcome: TypeAlias = Literal[
    "passed", "failed", "error", "skipped", "xfailed", "xpassed", "crashed"
]
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "passed",
    "failed",
    "error",
    "skipped",
    "xfailed",
    "xpassed",
    "crashed",
)
#: Outcomes that keep a run red until the test is run again and passes.
BAD_OUTCOMES: Final[frozenset[str]] = frozenset(("failed", "error", "crashed"))

FsyncMode: TypeAlias = Literal["always", "interval", "never"]
FSYNC_MODES: Final[tuple[FsyncMode, ...]] = ("always", "interval", "never")

#: The journal format this code writes and the newest it reads.
FORMAT: Final = "pytest-resumable"
VERSION: Final = 1


class HeaderRecord(Frozen):
    version: int
    created: float | None

    def __init__(self, version: int, created: float | None = None) -> None:
        self.__dict__.update(version=version, created=created)


class RunRecord(Frozen):
    """A run starts. ``rootdir`` and ``inifile`` are where it was started: an attempt whose
    rootdir or ini file differs carries nothing (pytest may pick another rootdir when the
    journal path is taken for a test path)."""

    run: str
    time: float
    resume_id: str | None
    shard: str | None
    rootdir: str | None
    inifile: str | None

    def __init__(
        self,
        run: str,
        time: float,
        resume_id: str | None = None,
        shard: str | None = None,
        rootdir: str | None = None,
        inifile: str | None = None,
    ) -> None:
        self.__dict__.update(
            run=run, time=time, resume_id=resume_id, shard=shard, rootdir=rootdir, inifile=inifile
        )


class AttemptRecord(Frozen):
    run: str
    attempt: int
    time: float
    pid: int | None
    host: str | None
    #: the attempt ran under xdist (its controller's death blames no test)
    xdist: bool | None

    def __init__(
        self,
        run: str,
        attempt: int,
        time: float,
        pid: int | None = None,
        host: str | None = None,
        xdist: bool | None = None,
    ) -> None:
        self.__dict__.update(run=run, attempt=attempt, time=time, pid=pid, host=host, xdist=xdist)


class SelectionRecord(Frozen):
    """How many tests an attempt selected, written right after collection: the run's size is
    known even when the attempt is killed before its end record."""

    run: str
    attempt: int
    selected: int

    def __init__(self, run: str, attempt: int, selected: int) -> None:
        self.__dict__.update(run=run, attempt=attempt, selected=selected)


class StartRecord(Frozen):
    run: str
    attempt: int
    test: str

    def __init__(self, run: str, attempt: int, test: str) -> None:
        self.__dict__.update(run=run, attempt=attempt, test=test)


class ResultRecord(Frozen):
    """A test's result in one attempt. ``reports``: pytest's own serialized reports
    (``pytest_report_to_serializable``) of every test that is not a plain pass, replayed whole
    when the result is carried."""

    run: str
    attempt: int
    test: str
    outcome: Outcome
    duration: float
    when: str | None
    line: int | None
    file_hash: str | None
    message: str | None
    longrepr: str | None
    reports: tuple[dict[str, Any], ...] | None

    def __init__(
        self,
        run: str,
        attempt: int,
        test: str,
        outcome: Outcome,
        duration: float,
        when: str | None = None,
        line: int | None = None,
        file_hash: str | None = None,
        message: str | None = None,
        longrepr: str | None = None,
        reports: tuple[dict[str, Any], ...] | None = None,
    ) -> None:
        self.__dict__.update(
            run=run,
            attempt=attempt,
            test=test,
            outcome=outcome,
            duration=duration,
            when=when,
            line=line,
            file_hash=file_hash,
            message=message,
            longrepr=longrepr,
            reports=reports,
        )

    @classmethod
    def passed(
        cls,
        run: str,
        attempt: int,
        test: str,
        duration: float,
        line: int | None,
        file_hash: str | None,
    ) -> ResultRecord:
        """A plain pass, as ``ResultRecord(run, attempt, test, "passed", duration, line=...,
        file_hash=...)`` makes it, without binding keyword arguments. For reading journals,
        one per carried test."""
        record = object.__new__(cls)
        record.__dict__.update(
            run=run,
            attempt=attempt,
            test=test,
            outcome="passed",
            duration=duration,
            when=None,
            line=line,
            file_hash=file_hash,
            message=None,
            longrepr=None,
            reports=None,
        )
        return record


class EndRecord(Frozen):
    run: str
    attempt: int
    time: float
    status: int
    selected: int
    results: int
    complete: bool
    #: selected tests of the run outside this attempt's selection (``-k``, paths)
    outside: int | None
    collection_errors: int | None

    def __init__(
        self,
        run: str,
        attempt: int,
        time: float,
        status: int,
        selected: int,
        results: int,
        complete: bool,
        outside: int | None = None,
        collection_errors: int | None = None,
    ) -> None:
        self.__dict__.update(
            run=run,
            attempt=attempt,
            time=time,
            status=status,
            selected=selected,
            results=results,
            complete=complete,
            outside=outside,
            collection_errors=collection_errors,
        )


class ShardRecord(Frozen):
    """A shard's assignment, frozen on the run's first attempt (SPEC §4.10).

    ``tests``: the shard's own tests; ``selection``: every test selected when it was frozen
    (all shards); ``assignment``: the 0-based shard of each of them. The shards of one CI run
    that start later adopt the first one's assignment, so all agree.
    """

    run: str
    attempt: int
    shard: str
    tests: tuple[str, ...]
    selection: tuple[str, ...]
    assignment: tuple[int, ...]

    def __init__(
        self,
        run: str,
        attempt: int,
        shard: str,
        tests: tuple[str, ...],
        selection: tuple[str, ...],
        assignment: tuple[int, ...] = (),
    ) -> None:
        self.__dict__.update(
            run=run,
            attempt=attempt,
            shard=shard,
            tests=tests,
            selection=selection,
            assignment=assignment,
        )


class DurationsRecord(Frozen):
    """Durations of tests whose results compaction dropped, so ordering keeps learning."""

    time: float
    tests: dict[str, float]

    def __init__(self, time: float, tests: dict[str, float] | None = None) -> None:
        self.__dict__.update(time=time, tests={} if tests is None else tests)


Record: TypeAlias = (
    HeaderRecord
    | RunRecord
    | AttemptRecord
    | SelectionRecord
    | StartRecord
    | ResultRecord
    | EndRecord
    | ShardRecord
    | DurationsRecord
)
