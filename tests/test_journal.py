"""The journal module on its own: encoding, the tolerant reader, the leased writer."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import lock_holder
from pytest_resumable.history import read_history
from pytest_resumable.journal.codec import (
    cap_text,
    decode,
    decode_test_line,
    encode,
    passed_line,
    start_line,
    start_prefix,
)
from pytest_resumable.journal.errors import JournalError, JournalLockTimeout, JournalVersionError
from pytest_resumable.journal.reader import ReadStats, iter_records
from pytest_resumable.journal.records import (
    VERSION,
    AttemptRecord,
    DurationsRecord,
    EndRecord,
    HeaderRecord,
    ResultRecord,
    RunRecord,
    ShardRecord,
    StartRecord,
)
from pytest_resumable.journal.writer import JournalWriter

text = st.text(st.characters(codec="utf-8"), max_size=40)
results = st.builds(
    ResultRecord,
    run=text,
    attempt=st.integers(0, 10**6),
    test=text,
    outcome=st.sampled_from(
        ["passed", "failed", "error", "skipped", "xfailed", "xpassed", "crashed"]
    ),
    duration=st.floats(0, 1e6, allow_nan=False),
    when=st.none() | st.sampled_from(["setup", "call", "teardown"]),
    line=st.none() | st.integers(0, 10**6),
    file_hash=st.none() | text,
    message=st.none() | text,
    longrepr=st.none() | text,
)
records = st.one_of(
    results,
    st.builds(StartRecord, run=text, attempt=st.integers(0, 10**6), test=text),
    st.builds(
        RunRecord,
        run=text,
        time=st.floats(0, 1e10),
        resume_id=st.none() | text,
        shard=st.none() | text,
    ),
    st.builds(
        AttemptRecord,
        run=text,
        attempt=st.integers(0, 10**6),
        time=st.floats(0, 1e10),
        pid=st.none() | st.integers(0, 2**31),
        host=st.none() | text,
    ),
    st.builds(
        EndRecord,
        run=text,
        attempt=st.integers(0, 10**6),
        time=st.floats(0, 1e10),
        status=st.integers(0, 5),
        selected=st.integers(0, 10**6),
        results=st.integers(0, 10**6),
        complete=st.booleans(),
    ),
    st.lists(text, max_size=8).flatmap(
        lambda selection: st.builds(
            ShardRecord,
            run=text,
            attempt=st.integers(0, 10**6),
            shard=text,
            tests=st.tuples(*[st.sampled_from(selection)] * min(2, len(selection)))
            if selection
            else st.just(()),
            selection=st.just(tuple(selection)),
            assignment=st.tuples(*[st.integers(0, 50)] * len(selection)),
        )
    ),
    st.builds(
        DurationsRecord,
        time=st.floats(0, 1e10),
        tests=st.dictionaries(text, st.floats(0, 1e6), max_size=5),
    ),
)


@given(records)
def test_encode_decode_round_trip(record: object) -> None:
    line = encode(record)  # type: ignore[arg-type]
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    decoded = decode(line)
    if isinstance(record, ResultRecord):
        assert decoded == ResultRecord(**{**record.__dict__, "duration": round(record.duration, 6)})
    else:
        assert decoded == record
    assert json.loads(line)["type"]  # plain JSON anyone can read


#: test ids as pytest allows them: lone surrogates included (the fast encoders' error path)
test_ids = text | st.text(
    st.sampled_from(["a", ":", "\ud800", "\udfff", "\u00e9", '"']), max_size=8
)


@given(
    text,
    st.integers(0, 10**6),
    test_ids,
    st.floats(0, 1e6, allow_nan=False),
    st.none() | st.integers(0, 10**6),
    st.none() | text,
)
def test_fast_encoders_match_encode(
    run: str, attempt: int, test: str, duration: float, line: int | None, file_hash: str | None
) -> None:
    # the same record, not the same bytes: the fast encoder writes the duration in fixed
    # notation ("0.250000"), encode() as repr ("0.25"); both readers agree on it
    fast = passed_line(run, attempt, test, duration, line, file_hash)
    expected = decode(
        encode(ResultRecord(run, attempt, test, "passed", duration, line=line, file_hash=file_hash))
    )
    assert decode(fast) == expected
    assert decode_test_line(fast) == expected
    assert start_line(start_prefix(run, attempt), test) == encode(StartRecord(run, attempt, test))
    assert decode(fast).test == test  # type: ignore[union-attr]


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_reader_never_raises_on_arbitrary_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("j") / "journal.jsonl"
    path.write_bytes(data)
    stats = ReadStats()
    out = list(iter_records(path, stats))
    # never invents a result: every record it yields is a line of the input
    lines = set(data.split(b"\n"))
    for record in out:
        assert any(decode(line) == record for line in lines)
    read_history(path)


@given(st.lists(records, max_size=20), st.binary(max_size=200), st.integers(0, 10**6))
@settings(max_examples=200)
def test_garbage_between_records_is_skipped_and_counted(
    tmp_path_factory: pytest.TempPathFactory, recs: list[object], garbage: bytes, seed: int
) -> None:
    garbage = garbage.replace(b"\n", b"") or b"\x00"
    if decode(garbage + b"\n") is not None:
        return
    path = tmp_path_factory.mktemp("j") / "journal.jsonl"
    lines = [encode(HeaderRecord(VERSION))] + [encode(r) for r in recs]  # type: ignore[arg-type]
    at = 1 + seed % (len(lines))
    lines.insert(at, garbage + b"\n")
    path.write_bytes(b"".join(lines))
    stats = ReadStats()
    out = list(iter_records(path, stats))
    assert out == [decode(encode(r)) for r in recs]  # type: ignore[arg-type]
    assert stats.corrupt == 1


def test_torn_tail_at_every_offset_is_ignored_then_repaired(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    good = [
        RunRecord("r1", 1.0),
        AttemptRecord("r1", 1, 1.0),
        ResultRecord("r1", 1, "t::a", "passed", 0.5),
    ]
    torn = encode(ResultRecord("r1", 1, "t::b", "failed", 0.25, message="boom ünïcode"))
    for cut in range(len(torn) - 1):  # every strict prefix of the line (without its \n)
        with open(path, "wb") as f:
            f.write(encode(HeaderRecord(VERSION)) + b"".join(encode(r) for r in good))
            f.write(torn[:cut])
        stats = ReadStats()
        assert list(iter_records(path, stats)) == good
        assert stats.corrupt == 0
        writer = JournalWriter(path)
        writer.append(StartRecord("r1", 1, "t::c"))
        writer.close()
        stats = ReadStats()
        got = list(iter_records(path, stats))
        assert got[: len(good)] == good
        assert got[-1] == StartRecord("r1", 1, "t::c")  # not glued to the torn bytes
        assert stats.corrupt == (1 if cut else 0)


def test_nul_filled_tail_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(encode(HeaderRecord(VERSION)) + encode(RunRecord("r", 1.0)) + b"\x00" * 300)
    assert list(iter_records(path, ReadStats())) == [RunRecord("r", 1.0)]
    writer = JournalWriter(path)
    writer.append(RunRecord("s", 2.0))
    writer.close()
    stats = ReadStats()
    assert list(iter_records(path, stats)) == [RunRecord("r", 1.0), RunRecord("s", 2.0)]
    assert stats.corrupt == 1


def test_newer_version_is_refused_and_never_written(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    content = b'{"type":"header","format":"pytest-resumable","version":99}\n'
    path.write_bytes(content)
    with pytest.raises(JournalVersionError, match=r"version 99.*version 1"):
        list(iter_records(path, ReadStats()))
    writer = JournalWriter(path)
    with pytest.raises(JournalVersionError):
        writer.append(RunRecord("r", 1.0))
    writer.close()
    assert path.read_bytes() == content


def test_a_file_that_is_not_a_journal_is_not_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n")
    with pytest.raises(JournalError, match="not a pytest-resumable journal"):
        JournalWriter(path).open()
    assert path.read_text() == "my notes\n"


def test_writer_follows_a_replaced_file(tmp_path: Path) -> None:
    """Compaction replaces the file: the writer re-checks the inode under the lock."""
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path, idle=0.01, max_hold=0.02)
    writer.append(RunRecord("old", 1.0))
    time.sleep(0.2)  # let the lease lapse
    replacement = tmp_path / "journal.tmp"
    replacement.write_bytes(encode(HeaderRecord(VERSION)) + encode(RunRecord("compacted", 1.0)))
    os.replace(replacement, path)
    writer.append(RunRecord("new", 2.0))
    writer.close()
    assert [r.run for r in iter_records(path, ReadStats())] == ["compacted", "new"]  # type: ignore[union-attr]


def test_lease_is_released_when_appends_pause(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path, idle=0.02, max_hold=0.1)
    writer.append(RunRecord("r", 1.0))
    other = JournalWriter(path, lock_timeout=2)
    started = time.monotonic()
    other.append(RunRecord("s", 1.0))  # waits for the lease to lapse, not for close()
    assert time.monotonic() - started < 1.5
    other.close()
    writer.close()


def test_appends_nonstop_seldom_wake_the_lease_thread(tmp_path: Path) -> None:
    """Each wake-up of the lease thread takes the interpreter lock from the test loop. While
    appends go on it looks for a pause once per ``max_hold`` and syncs once per
    ``fsync_interval``; the append path hands the lease over itself."""
    writer = JournalWriter(tmp_path / "journal.jsonl", idle=0.05, max_hold=0.5)
    line = b'{"type":"start","run":"abcd1234","attempt":1,"test":"t"}\n'
    appends = 0
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        writer.append_bytes(line)
        appends += 1
    wakes = writer.wakes
    writer.close()
    # 3 looks for a pause and 2 syncs; waking every ``idle`` was ~30
    assert wakes <= 10, (wakes, appends)
    assert (tmp_path / "journal.jsonl").read_bytes().count(line) == appends


def test_lock_of_a_killed_process_is_acquired_promptly(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with lock_holder(path) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        started = time.monotonic()
        writer = JournalWriter(path, lock_timeout=5)
        writer.append(RunRecord("r", 1.0))
        writer.close()
        assert time.monotonic() - started < 1


def test_lock_held_too_long_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with lock_holder(path):
        writer = JournalWriter(path, lock_timeout=0.3)
        with pytest.raises(JournalLockTimeout) as info:
            writer.append(RunRecord("r", 1.0))
        message = str(info.value)
        assert "\n" not in message
        assert f"{path}.lock" in message
        assert "0.3 s" in message
        writer.close()
    assert not path.exists() or b"r" not in path.read_bytes()


def test_an_interrupt_inside_an_append_never_leaves_the_writer_locked(tmp_path: Path) -> None:
    # Ctrl-C (a KeyboardInterrupt from a signal handler) can arrive between any two bytecodes
    # of the per-record path; the writer's mutex must be free afterwards, or close() and the
    # session's last records hang. A CPU-time timer (SIGVTALRM: pytest-timeout owns SIGALRM)
    # interrupts appends ~250 times a second; `mutex.acquire(); try:` leaked within ~20.
    writer = JournalWriter(tmp_path / "journal.jsonl", fsync="never")
    line = b'{"type":"start","run":"abcd1234","attempt":1,"test":"t"}\n'
    armed = False

    def interrupt(signum: int, frame: object) -> None:
        nonlocal armed
        if armed:
            armed = False
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGVTALRM, interrupt)
    signal.setitimer(signal.ITIMER_VIRTUAL, 0.0001, 0.00007)
    interrupts = 0
    deadline = time.monotonic() + 5
    try:
        while interrupts < 1000 and time.monotonic() < deadline:
            try:
                armed = True
                for _ in range(1000):
                    writer.append_bytes(line)
                armed = False
            except KeyboardInterrupt:
                interrupts += 1
                assert writer._mutex.acquire(timeout=1), f"held after {interrupts} interrupts"
                writer._mutex.release()
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)
    assert interrupts > 100, interrupts  # the timer really interrupted appends
    writer.close()


def test_journal_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="is a directory"):
        JournalWriter(tmp_path).open()


def test_cap_text() -> None:
    assert cap_text("abc", 10) == "abc"
    capped = cap_text("x" * 100_000)
    assert capped is not None
    assert len(capped) == 64 * 1024
    assert "characters cut" in capped


def test_huge_failure_text_is_capped_in_the_record() -> None:
    line = encode(ResultRecord("r", 1, "t", "failed", 1.0, longrepr="y" * 1_000_000))
    assert len(line) < 70 * 1024


def test_history_in_flight_and_the_newest_unfinished_run(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path)
    for rec in [
        RunRecord("r", 1.0),
        AttemptRecord("r", 1, 1.0),
        StartRecord("r", 1, "a"),
        ResultRecord("r", 1, "a", "passed", 0.1),
        StartRecord("r", 1, "b"),  # attempt 1 died here
        AttemptRecord("r", 2, 2.0),
        StartRecord("r", 2, "b"),  # and attempt 2 here
        RunRecord("other", 3.0),
        AttemptRecord("other", 1, 3.0),
        StartRecord("other", 1, "b"),
    ]:
        writer.append(rec)
    writer.close()
    history = read_history(path)
    assert list(history.runs) == ["r", "other"]
    newest = history.find_resumable(None, None)
    assert newest is not None
    assert newest.id == "other"
    state = history.runs["r"]
    assert set(state.results) == {"a"}
    assert state.in_flight(1) == {"b"}
    assert state.in_flight(2) == {"b"}
    assert state.last_attempt is not None
    assert state.last_attempt.died
    # a session reads only the newest run of its identity in detail
    only = read_history(path, newest_detail_only=True)
    assert not only.runs["r"].detailed
    assert only.runs["r"].results == {}
    assert only.runs["other"].in_flight(1) == {"b"}


@given(results | st.builds(StartRecord, run=text, attempt=st.integers(0, 10**6), test=text))
@settings(max_examples=300)
def test_the_fast_decoder_of_test_lines_agrees_with_decode(record: object) -> None:
    from pytest_resumable.journal.codec import decode_test_line

    line = encode(record)  # type: ignore[arg-type]
    assert decode_test_line(line) == decode(line)
    fast = passed_line("r1", 3, 't::x[ü"\\\\]', 0.25, 7, "0123abcd")
    assert decode_test_line(fast) == decode(fast)


_line_of_a_run = st.one_of(
    (results | st.builds(StartRecord, run=text, attempt=st.integers(0, 10**6), test=text)).map(
        encode  # type: ignore[arg-type]
    ),
    st.builds(
        passed_line,
        st.just("r1"),
        st.integers(0, 10**6),
        text,
        st.floats(0, 1e8),
        st.none() | st.integers(0, 10**6),
        st.none() | st.just("0123abcd"),
    ),
    st.binary(max_size=80).map(lambda raw: raw.replace(b"\n", b"") + b"\n"),
)


@given(st.lists(_line_of_a_run, max_size=12), st.booleans())
@settings(max_examples=300)
def test_reading_a_runs_lines_together_agrees_with_decoding_each(
    lines: list[bytes], torn: bool
) -> None:
    """``test_events`` (one search over the joined lines) gives what decoding line by line
    gives: the same starts and results in the same order, the same count of corrupt lines;
    a last line without its newline included."""
    from pytest_resumable.journal.codec import decode_test_line, test_events

    if torn and lines:
        lines[-1] = lines[-1][:-1]
    expected: list[tuple[int, str, object]] = []
    corrupt = 0
    for line in lines:
        record = decode_test_line(line)
        if isinstance(record, StartRecord):
            expected.append((record.attempt, record.test, None))
        elif isinstance(record, ResultRecord):
            expected.append((record.attempt, record.test, record))
        elif record is None:
            corrupt += 1
    assert test_events(lines) == (expected, corrupt)


def test_a_plain_pass_made_fast_equals_one_made_by_the_constructor() -> None:
    made = ResultRecord("r", 2, "t.py::a", "passed", 0.5, line=3, file_hash="ab")
    fast = ResultRecord.passed("r", 2, "t.py::a", 0.5, 3, "ab")
    assert fast == made
    assert repr(fast) == repr(made)
    assert hash(fast.test) == hash(made.test)
    with pytest.raises(AttributeError):
        fast.outcome = "failed"  # type: ignore[misc]


def test_a_test_line_with_anything_in_front_is_corrupt_wherever_it_is(tmp_path: Path) -> None:
    """A result line with bytes before its ``{`` is not a record, whether its block of lines
    is otherwise clean (read at C speed) or not (read line by line)."""
    clean = [encode(HeaderRecord(VERSION))]
    clean += [encode(RunRecord(f"old{n}", 1.0)) for n in range(9)]  # > 8 runs read in detail
    clean += [encode(RunRecord("r", 1.0)), encode(AttemptRecord("r", 1, 1.0))]
    clean += [
        start_line(start_prefix("r", 1), "t.py::a"),
        passed_line("r", 1, "t.py::a", 0.1, 1, None),
    ]
    glued = passed_line("r", 1, "t.py::b", 0.1, 1, None)
    other_run = b'{"type":"start","run":"0badbeef","attempt":1,"test":"zz'
    path = tmp_path / "journal.jsonl"
    for front in (b"garbage", b"garbage\r", other_run):
        for extra in ([], [b"not json\n"]):
            path.write_bytes(b"".join([*clean, front + glued, *extra]))
            for detail_all in (False, True):  # a session's read; the command line's
                history = read_history(path, newest_detail_only=not detail_all)
                assert set(history.runs["r"].results) == {"t.py::a"}, (front, extra)
                # a line of a run not read in detail is not looked at
                assert history.corrupt == (front != other_run) + len(extra)


def test_hostile_test_lines_cost_linear_time(tmp_path: Path) -> None:
    """The patterns that read test lines at C speed must not backtrack exponentially on a line
    that almost matches (a nested quantifier did: one line hung the reader)."""
    from pytest_resumable.journal.codec import (
        decode_test_line,
        durations_by_test,
        result_durations,
        test_events,
    )

    bad = [
        b'{"type":"result","run":"r","attempt":1,"test":"' + b"ab" * 20000 + b"\n",
        b'{"type":"start","run":"r","attempt":1,"test":"' + b"a\\\\" * 20000 + b'"x}\n',
        b'{"type":"result","run":"r","attempt":1,"test":"'
        + b"a" * 30
        + b'","outcome":"passed","duration":1e9999}\n',
    ]
    start = time.monotonic()
    for line in bad:
        decode_test_line(line)
        result_durations(line, 0, len(line))
        durations_by_test(line, 0, len(line))
    test_events(bad * 2)
    path = tmp_path / "journal.jsonl"
    path.write_bytes(encode(HeaderRecord(VERSION)) + encode(RunRecord("r", 1.0)) + b"".join(bad))
    read_history(path)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("exclude", [False, True])
def test_durations_are_the_latest_of_the_runs_wanted(tmp_path: Path, exclude: bool) -> None:
    """With no run left out, durations are gathered by dict.update over (test, value) pairs;
    with one left out, run by run: both give the latest duration of each test, wherever the
    line is (the fast layout, another key order, a compaction summary)."""
    lines = [encode(HeaderRecord(VERSION))]
    for run, seconds in (("r1", 1.0), ("r2", 2.0), ("r3", 3.0)):
        lines.append(encode(RunRecord(run, 1.0, resume_id="ci" if run == "r3" else None)))
        lines.append(passed_line(run, 1, "t.py::a", seconds, 1, None))
        lines.append(passed_line(run, 1, 't.py::b[\u00fc"]', seconds + 0.5, 1, None))
    other_order = {
        "run": "r2",
        "type": "result",
        "attempt": 1,
        "test": "t.py::c",
        "outcome": "failed",
        "duration": 7.0,
    }
    lines.insert(5, (json.dumps(other_order) + "\n").encode())
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"".join(lines))

    def wanted(record: RunRecord) -> bool:
        return not exclude or record.resume_id != "ci"

    got = read_history(path, detail=lambda r: False, durations=wanted).durations
    latest = 2.0 if exclude else 3.0
    assert got == {"t.py::a": latest, 't.py::b[\u00fc"]': latest + 0.5, "t.py::c": 7.0}


_runs = st.sampled_from([*(f"r{i}" for i in range(12)), "a\\b", 'q"', "c\r"])
_fold_lines = st.one_of(
    st.builds(RunRecord, run=_runs, time=st.floats(0, 10), resume_id=st.none() | st.just("ci")),
    st.builds(AttemptRecord, run=_runs, attempt=st.integers(1, 3), time=st.floats(0, 10)),
    st.builds(StartRecord, run=_runs, attempt=st.integers(1, 3), test=text),
    st.builds(
        ResultRecord,
        run=_runs,
        attempt=st.integers(1, 3),
        test=text,
        outcome=st.sampled_from(["passed", "failed", "crashed"]),
        duration=st.floats(0, 1e3),
        message=st.none() | text,
    ),
    st.builds(
        EndRecord,
        run=_runs,
        attempt=st.integers(1, 3),
        time=st.floats(0, 10),
        status=st.integers(0, 5),
        selected=st.integers(0, 9),
        results=st.integers(0, 9),
        complete=st.booleans(),
    ),
).map(encode)
_fold_journals = st.tuples(
    st.lists(
        _fold_lines
        | st.binary(max_size=90).map(lambda b: b.replace(b"\n", b"") + b"\n")
        | _fold_lines.map(lambda line: b"x" + line)  # a test line glued after garbage
        # garbage that begins as a test line (found by a fresh-eyes test)
        | st.tuples(
            st.sampled_from([b'{"type":"start","run":"', b'{"type":"result","run":"']),
            st.sampled_from([b"", b'r1"', b'r2","attempt":1,']),
            st.binary(max_size=40),
        ).map(lambda t: (t[0] + t[1] + t[2]).replace(b"\n", b"") + b"\n"),
        max_size=40,
    ),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),  # a torn tail
).map(lambda t: encode(HeaderRecord(VERSION, 1.0)) + b"".join(t[0]) + t[1])


@settings(max_examples=150, deadline=None)
@given(_fold_journals, st.sampled_from([1, 7, 64, 159]), st.booleans())
def test_the_fold_does_not_depend_on_where_the_blocks_end(
    data: bytes, size: int, newest_only: bool
) -> None:
    """The journal is read in blocks of whole lines; a line cut by a block's end is read again
    with the next one, and a line longer than :data:`codec.MAX_LINE` (160 bytes here; a block
    is never longer, as 8 MB is not beside 32 MB) is skipped wherever it falls: every block
    size folds the same history, when runs are read in detail (searches deferred and held
    across blocks) or not. A block with garbage in it is read line by line, and still reads
    and counts what a clean block would (garbage that begins as a test line, run ids with
    escapes: found by a fresh-eyes test)."""
    from pytest_resumable import history as history_module
    from pytest_resumable.journal import codec

    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.jsonl"
        path.write_bytes(data)
        mp.setattr(codec, "MAX_LINE", 160)

        def read(block: int) -> object:
            mp.setattr(history_module, "BLOCK", block)
            return read_history(
                path,
                newest_detail_only=newest_only,
                durations=lambda record: record.resume_id is None,
            )

        assert read(size) == read(160)


def test_a_superseded_runs_lines_are_never_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session reads the newest run of its identity in detail: an older one's test lines
    are dropped unsearched when the newer run begins (the old run spans three blocks here,
    within the bound held), and the newest run's lines, spread over many more blocks than
    are held, are all found, in order."""
    from pytest_resumable import history as history_module
    from pytest_resumable.journal import codec

    lines = [encode(HeaderRecord(VERSION, 1.0))]
    for run, tests in (("old", 30), ("new", 200)):
        lines += [encode(RunRecord(run, 1.0)), encode(AttemptRecord(run, 1, 1.0))]
        prefix = start_prefix(run, 1)
        for i in range(tests):
            lines += [
                start_line(prefix, f"t.py::{i}"),
                passed_line(run, 1, f"t.py::{i}", 0.1, 1, None),
            ]
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"".join(lines))
    searched: list[str] = []
    real = codec.run_lines

    def run_lines(run: str, data: bytes, start: int, end: int) -> list[bytes]:
        searched.append(run)
        return real(run, data, start, end)

    monkeypatch.setattr(codec, "run_lines", run_lines)
    monkeypatch.setattr(history_module, "BLOCK", 4096)
    history = read_history(path, newest_detail_only=True)
    assert set(searched) == {"new"}
    assert list(history.runs["new"].results) == [f"t.py::{i}" for i in range(200)]
    assert history.runs["new"].in_flight(1) == set()
    assert not history.runs["old"].detailed
    assert history.runs["old"].results == {}


