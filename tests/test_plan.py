"""plan.py and the pure decisions around it, without pytest sessions: which run an attempt
continues, what it carries, which tests were in flight and which are suspects, the shard rule,
the worker snapshot (issue #13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_resumable.history import read_history
from pytest_resumable.journal.records import (
    AttemptRecord,
    EndRecord,
    ResultRecord,
    RunRecord,
    SelectionRecord,
    ShardRecord,
    StartRecord,
)
from pytest_resumable.journal.writer import JournalWriter
from pytest_resumable.options import OptionError, parse_resume_id, parse_shard, resolve_journal
from pytest_resumable.plan import PlanInputs, history_filters, plan_attempt
from pytest_resumable.sharding import ShardRule
from pytest_resumable.worker import WorkerSnapshot, arrange

HERE = "/project"


def inputs(**kw: object) -> PlanInputs:
    values: dict[str, object] = {
        "resume": True,
        "resume_id": None,
        "shard": None,
        "retry_failed": False,
        "dist_each": False,
        "xdist": False,
        "rootdir": HERE,
        "inifile": f"{HERE}/pytest.ini",
    }
    values.update(kw)
    return PlanInputs(**values)  # type: ignore[arg-type]


def journal(path: Path, *records: object) -> Path:
    writer = JournalWriter(path, fsync="never")
    for record in records:
        writer.append(record)  # type: ignore[arg-type]
    writer.close()
    return path


def plan(path: Path, **kw: object):  # type: ignore[no-untyped-def]
    given = inputs(**kw)
    history = read_history(path, **history_filters(given, want_durations=True))  # type: ignore[arg-type]
    return plan_attempt(history, given, lambda test: "h", lambda: "newrun01")


RUN = RunRecord("r1", 1.0, None, None, HERE, f"{HERE}/pytest.ini")


def dead_attempt(*, xdist: bool = False) -> list[object]:
    return [
        RUN,
        AttemptRecord("r1", 1, 1.0, 10, "host", xdist),
        SelectionRecord("r1", 1, 4),
        StartRecord("r1", 1, "t::a"),
        ResultRecord("r1", 1, "t::a", "passed", 0.1, file_hash="h"),
        StartRecord("r1", 1, "t::b"),
        ResultRecord("r1", 1, "t::b", "failed", 0.2, file_hash="h"),
        StartRecord("r1", 1, "t::c"),  # in flight when the attempt died
    ]


def test_a_dead_single_process_attempt_makes_its_in_flight_tests_suspects(tmp_path: Path) -> None:
    got = plan(journal(tmp_path / "j.jsonl", *dead_attempt()))
    assert (got.run_id, got.attempt, got.new_run) == ("r1", 2, False)
    assert set(got.carried) == {"t::a", "t::b"}
    assert got.in_flight == ("t::c",)
    assert got.suspects == ("t::c",)  # run in a child first: no blame without proof
    assert got.run_size == 4


@pytest.mark.parametrize(("then", "now"), [(True, False), (False, True), (True, True)])
def test_xdist_on_either_side_blames_nobody(tmp_path: Path, then: bool, now: bool) -> None:
    got = plan(journal(tmp_path / "j.jsonl", *dead_attempt(xdist=then)), xdist=now)
    assert got.in_flight == ("t::c",)
    assert got.suspects == ()


def test_an_ended_attempt_has_no_suspects(tmp_path: Path) -> None:
    ended = [*dead_attempt(), EndRecord("r1", 1, 2.0, 2, 4, 2, False)]
    got = plan(journal(tmp_path / "j.jsonl", *ended))
    assert got.in_flight == ("t::c",)
    assert got.suspects == ()


def test_retry_failed_and_changed_files_are_not_carried(tmp_path: Path) -> None:
    path = journal(tmp_path / "j.jsonl", *dead_attempt())
    assert set(plan(path, retry_failed=True).carried) == {"t::a"}
    given = inputs()
    history = read_history(path, **history_filters(given, want_durations=False))  # type: ignore[arg-type]
    changed = plan_attempt(history, given, lambda test: "other", lambda: "x")
    assert changed.carried == {}
    assert changed.not_carried_changed == 2


def test_dist_each_carries_nothing(tmp_path: Path) -> None:
    got = plan(journal(tmp_path / "j.jsonl", *dead_attempt()), dist_each=True, xdist=True)
    assert got.carried == {}
    assert got.each_not_carried == 2


def test_a_complete_run_or_no_resume_starts_a_new_run(tmp_path: Path) -> None:
    done = [*dead_attempt(), EndRecord("r1", 1, 2.0, 1, 3, 3, True)]
    path = journal(tmp_path / "j.jsonl", *done)
    assert plan(path).new_run
    assert plan(journal(tmp_path / "k.jsonl", *dead_attempt()), resume=False).new_run


def test_a_run_started_in_another_rootdir_is_not_continued(tmp_path: Path) -> None:
    path = journal(tmp_path / "j.jsonl", *dead_attempt())
    got = plan(path, rootdir="/elsewhere", inifile=None)
    assert got.new_run
    assert got.carried == {}
    assert got.mismatch is not None
    assert "rootdir /project" in got.mismatch
    assert "this session has rootdir /elsewhere" in got.mismatch


def test_the_identity_includes_resume_id_and_shard(tmp_path: Path) -> None:
    path = journal(tmp_path / "j.jsonl", *dead_attempt())
    assert plan(path, resume_id="ci-1").new_run
    assert plan(path, shard=(1, 2)).new_run


def shard_run(
    run: str, spec: str, selection: tuple[str, ...], assignment: tuple[int, ...]
) -> list[object]:
    k = int(spec.split("/")[0])
    own = tuple(t for t, a in zip(selection, assignment, strict=True) if a == k - 1)
    return [
        RunRecord(run, 1.0, "ci-9", spec, HERE, f"{HERE}/pytest.ini"),
        AttemptRecord(run, 1, 1.0, 1, "h"),
        ShardRecord(run, 1, spec, own, selection, assignment),
    ]


def test_a_shard_adopts_the_split_another_shard_of_its_ci_run_froze(tmp_path: Path) -> None:
    selection = ("t::1", "t::2", "t::3", "t::4")
    path = journal(tmp_path / "j.jsonl", *shard_run("s2", "2/2", selection, (0, 1, 1, 0)))
    got = plan(path, resume_id="ci-9", shard=(1, 2))
    assert got.new_run
    assert got.shard == ShardRule(1, 2, "adopted", selection, (0, 1, 1, 0), "2/2")
    # a retry of shard 2 applies its own frozen split
    own = plan(path, resume_id="ci-9", shard=(2, 2))
    assert own.shard is not None
    assert own.shard.source == "frozen"
    # another CI run does not adopt it
    other = plan(path, resume_id="ci-10", shard=(1, 2))
    assert other.shard == ShardRule(1, 2)


def test_the_worker_snapshot_round_trips_and_puts_what_is_not_run_last() -> None:
    rule = ShardRule(1, 2, "adopted", ("a", "b", "c", "d"), (0, 1, 0, 1), "2/2")
    snapshot = WorkerSnapshot("r1", 2, frozenset({"c"}), "duration", "load", {"a": 1.0}, rule)
    assert WorkerSnapshot.from_dict(snapshot.to_dict()) == snapshot
    order, run_now = arrange(snapshot, ["a", "b", "c", "d", "e"], workers=2, maxschedchunk=None)
    ids = ["a", "b", "c", "d", "e"]
    head = {ids[i] for i in order[:run_now]}
    # "e" was not in the frozen split: a stable hash gives it to one shard
    from pytest_resumable.sharding import stable_shard

    expected = {"a"} | ({"e"} if stable_shard("e", 2) == 0 else set())
    assert head == expected
    assert sorted(order) == list(range(5))


@pytest.mark.parametrize(
    "message",
    [None, "x", {}, {"rest": 3}, {"rest": "[1]"}, {"rest": "{"}, {"rest": '{"a": 1}'}, {"r": None}],
)
def test_a_garbled_list_of_tests_not_run_now_is_refused(message: object) -> None:
    from pytest_resumable.worker import COLLECTION_FAILED, not_run_now_message, read_not_run_now

    assert read_not_run_now(message) is None
    ids = ['t.py::a[\u00fc"]', "t.py::b"]
    assert read_not_run_now(not_run_now_message(ids)) == ids
    assert read_not_run_now(not_run_now_message([])) == []
    assert read_not_run_now(not_run_now_message(None)) is COLLECTION_FAILED


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        (None, {}, None),
        ("2/4", {}, (2, 4)),
        (None, {"PYTEST_SHARD": "1/3"}, (1, 3)),
        ("auto", {"GITLAB_CI": "true", "CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}, (2, 3)),
    ],
)
def test_parse_shard(value: str | None, env: dict[str, str], expected: object) -> None:
    assert parse_shard(value, env) == expected


@pytest.mark.parametrize("value", ["0/3", "4/3", "x", "1/0", "2", "auto"])
def test_malformed_shard_names_the_option(value: str) -> None:
    with pytest.raises(OptionError, match=r"^--shard: .*; expected "):
        parse_shard(value, {})


def test_resume_id_auto_and_errors() -> None:
    assert parse_resume_id("auto", {"GITHUB_RUN_ID": "77"}) == "github-77"
    with pytest.raises(OptionError, match=r"--resume-id: .*GITHUB_RUN_ID"):
        parse_resume_id("auto", {})
    with pytest.raises(OptionError, match="control characters"):
        parse_resume_id("a\x1b]0;x\x07", {})


def test_one_journal_path_resolver_for_plugin_and_cli(tmp_path: Path) -> None:
    common = {"invocation_dir": tmp_path, "ini_dir": tmp_path / "ini", "rootpath": tmp_path}
    env: dict[str, str] = {}
    assert resolve_journal(
        explicit="j.jsonl", env=env, ini_journal="", cache_dir=".c", **common
    ) == (
        tmp_path / "j.jsonl",
        False,
    )
    assert resolve_journal(explicit=None, env=env, ini_journal="x/j", cache_dir=".c", **common) == (
        tmp_path / "ini" / "x" / "j",
        False,
    )
    assert resolve_journal(explicit=None, env=env, ini_journal="", cache_dir=".c", **common) == (
        tmp_path / ".c" / "d" / "resumable" / "journal.jsonl",
        True,
    )
    assert resolve_journal(explicit=None, env=env, ini_journal="", cache_dir=None, **common) == (
        None,
        True,
    )


def test_the_cli_reads_the_ini_file_pytest_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_resumable.options import cli_journal_path

    monkeypatch.delenv("PYTEST_RESUME_JOURNAL", raising=False)
    (tmp_path / "tox.ini").write_text("[pytest]\ncache_dir = .cache-here\n")
    (tmp_path / "sub").mkdir()
    assert cli_journal_path(None, tmp_path / "sub") == (
        tmp_path / ".cache-here" / "d" / "resumable" / "journal.jsonl"
    )
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nresume_journal = "j/x.jsonl"\n'
    )
    # pytest.ini-style files come first, pyproject.toml before tox.ini
    assert cli_journal_path(None, tmp_path / "sub") == tmp_path / "j" / "x.jsonl"


def test_bulk_replay_reports_equal_what_pytests_constructor_makes() -> None:
    """The copies made for the bulk replay of carried plain passes are the reports pytest's
    own constructor makes from the same fields (on every supported pytest)."""
    from pytest_resumable.journal.records import ResultRecord
    from pytest_resumable.results import CARRIED_ATTR, plain_reports

    results = [
        ResultRecord("r", 2, "t/test_a.py::TestC::test_m[1-ü]", "passed", 0.25, line=7),
        ResultRecord("r", 3, "test_b.py::test_f", "passed", 0.0, line=None),
        ResultRecord("r", 1, "doc.txt", "passed", 1.5, line=0),
    ]
    made = plain_reports(results)
    for result, report in zip(results, made, strict=True):
        path, _, rest = result.test.partition("::")
        expected = pytest.TestReport(
            nodeid=result.test,
            location=(path, result.line, rest.replace("::", ".") or path),
            keywords={},
            outcome="passed",
            longrepr=None,
            when="call",
            duration=result.duration,
        )
        setattr(expected, CARRIED_ATTR, result.attempt)
        assert isinstance(report, pytest.TestReport)
        assert report.nodeid == expected.nodeid == result.test
        # pytest 9.2+: the structured id, made only when asked for, equals pytest's own
        assert getattr(report, "id", None) == getattr(expected, "id", None)

        def fields(r: pytest.TestReport) -> dict[str, object]:
            return {k: v for k, v in r.__dict__.items() if k not in ("nodeid", "_id")}

        assert fields(report) == fields(expected)
    made[0].sections.append(("x", "y"))  # nothing shared between the copies
    assert made[1].sections == []
    assert made[1].user_properties == []
