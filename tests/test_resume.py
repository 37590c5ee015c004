"""Real pytest sessions, interrupted from outside and resumed: what ran, how often, what the
journal says, what the user sees."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from conftest import SUITE_28, Suite, interrupt, literal, node

ALL_28 = [node(i) for i in range(28)]


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
def test_interrupted_after_8_resume_runs_exactly_the_other_20(
    suite: Suite, pytester: pytest.Pytester, sig: signal.Signals
) -> None:
    """The scenario every recipe starts from: 28 tests, one failing, interrupted after 8."""
    pytester.makepyfile(test_suite=SUITE_28)
    first = interrupt(suite, ["-p", "no:xdist"], block_at=node(8), sig=sig)
    assert suite.take_ran() == ALL_28[:9]  # 8 finished, the 9th in flight
    results = suite.records("result")
    assert [r["test"] for r in results] == ALL_28[:8]
    if sig == signal.SIGKILL:
        assert first.returncode == -signal.SIGKILL
        assert suite.records("end") == []
    else:
        # Ctrl-C and SIGTERM end the attempt cleanly: summary, end record, the continue line
        assert first.returncode == 2, first.output
        assert "KeyboardInterrupt" in first.output
        [end] = suite.records("end")
        assert end["complete"] is False
        assert end["status"] == 2
        assert "20 of 28 tests have no result yet; continue with: pytest --resume" in first.output

    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    ran = suite.take_ran()
    assert ran == ALL_28[8:]  # exactly the 20 without a result, each once
    assert resumed.ret == 1  # test 5 failed in the first attempt and stays failed
    resumed.stdout.fnmatch_lines(
        [
            literal(
                "resumable: resuming run * (attempt 2): 8/28 have results (7 passed, 1 failed); "
                "20 to run; 1 was in flight: test_suite.py::test_n[8]*"
            ),
            literal(
                "FAILED (carried) test_suite.py::test_n[5] - AssertionError: five is not allowed*"
            ),
            "*= 1 failed (1 carried), 27 passed (7 carried) in *",
            "resumable: run * complete after 2 attempts (27 passed, 1 failed)",
        ]
    )
    assert resumed.outlines[-1].startswith("resumable: run ")  # the very last line
    runs = {r["run"] for r in suite.records("result")}
    assert len(runs) == 1

    # The run is complete: the next --resume starts a new run of all 28 (the naive recipes
    # skip everything forever at this point).
    again = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert suite.take_ran() == ALL_28
    assert again.ret == 1
    again.stdout.fnmatch_lines(["resumable: run * complete after 1 attempt (27 passed, 1 failed)"])
    assert len(suite.records("run")) == 2


def test_resume_with_nothing_recorded_starts_a_new_run(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    result = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert result.ret == 1
    assert suite.take_ran() == ALL_28
    result.stdout.fnmatch_lines(
        ["resumable: recording run * to .pytest_cache/d/resumable/journal.jsonl"]
    )


def test_plain_run_is_recorded_and_can_be_resumed(suite: Suite, pytester: pytest.Pytester) -> None:
    """resume_record (default true): a run started without --resume can still be resumed."""
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(20), sig=signal.SIGKILL)
    suite.take_ran()
    pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert suite.take_ran() == ALL_28[20:]


def test_resume_record_false_records_nothing(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nresume_record = false\n")
    pytester.makepyfile(test_suite=SUITE_28)
    pytester.runpytest_subprocess("-p", "no:xdist")
    assert not suite.journal.exists()
    pytester.runpytest_subprocess("-p", "no:resumable")
    assert not suite.journal.exists()


def test_sigkill_at_several_points_every_test_runs_once_but_the_in_flight(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """Killed with SIGKILL at several points, resumed until complete: every test ran; only the
    test in flight at each kill ran twice; the journal has one result per test."""
    pytester.makepyfile(test_suite=SUITE_28)
    in_flight = [node(3), node(11), node(12), node(25)]
    interrupt(suite, ["-p", "no:xdist"], block_at=in_flight[0], sig=signal.SIGKILL)
    for blocker in in_flight[1:]:
        interrupt(suite, ["--resume", "-p", "no:xdist"], block_at=blocker, sig=signal.SIGKILL)
    final = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert final.ret == 1
    final.stdout.fnmatch_lines(["resumable: run * complete after 5 attempts (27 passed, 1 failed)"])
    executions = Counter(suite.ran())
    assert set(executions) == set(ALL_28)
    assert {t for t, n in executions.items() if n > 1} == set(in_flight)
    assert all(executions[t] == 2 for t in in_flight)
    results = Counter(r["test"] for r in suite.records("result"))
    assert results == Counter(ALL_28)  # recorded exactly once each
    assert len({r["run"] for r in suite.records("result")}) == 1


def test_a_test_that_kills_its_process_is_proven_crashed_in_a_child(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """Blame needs proof: the in-flight test of a dead single-process attempt runs in a child
    process first; only its own death there makes it ``crashed``, and resuming never loops."""
    pytester.makepyfile(
        test_killer="""
        import os, signal
        def test_kills():
            os.kill(os.getpid(), signal.SIGKILL)
        def test_after():
            pass
    """,
    )
    dead = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert dead.ret == -signal.SIGKILL
    second = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert second.ret == 1
    second.stdout.fnmatch_lines(
        [
            "*1 was in flight: test_killer.py::test_kills (1 first run in a child process)*",
            "crashed: the test killed its process (signal 9 (SIGKILL))",
            "FAILED test_killer.py::test_kills - crashed: the test killed its process*",
            "resumable: run * complete after 2 attempts (1 passed, 1 crashed)",
        ]
    )
    [crashed] = [r for r in suite.records("result") if r["outcome"] == "crashed"]
    assert crashed["test"] == "test_killer.py::test_kills"
    assert Counter(suite.take_ran()) == {
        "test_killer.py::test_kills": 2,  # in the first attempt, then in the child
        "test_killer.py::test_after": 1,
    }
    # the run is complete: no loop. --resume-retry-failed runs a crashed test again
    retry = pytester.runpytest_subprocess(
        "--resume-retry-failed", "-p", "no:xdist", "test_killer.py::test_after"
    )
    assert retry.ret == 0


# a test that kills its process the first time it runs, then does what ``body`` says
_KILLED_ONCE = """
import os, signal, time
def test_a():
    pass