def test_the_lines_waiting_for_a_search_hold_one_span_a_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meta lines between every test line (found by a fresh-eyes test: a record type this
    version ignores) cut a block into a stretch per line; what waits for the search is still
    one span per block, at most ``HELD_BLOCKS`` of them (it was one tuple per stretch, ~400 MB
    held for eight runs), and the lines found are the same."""
    from pytest_resumable import history as history_module

    lines = [encode(HeaderRecord(VERSION, 1.0))]
    for run in ("a", "b"):
        lines += [encode(RunRecord(run, 1.0)), encode(AttemptRecord(run, 1, 1.0))]
    for i in range(300):
        for run in ("a", "b"):
            lines += [start_line(start_prefix(run, 1), f"t.py::{i}"), b'{"type":"x"}\n']
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"".join(lines))
    held: list[int] = []
    real = history_module._RunLines.search

    def search(self: history_module._RunLines) -> None:
        held.append(len(self.segments))
        real(self)

    monkeypatch.setattr(history_module._RunLines, "search", search)
    monkeypatch.setattr(history_module, "BLOCK", 2048)
    history = read_history(path)
    assert held
    assert max(held) <= history_module._RunLines.HELD_BLOCKS
    for run in ("a", "b"):
        assert history.runs[run].in_flight(1) == {f"t.py::{i}" for i in range(300)}
