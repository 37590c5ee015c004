"""--shard K/N across real sessions: every test exactly once, frozen assignments, and the
merge / verify commands that check CI shards (issue #9)."""

from __future__ import annotations

import json
import shutil
import signal
from collections import Counter

import pytest

from conftest import Suite, cli, interrupt
from pytest_resumable.history import read_durations
from pytest_resumable.sharding import partition


def split_of(tests: list[str], durations: dict[str, float]) -> list[list[str]]:
    owner = partition(tests, durations, 3)
    return [[t for t, o in zip(tests, owner, strict=True) if o == k] for k in range(3)]


# 30 tests with recorded durations that depend on $SKEW: the same suite can be made to
# "change its durations" between runs.
SKEWED = """
import os, time, pytest

@pytest.mark.parametrize("i", range(30))
def test_w(i):
    slow = i % 10 == 0 if os.environ.get("SKEW") != "reverse" else i % 10 == 9
    time.sleep(0.03 if slow else 0.001)
"""
ALL = [f"test_w.py::test_w[{i}]" for i in range(30)]


@pytest.fixture
def skewed(suite: Suite, pytester: pytest.Pytester) -> Suite:
    pytester.makepyfile(test_w=SKEWED)
    learn = pytester.runpytest_subprocess("-p", "no:xdist")  # a first run: durations known
    assert learn.ret == 0
    suite.take_ran()
    return suite


def shard_record(suite: Suite, shard: str) -> dict[str, object]:
    [record] = [r for r in suite.records("shard") if r["shard"] == shard]
    return record


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "n2"])
def test_shards_in_turn_run_every_test_exactly_once(
    skewed: Suite, pytester: pytest.Pytester, xdist: bool
) -> None:
    mode = ["-n", "2"] if xdist else ["-p", "no:xdist"]
    learned = split_of(ALL, read_durations(skewed.journal))
    sizes = []
    for k in (1, 2, 3):
        result = pytester.runpytest_subprocess(*mode, "--shard", f"{k}/3", "--resume-id", "ci-7")
        assert result.ret == 0
        ran = skewed.take_ran()
        sizes.append(len(ran))
        result.stdout.fnmatch_lines(
            [f"resumable: shard {k}/3: {len(ran)} tests ({30 - len(ran)} belong to other shards*"]
        )
        result.stdout.fnmatch_lines([f"*{len(ran)} passed, {30 - len(ran)} deselected*"])
        assert sorted(ran) == sorted(shard_record(skewed, f"{k}/3")["tests"])  # type: ignore[arg-type]
    runs = [r for r in skewed.records("run") if r["resume_id"] == "ci-7"]
    assert [r["shard"] for r in runs] == ["1/3", "2/3", "3/3"]
    tests = [t for k in (1, 2, 3) for t in shard_record(skewed, f"{k}/3")["tests"]]  # type: ignore[attr-defined]
    assert Counter(tests) == Counter(ALL)
    # the split is the greedy partition of the durations recorded before (computed here from
    # the same journal: exact, whatever this machine's timing was)
    assert [sorted(shard_record(skewed, f"{k}/3")["tests"]) for k in (1, 2, 3)] == [  # type: ignore[arg-type]
        sorted(part) for part in learned
    ]
    verify = cli("verify", "ci-7", cwd=skewed.path)
    assert verify.returncode == 0, verify.stdout
    assert "3 shard run(s) of 3: 30 selected tests, 30 with a result, 0 missing, 0 doubled" in (
        verify.stdout
    )