def test_suspect():
    if not os.path.exists("killed"):
        open("killed", "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
{body}
def test_z():
    pass
"""


def _killed_then_resumed(
    pytester: pytest.Pytester, module: str, body: str, *options: str
) -> pytest.RunResult:
    """``_KILLED_ONCE`` with ``body`` as ``module``: the first attempt dies in
    ``test_suspect``; the result of the next, which runs it in a child."""
    pytester.makepyfile(**{module: _KILLED_ONCE.format(body=body)})
    args = ["--resume", "-p", "no:xdist", *options]
    assert pytester.runpytest_subprocess(*args).ret == -signal.SIGKILL
    return pytester.runpytest_subprocess(*args)


def test_a_suspect_reruns_in_its_child_as_it_would_have_in_process(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """pytest-rerunfailures owns the protocol: in the child it reruns a flaky suspect as it
    would have in-process (the child ran the bare protocol once: green turned red)."""
    body = """
    if not os.path.exists("failed_once"):
        open("failed_once", "w").close()
        assert False
"""
    resumed = _killed_then_resumed(pytester, "test_flaky", body, "--reruns=1", "-rA")
    assert resumed.ret == 0
    resumed.stdout.fnmatch_lines(
        [
            "*1 was in flight: test_flaky.py::test_suspect (1 first run in a child process)*",
            "*3 passed (1 carried), 1 rerun in*",
            "resumable: run * complete after 2 attempts (3 passed)",
        ]
    )
    outcomes = {r["test"]: r["outcome"] for r in suite.records("result")}
    assert outcomes["test_flaky.py::test_suspect"] == "passed"


def test_a_suspect_times_out_in_its_child_signal_method(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """pytest-timeout's signal method: the timeout fails the suspect in its child, as it would
    have in-process (the parent's alarm went off in its wait: INTERNALERROR)."""
    resumed = _killed_then_resumed(
        pytester, "test_slow", "    time.sleep(60)", "--timeout=1", "--timeout-method=signal"
    )
    assert resumed.ret == 1
    resumed.stdout.fnmatch_lines(
        [
            "FAILED test_slow.py::test_suspect - Failed: Timeout*",
            "resumable: run * complete after 2 attempts (2 passed, 1 failed)",
        ]
    )
    resumed.stdout.no_fnmatch_line("*INTERNALERROR*")


def _warnings_summary(result: pytest.RunResult) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "warnings summary" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("-- Docs:"))
    return lines[start:end]


@pytest.mark.parametrize(
    ("body", "options"),
    [
        (
            """
    import warnings
    class OwnWarning(UserWarning):  # a class the parent cannot import
        pass
    warnings.warn("said in the child", OwnWarning)
    warnings.warn("twice", DeprecationWarning)""",
            (),
        ),
        (
            """
    import warnings
    warnings.warn("said in the child", DeprecationWarning)""",
            ("-W", "error::DeprecationWarning"),
        ),
    ],
    ids=["warned", "warning-is-error"],
)
def test_a_suspect_s_warnings_are_reported_as_uninterrupted(
    suite: Suite, pytester: pytest.Pytester, body: str, options: tuple[str, ...]
) -> None:
    """What a suspect warns in its child is in the resumed warnings summary and counted in
    its last line, as uninterrupted (the child's warnings plugin kept them to itself); a
    warning the child's filters made an error failed the test there, once."""
    resumed = _killed_then_resumed(pytester, "test_warns", body, *options)
    uninterrupted = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:resumable", *options)
    assert resumed.ret == uninterrupted.ret
    resumed.stdout.no_fnmatch_line("*INTERNALERROR*")
    if options:
        assert resumed.ret == 1
        resumed.stdout.fnmatch_lines(["*1 failed, 2 passed (1 carried) in*"])
        uninterrupted.stdout.fnmatch_lines(["*1 failed, 2 passed in*"])
        return
    assert _warnings_summary(resumed) == _warnings_summary(uninterrupted)
    assert "OwnWarning: said in the child" in "\n".join(_warnings_summary(resumed))
    resumed.stdout.fnmatch_lines(["*3 passed (1 carried), 2 warnings in*"])
    uninterrupted.stdout.fnmatch_lines(["*3 passed, 2 warnings in*"])


def test_a_suspect_timed_out_by_the_thread_method_is_crashed_not_a_loop(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """pytest-timeout's thread method ends the process at the timeout: in-process that kills
    the attempt; in the child it proves the test ``crashed``, and the run goes on. (The
    parent's own timer killed the parent while the child ran: every attempt named the test in
    flight again, for ever.)"""
    pytester.makepyfile(
        test_hang="""
        import time
        def test_a():
            pass
        def test_hang():
            time.sleep(60)
        def test_z():
            pass
    """
    )
    args = ["--resume", "-p", "no:xdist", "--timeout=1", "--timeout-method=thread"]
    first = pytester.runpytest_subprocess(*args)
    assert first.ret == 1  # pytest-timeout's os._exit(1)
    first.stdout.no_fnmatch_line("resumable: run * complete*")
    resumed = pytester.runpytest_subprocess(*args)
    assert resumed.ret == 1
    resumed.stdout.fnmatch_lines(
        [
            "*1 was in flight: test_hang.py::test_hang (1 first run in a child process)*",
            "crashed: the test killed its process (exit code 1)",
            "FAILED test_hang.py::test_hang - crashed*",
            "resumable: run * complete after 2 attempts (2 passed, 1 crashed)",
        ]
    )


def test_external_kills_never_blame_the_test_in_flight(
    suite: Suite, pytester: pytest.Pytester
) -> None:
    """Two SIGKILLs from outside while the same test runs: it is innocent (issue #14)."""
    pytester.makepyfile(test_suite=SUITE_28)
    for _ in range(2):
        killed = interrupt(
            suite, ["--resume", "-p", "no:xdist"], block_at=node(8), sig=signal.SIGKILL
        )
        assert killed.returncode == -signal.SIGKILL
        suite.take_ran()
    resumed = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert resumed.ret == 1  # test_n[5] only
    assert [r for r in suite.records("result") if r["outcome"] == "crashed"] == []
    assert suite.take_ran() == ALL_28[8:]
    resumed.stdout.fnmatch_lines(
        ["resumable: run * complete after 3 attempts (27 passed, 1 failed)"]
    )


def test_retry_failed_runs_carried_failures_again(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(10), sig=signal.SIGINT)
    suite.take_ran()
    result = pytester.runpytest_subprocess("--resume-retry-failed", "-p", "no:xdist")
    assert suite.take_ran() == [node(5), *ALL_28[10:]]
    assert result.ret == 1
    result.stdout.fnmatch_lines([literal("FAILED test_suite.py::test_n[5] - *")])
    result.stdout.no_fnmatch_line("*(carried)*")


def test_carried_failure_keeps_exit_status_1(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(10), sig=signal.SIGINT)
    suite.take_ran()
    # everything run now passes; the carried failure keeps the run red
    result = pytester.runpytest_subprocess("--resume", "-p", "no:xdist", "-x")
    assert result.ret == 1
    assert suite.take_ran() == ALL_28[10:]  # -x did not stop on the carried failure
    result.stdout.no_fnmatch_line("*stopping after*")


def test_changed_test_file_is_not_carried(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE_28, test_other="def test_o(): pass\n")
    interrupt(suite, ["-p", "no:xdist"], block_at=node(10), sig=signal.SIGKILL)
    suite.take_ran()
    # same content, new mtime: still carried
    (pytester.path / "test_other.py").touch()
    # new content: its results are not carried
    pytester.makepyfile(test_suite=SUITE_28 + "\n# edited\n")
    result = pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert sorted(suite.take_ran()) == sorted(ALL_28)
    result.stdout.fnmatch_lines(["*10 not carried (test file changed)*"])


def test_selection_may_change_between_attempts(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(10), sig=signal.SIGKILL)
    suite.take_ran()
    result = pytester.runpytest_subprocess(
        "--resume", "-p", "no:xdist", "-k", "test_n[1 or test_n[2"
    )
    # -k keeps 1, 2, 10..19, 20..27; 1 and 2 are carried
    expected = [t for t in ALL_28 if t.split("[")[1][0] in "12" and t not in (node(1), node(2))]
    assert suite.take_ran() == expected
    result.stdout.fnmatch_lines(["resumable: run * complete after 2 attempts*"])


def test_resume_id_names_the_run(
    suite: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(
        suite, ["-p", "no:xdist", "--resume-id", "ci-41"], block_at=node(4), sig=signal.SIGKILL
    )
    interrupt(
        suite, ["-p", "no:xdist", "--resume-id", "ci-42"], block_at=node(9), sig=signal.SIGKILL
    )
    suite.take_ran()
    monkeypatch.setenv("PYTEST_RESUME_ID", "ci-41")
    pytester.runpytest_subprocess("-p", "no:xdist")
    assert suite.take_ran() == ALL_28[4:]
    monkeypatch.delenv("PYTEST_RESUME_ID")
    # an anonymous --resume does not pick up a named run
    pytester.runpytest_subprocess("--resume", "-p", "no:xdist")
    assert suite.take_ran() == ALL_28
    pytester.runpytest_subprocess("--resume-id", "ci-42", "-p", "no:xdist")
    assert suite.take_ran() == ALL_28[9:]
    assert [r["resume_id"] for r in suite.records("run")] == ["ci-41", "ci-42", None]


def test_resume_new_starts_a_new_run(suite: Suite, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(suite, ["-p", "no:xdist"], block_at=node(4), sig=signal.SIGKILL)
    suite.take_ran()
    pytester.runpytest_subprocess("--resume-new", "-p", "no:xdist")
    assert suite.take_ran() == ALL_28
    assert len(suite.records("run")) == 2


def test_journal_option_env_and_ini(
    suite: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_suite="def test_a(): pass\n")
    pytester.runpytest_subprocess("--resume-journal", "j/opt.jsonl", "-p", "no:xdist")
    assert (pytester.path / "j" / "opt.jsonl").exists()
    monkeypatch.setenv("PYTEST_RESUME_JOURNAL", str(pytester.path / "env.jsonl"))
    pytester.runpytest_subprocess("-p", "no:xdist")
    assert (pytester.path / "env.jsonl").exists()
    monkeypatch.delenv("PYTEST_RESUME_JOURNAL")
    pytester.makeini("[pytest]\nresume_journal = ini/j.jsonl\n")
    pytester.runpytest_subprocess("-p", "no:xdist")
    assert (pytester.path / "ini" / "j.jsonl").exists()
    assert not suite.journal.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--resume-fsync", "sometimes"],
            "ERROR: --resume-fsync: unknown mode 'sometimes'; expected one of always, interval, never",
        ),
        (["--resume-id", ""], "ERROR: --resume-id: invalid run id ''*"),
        (["--resume-id", "a\nb"], "ERROR: --resume-id: invalid run id*"),
        (["--resume", "--resume-new"], "ERROR: --resume-new: cannot be combined with --resume*"),
        (["--resume-journal", " "], "ERROR: --resume-journal: empty path*"),
        (["--shard", "0/3"], "ERROR: --shard: invalid shard '0/3'; expected K/N with 1 <= K <= N*"),
        (["--shard", "4/3"], "ERROR: --shard: invalid shard '4/3'; expected K/N*"),
        (["--shard", "x"], "ERROR: --shard: invalid shard 'x'; expected K/N*"),
        (["--shard", "1/0"], "ERROR: --shard: invalid shard '1/0'*"),
        (
            ["--resume-order", "fast"],
            "ERROR: --resume-order: unknown mode 'fast'; expected one of duration, none*",
        ),
    ],
)
def test_malformed_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_a(): pass\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_malformed_ini_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nresume_fsync = often\nresume_lock_timeout = soon\n")
    pytester.makepyfile("def test_a(): pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: resume_fsync: unknown mode 'often'*"])


