"""The GitHub Actions recipe of docs/ci.md, driven step by step on this machine: N shard jobs
in separate copies of a project, one SIGKILLed and retried, journals passed on as "artifacts"
by copying, then a final job that merges, verifies and writes the whole run's JUnit file, which
equals an uninterrupted single run's (issue #18)."""

from __future__ import annotations

import difflib
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Suite, cli, interrupt
from test_differential import EVERY_KIND, junit

SHARDS = 3


def job(project: Path, shard: int) -> Path:
    """A fresh checkout of the project for one job of the matrix."""
    checkout = project.parent / f"job-{shard}"
    shutil.rmtree(checkout, ignore_errors=True)
    # a real checkout has no caches: a copied __pycache__ holds pytest's rewritten modules, whose
    # code names the original directory (pytest 8 then prints ../<project>/test_x.py in tracebacks)
    shutil.copytree(
        project, checkout, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__", "*.xml")
    )
    return checkout


@pytest.fixture
def project(suite: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Suite:
    pytester.makepyfile(
        test_kinds=EVERY_KIND,
        test_more="import pytest\n\n@pytest.mark.parametrize('i', range(12))\n"
        "def test_more(i):\n    assert i != 7\n",
    )
    pytester.makeini("[pytest]\naddopts = -p no:randomly\njunit_logging = all\n")
    # what the recipe's env block sets for every job
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("PYTEST_RESUME_ID", "auto")
    monkeypatch.setenv("PYTEST_RESUME_JOURNAL", ".resumable/journal.jsonl")
    return suite


def test_github_recipe_merge_verify_report_equals_an_uninterrupted_run(
    project: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = pytester.runpytest_subprocess(
        "-p", "no:xdist", "-p", "no:resumable", "--junitxml=ref.xml"
    )
    assert reference.ret == 1
    project.take_ran()
    artifacts = project.path.parent / "artifacts"
    artifacts.mkdir()
    for k in range(1, SHARDS + 1):
        checkout = job(project.path, k)
        args = ["-p", "no:xdist", "--shard", f"{k}/{SHARDS}"]
        if k == 2:
            # the runner of job 2 dies mid-way (SIGKILL), then "Re-run failed jobs" retries
            # it in a fresh checkout that gets the journal back from its artifact
            shard = Suite(checkout, project.log, project.block_file)
            mine = _own_tests(checkout, k)
            interrupt(shard, args, block_at=mine[len(mine) // 2], sig=signal.SIGKILL)
            saved = artifacts / "job-2-attempt-1"
            shutil.copytree(checkout / ".resumable", saved)  # uploaded by `if: always()`
            checkout = job(project.path, k)
            shutil.copytree(saved, checkout / ".resumable")  # downloaded by the retry
        monkeypatch.chdir(checkout)
        finished = subprocess.run(
            [sys.executable, "-m", "pytest", *args], capture_output=True, text=True, timeout=120
        )
        assert finished.returncode in (0, 1), finished.stdout + finished.stderr
        assert "resumable: run" in finished.stdout.splitlines()[-1]
        shutil.copyfile(checkout / ".resumable" / "journal.jsonl", artifacts / f"journal-{k}.jsonl")

    # the final job: merge, verify, report
    final = artifacts
    inputs = [f"journal-{k}.jsonl" for k in range(1, SHARDS + 1)]
    merged = cli("merge", *inputs, "-o", "merged.jsonl", cwd=final)
    assert merged.returncode == 0, merged.stderr
    verify = cli("verify", "github-4242", "--journal", "merged.jsonl", cwd=final)
    assert verify.returncode == 0, verify.stdout
    assert "0 missing, 0 doubled" in verify.stdout
    report = cli(
        "report", "github-4242", "--journal", "merged.jsonl",
        "--junitxml", "whole-run.xml", "--junit-logging", "all", cwd=final,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    assert "whole-run.xml:" in report.stdout
    expected = checkouts_removed(junit(project.path / "ref.xml"))
    assert_same_cases(checkouts_removed(junit(final / "whole-run.xml")), expected)
    # the same from the shard journals, unmerged
    direct = cli(
        "report", "github-4242", *(f"--journal={name}" for name in inputs),
        "--junitxml", "direct.xml", "--junit-logging", "all", cwd=final,
    )  # fmt: skip
    assert direct.returncode == 0, direct.stderr
    assert_same_cases(checkouts_removed(junit(final / "direct.xml")), expected)


def assert_same_cases(got: dict[str, str], expected: dict[str, str]) -> None:
    """Equal test cases; when not, the whole difference of each differing case (pytest's
    own assertion message cuts long strings in the middle, where the difference was)."""
    differing = sorted(k for k in got.keys() | expected.keys() if got.get(k) != expected.get(k))
    diffs = [
        "\n".join(
            difflib.unified_diff(
                expected.get(k, "").splitlines(), got.get(k, "").splitlines(), k, k, lineterm=""
            )
        )
        for k in differing
    ]
    assert not differing, "\n\n".join(diffs)


def checkouts_removed(cases: dict[str, str]) -> dict[str, str]:
    """pytest writes a skip's location with the absolute path of the checkout; a CI runner's
    checkout path is the same in every job, these copies' paths are not."""
    return {k: re.sub(r"/[^ <>\"]*/(test_\w+\.py:)", r"<checkout>/\1", v) for k, v in cases.items()}


def _own_tests(checkout: Path, k: int) -> list[str]:
    """The tests shard k runs: collected by the shard itself (the split is the plugin's)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--co",
            "-q",
            "-p",
            "no:xdist",
            "--shard",
            f"{k}/{SHARDS}",
        ],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line for line in out.stdout.splitlines() if "::" in line]


def test_report_of_a_killed_job_marks_the_tests_in_flight(
    project: Suite, pytester: pytest.Pytester
) -> None:
    blocker = "test_more.py::test_more[3]"
    killed = interrupt(project, ["-p", "no:xdist"], block_at=blocker, sig=signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    journal = project.path / ".resumable" / "journal.jsonl"
    report = cli(
        "report", "github-4242", f"--journal={journal}", "--junitxml", "killed.xml",
        cwd=project.path,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    assert "1 in flight without a result" in report.stdout
    cases = junit(project.path / "killed.xml")
    [flight] = [xml for name, xml in cases.items() if name.endswith("test_more[3]")]
    assert "in flight when attempt 1 of run" in flight
    assert not [name for name in cases if name.endswith(("test_more[4]", "test_more[11]"))]