def test_a_retried_shard_runs_exactly_the_rest_of_its_own_tests(
    skewed: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = split_of(ALL, read_durations(skewed.journal))
    mine = before[1]  # shard 2/3
    first = interrupt(
        skewed,
        ["-p", "no:xdist", "--shard", "2/3", "--resume-id", "ci-8"],
        block_at=mine[4],
        sig=signal.SIGKILL,
    )
    assert first.returncode == -signal.SIGKILL
    record = shard_record(skewed, "2/3")
    assert record["tests"] == mine
    done_before = {r["test"] for r in skewed.records("result") if r["run"] == record["run"]}
    assert done_before == set(mine[:4])
    skewed.take_ran()

    # another run records very different durations meanwhile: a fresh split would differ
    monkeypatch.setenv("SKEW", "reverse")
    assert pytester.runpytest_subprocess("-p", "no:xdist", "--resume-new").ret == 0
    skewed.take_ran()
    assert split_of(ALL, read_durations(skewed.journal)) != before

    retried = pytester.runpytest_subprocess(
        "-p", "no:xdist", "--shard", "2/3", "--resume-id", "ci-8"
    )
    assert retried.ret == 0
    assert sorted(skewed.take_ran()) == sorted(set(mine) - done_before)
    retried.stdout.fnmatch_lines(
        [
            f"resumable: shard 2/3: {len(mine)} tests ({len(ALL) - len(mine)} belong to other"
            " shards; the rest of*"
        ]
    )

    # shards 1 and 3 of the same CI run start only now, after the durations changed: they
    # adopt the split shard 2 froze, so the three together still run every test once
    for k in (1, 3):
        late = pytester.runpytest_subprocess(
            "-p", "no:xdist", "--shard", f"{k}/3", "--resume-id", "ci-8"
        )
        assert late.ret == 0
        late.stdout.fnmatch_lines([f"resumable: shard {k}/3: *split as frozen by shard 2/3*"])
        assert sorted(skewed.take_ran()) == sorted(before[k - 1])
    verify = cli("verify", "ci-8", cwd=skewed.path)
    assert verify.returncode == 0, verify.stdout


def _complete_three_shards(skewed: Suite, pytester: pytest.Pytester, run_id: str) -> None:
    for k in (1, 2, 3):
        assert (
            pytester.runpytest_subprocess(
                "-p", "no:xdist", "--shard", f"{k}/3", "--resume-id", run_id
            ).ret
            == 0
        )


def test_verify_detects_a_missing_and_a_doubled_test(
    skewed: Suite, pytester: pytest.Pytester
) -> None:
    _complete_three_shards(skewed, pytester, "ci-10")
    assert cli("verify", "ci-10", cwd=skewed.path).returncode == 0
    lines = skewed.journal.read_bytes().splitlines(keepends=True)
    s1 = shard_record(skewed, "1/3")
    s2 = shard_record(skewed, "2/3")
    victim = s1["tests"][0]  # type: ignore[index]
    # tamper 1: drop shard 1's result for one test
    kept = [
        line
        for line in lines
        if not (
            b'"type":"result"' in line
            and json.loads(line)["run"] == s1["run"]
            and json.loads(line)["test"] == victim
        )
    ]
    skewed.journal.write_bytes(b"".join(kept))
    missing = cli("verify", "ci-10", cwd=skewed.path)
    assert missing.returncode == 1
    assert f"missing: {victim}" in missing.stdout.splitlines()
    assert missing.stdout.splitlines()[-1] == "FAILED"
    # tamper 2: put it back, and record a test of shard 1 in shard 2 as well
    other = s1["tests"][1]  # type: ignore[index]
    doubled_line = json.dumps(
        {
            "type": "result",
            "run": s2["run"],
            "attempt": 1,
            "test": other,
            "outcome": "passed",
            "duration": 0.001,
        }
    ).encode()
    skewed.journal.write_bytes(b"".join(lines) + doubled_line + b"\n")
    doubled = cli("verify", "ci-10", cwd=skewed.path)
    assert doubled.returncode == 1
    assert f"doubled: {other} (shards 1/3, 2/3)" in doubled.stdout.splitlines()
    js = json.loads(cli("verify", "ci-10", "--json", cwd=skewed.path).stdout)
    assert js["ok"] is False
    assert js["missing"] == []
    assert len(js["doubled"]) == 1


def test_one_journal_per_shard_then_merge_and_verify(
    skewed: Suite, pytester: pytest.Pytester
) -> None:
    # each CI job restores the same journal from a cache, then appends its own shard
    for k in (1, 2, 3):
        shutil.copy(skewed.journal, skewed.path / f"j{k}.jsonl")
    for k in (1, 2, 3):
        result = pytester.runpytest_subprocess(
            "-p",
            "no:xdist",
            "--shard",
            f"{k}/3",
            "--resume-id",
            "ci-11",
            "--resume-journal",
            f"j{k}.jsonl",
        )
        assert result.ret == 0
    assert Counter(skewed.take_ran()) == Counter(ALL)
    merged = cli("merge", "j1.jsonl", "j2.jsonl", "j3.jsonl", "-o", "all.jsonl", cwd=skewed.path)
    assert merged.returncode == 0, merged.stderr
    shared = sum(1 for _ in skewed.journal.read_bytes().splitlines()) - 1  # minus the header
    assert f"({2 * shared:,} duplicates dropped)" in merged.stdout
    verify = cli("verify", "ci-11", "--journal", "all.jsonl", cwd=skewed.path)
    assert verify.returncode == 0, verify.stdout
    # a shard missing from the merge: its tests are named missing
    partial = cli("merge", "j1.jsonl", "j2.jsonl", "-o", "part.jsonl", cwd=skewed.path)
    assert partial.returncode == 0
    verify = cli("verify", "ci-11", "--journal", "part.jsonl", cwd=skewed.path)
    assert verify.returncode == 1
    s3 = next(
        json.loads(x)
        for x in (skewed.path / "j3.jsonl").read_bytes().splitlines()
        if b'"type":"shard"' in x
    )
    assert {f"missing: {t}" for t in s3["tests"]} <= set(verify.stdout.splitlines())


def test_durations_export_for_pytest_split(skewed: Suite) -> None:
    out = cli("durations", "--format", "pytest-split", "-o", ".test_durations", cwd=skewed.path)
    assert out.returncode == 0, out.stderr
    data = json.loads((skewed.path / ".test_durations").read_text())
    assert set(data) == set(ALL)
    assert all(isinstance(v, float) for v in data.values())
    assert data["test_w.py::test_w[10]"] > data["test_w.py::test_w[11]"]


def test_shards_started_late_under_xdist_adopt_the_frozen_split(
    skewed: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adopted split reaches xdist workers resolved (issue #13: they re-partitioned with
    today's durations, so 3 shards of 30 tests ran 23 distinct tests and verify found doubles)."""
    before = split_of(ALL, read_durations(skewed.journal))
    first = pytester.runpytest_subprocess("-p", "no:xdist", "--shard", "2/3", "--resume-id", "ci-9")
    assert first.ret == 0
    assert sorted(skewed.take_ran()) == sorted(before[1])
    monkeypatch.setenv("SKEW", "reverse")  # durations change before the other shards start
    assert pytester.runpytest_subprocess("-p", "no:xdist", "--resume-new").ret == 0
    skewed.take_ran()
    assert split_of(ALL, read_durations(skewed.journal)) != before
    for k in (1, 3):
        late = pytester.runpytest_subprocess("-n", "2", "--shard", f"{k}/3", "--resume-id", "ci-9")
        assert late.ret == 0
        late.stdout.fnmatch_lines([f"resumable: shard {k}/3: *split as frozen by shard 2/3*"])
        assert sorted(skewed.take_ran()) == sorted(before[k - 1])
    verify = cli("verify", "ci-9", cwd=skewed.path)
    assert verify.returncode == 0, verify.stdout
    assert "30 selected tests, 30 with a result, 0 missing, 0 doubled" in verify.stdout