def test_malformed_shard_env_and_ini_are_usage_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_a(): pass\n")
    monkeypatch.setenv("PYTEST_SHARD", "3of4")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: PYTEST_SHARD: invalid shard '3of4'; expected K/N*"])
    monkeypatch.delenv("PYTEST_SHARD")
    pytester.makeini("[pytest]\nresume_order = random\nresume_compact_bytes = lots\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: resume_order: unknown mode 'random'*"])


@pytest.mark.parametrize("mode", ["always", "interval", "never"])
def test_fsync_modes_record_everything(suite: Suite, pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_suite=SUITE_28)
    interrupt(
        suite, ["-p", "no:xdist", "--resume-fsync", mode], block_at=node(8), sig=signal.SIGKILL
    )
    assert [r["test"] for r in suite.records("result")] == ALL_28[:8]


def test_carried_passes_leave_the_last_failed_set(pytester: pytest.Pytester) -> None:
    """A test that failed in an earlier session, then passed in an attempt that was killed
    (so pytest's cache still lists it as failed), is carried as passed: ``--lf`` must not
    run it again. (On pytest 9.2 the last-failed set is keyed by the structured id; the bulk
    replay of carried passes once cleared only string keys.)"""
    pytester.makepyfile(
        test_lf="""
        import os, signal

        def test_a():
            assert not os.environ.get("FAIL_A")

        def test_b():
            if os.environ.get("KILL_B"):
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    journal = f"--resume-journal={pytester.path / 'j.jsonl'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIL_A", "1")
        assert pytester.runpytest_subprocess("-p", "no:xdist").ret == 1  # cache: test_a failed
        mp.delenv("FAIL_A")
        mp.setenv("KILL_B", "1")
        # test_a passes, then the process is killed: the cache is not written
        killed = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider", journal)
        assert killed.ret == -signal.SIGKILL
    lastfailed = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    assert "test_lf.py::test_a" in lastfailed.read_text()
    resumed = pytester.runpytest_subprocess("-p", "no:xdist", "--resume", journal)
    assert resumed.ret == 0, resumed.stdout.str()
    resumed.stdout.fnmatch_lines(["*2 passed (1 carried)*"])
    assert "test_a" not in lastfailed.read_text()
