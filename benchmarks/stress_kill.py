"""Kill stress: kill pytest at random moments, in one process and under xdist, resume, audit.

    python benchmarks/stress_kill.py --kills 100 --seed 1      (a few minutes on 2 CPUs)

Rounds alternate between a single process (``-p no:xdist``) and ``-n 2``. A round starts a new
run (``--resume-new``) of a small suite and kills two to four of its attempts, each with one
of: SIGKILL of the controller (the single process), SIGKILL of an xdist worker, SIGTERM or
SIGINT of the controller. About half the kills wait until one of the suite's 0.3 s tests is in
flight (on the process that gets the signal, for a worker kill); the others come at a random
moment, some during start-up. Then ``pytest --resume`` runs until the run says it is complete
(at most ``--max-attempts`` attempts per round).

The suite has exactly one deliberate killer, ``test_c_killer.py::test_kills_its_process``,
which ``os._exit(1)``s its process: it must end recorded ``crashed`` (under xdist: xdist sees
its worker die; in one process: it kills the attempt, and the next attempt proves it in a
forked child). Every other test is innocent.

Evidence, per pytest invocation, in a side log of its own:

* ``S <pid> <node id>`` when a test's first fixture runs and ``E <pid> <node id>`` when it is
  torn down (autouse fixture, in the process that runs the test);
* ``R <pid> <run> <attempt> <node id>`` from a ``trylast`` ``pytest_runtest_logreport`` in
  the controller (the single process), for the final report of a test (teardown, or xdist's
  crash report), not for replayed carried results. The plugin's recorder is an ordinary
  hookimpl, so it has handled that report before: the test's result *was reported* to the
  plugin. Attempts are matched to invocations by the controller pid of the journal's
  ``attempt`` records.

Audit of each round, from the final journal and the side logs (all must be 0):

* lost: an ``R`` line (run, attempt, test) without a result line of that test from that
  attempt in the journal;
* doubled: a test with more than one result line in the run (a test in flight at a kill runs
  again, but had no result, so it still gets exactly one);
* re-run after its result: a test that started (``S``) in a later attempt than the one that
  recorded its result (the result was not carried);
* never run: a test of the suite without a result when the run is complete, or with a result
  other than ``crashed`` but no ``S`` line in any attempt;
* innocent crashed: a ``crashed`` result for a test other than the killer, except the victim
  of an external worker SIGKILL: xdist reports the test its killed worker was running (or had
  just been handed, or had just torn down while its teardown report was still on the way to
  the controller) as crashed and cannot tell that from a test killing its worker, so those
  are counted apart ("worker-kill victims");
* incomplete: rounds not complete after ``--max-attempts`` attempts; hangs: invocations still
  running ``--timeout`` seconds after a kill (or start); INTERNALERRORs and tracebacks from the
  plugin in pytest's output.

Prints one summary line; exit status 1 if any audit count is nonzero or the killer is not
recorded crashed in every round.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

CONFTEST = """
import os
import pytest

_LOG = os.environ["STRESS_LOG"]
_config = None


def _write(line):
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def pytest_configure(config):
    global _config
    _config = config


@pytest.fixture(autouse=True)
def _side_log(request):
    _write(f"S {os.getpid()} {request.node.nodeid}\\n")
    yield
    _write(f"E {os.getpid()} {request.node.nodeid}\\n")


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    # the controller (or single process) only, after the plugin's recorder had the report
    if _config is None or hasattr(_config, "workerinput"):
        return
    if report.when not in ("teardown", "???") or getattr(report, "resumable_carried", False):
        return
    rec = _config.pluginmanager.get_plugin("resumable-recorder")
    if rec is None or getattr(rec, "writer", None) is None:
        return
    _write(f"R {os.getpid()} {rec.run} {rec.attempt} {report.nodeid}\\n")
"""

FAST_MODULE = """
import time
import pytest


@pytest.mark.parametrize("i", range({n}))
def test_t(i):
    time.sleep(((i * 7919 + {m}) % 13) / 1000)


def test_long():
    time.sleep(0.3)
"""

KILLER_MODULE = """
import os


def test_kills_its_process():
    os._exit(1)
"""

KILLER = "test_c_killer.py::test_kills_its_process"
FAST_MODULES = ("test_a.py", "test_b.py", "test_d.py", "test_e.py")


def make_suite(root: Path, fast_tests: int) -> tuple[list[str], set[str]]:
    """The suite's node ids and its long tests."""
    (root / "conftest.py").write_text(CONFTEST)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly -p no:cacheprovider\n")
    (root / "test_c_killer.py").write_text(KILLER_MODULE)
    ids = [KILLER]
    long_tests = set()
    per_module = max(1, fast_tests // len(FAST_MODULES))
    for m, name in enumerate(FAST_MODULES):
        (root / name).write_text(FAST_MODULE.format(n=per_module, m=m))
        ids += [f"{name}::test_t[{i}]" for i in range(per_module)]
        ids.append(f"{name}::test_long")
        long_tests.add(f"{name}::test_long")
    return ids, long_tests


# -- side logs


@dataclass
class SideLog:
    starts: list[tuple[int, str]] = field(default_factory=list)
    ends: list[tuple[int, str]] = field(default_factory=list)
    reported: list[tuple[str, int, str]] = field(default_factory=list)  # (run, attempt, test)

    def open_tests(self) -> dict[str, int]:
        """Tests started and not torn down, with the pid running them."""
        left = Counter(self.starts)
        left.subtract(Counter(self.ends))
        return {test: pid for (pid, test), n in left.items() if n > 0}


def read_side_log(path: Path) -> SideLog:
    log = SideLog()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return log
    for raw in data.split(b"\n")[:-1]:  # the last piece is empty or a line being written
        parts = raw.decode(errors="replace").split(" ")
        if parts[0] in ("S", "E") and len(parts) == 3 and parts[1].isdigit():
            (log.starts if parts[0] == "S" else log.ends).append((int(parts[1]), parts[2]))
        elif parts[0] == "R" and len(parts) == 5 and parts[3].isdigit():
            log.reported.append((parts[2], int(parts[3]), parts[4]))
    return log


# -- processes


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def reap_group(pgid: int) -> None:
    """Workers and forked children of a killed controller: make sure none is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Kill:
    kind: str  # controller, worker, sigterm, sigint
    pid: int  # the process that got the signal
    controller: int  # the invocation's controller pid
    long_in_flight: bool  # a long test was in flight (on ``pid`` for a worker kill)
    waited_for_long: bool


SIGNALS = {
    "controller": signal.SIGKILL,
    "worker": signal.SIGKILL,
    "sigterm": signal.SIGTERM,
    "sigint": signal.SIGINT,
}


def deliver_kill(
    proc: subprocess.Popen[bytes],
    log_path: Path,
    kind: str,
    long_tests: set[str],
    rng: random.Random,
) -> Kill | None:
    """Signal ``proc`` (or one of its workers) at a random moment; None if it ended first."""
    style = rng.random()
    wait_long = style < 0.5
    deadline = time.monotonic() + 20
    if style > 0.85:
        time.sleep(rng.uniform(0.0, 1.2))  # any moment, start-up included
    else:
        while time.monotonic() < deadline and proc.poll() is None:
            log = read_side_log(log_path)
            if wait_long:
                running = log.open_tests()
                if any(
                    t in long_tests and (kind != "worker" or pid != proc.pid)
                    for t, pid in running.items()
                ):
                    break
            elif log.starts:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25) if wait_long else rng.uniform(0.0, 1.0))
    if proc.poll() is not None:
        return None
    running = read_side_log(log_path).open_tests()
    target = proc.pid
    if kind == "worker":
        workers = children(proc.pid)
        if not workers:
            return None
        on_long = [pid for t, pid in running.items() if t in long_tests and pid in workers]
        target = on_long[0] if wait_long and on_long else rng.choice(workers)
    long_now = any(
        t in long_tests and (kind != "worker" or pid == target) for t, pid in running.items()
    )
    try:
        os.kill(target, SIGNALS[kind])
    except ProcessLookupError:
        return None
    return Kill(kind, target, proc.pid, long_now, wait_long)


# -- journal


@dataclass
class RunJournal:
    run: str = ""
    attempt_of_pid: dict[int, int] = field(default_factory=dict)
    results: list[tuple[int, str, str]] = field(default_factory=list)  # attempt, test, outcome
    complete: bool = False
    corrupt: int = 0


def read_journal(path: Path) -> RunJournal:
    """The one run of a round's journal."""
    journal = RunJournal()
    for line in path.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            journal.corrupt += 1
            continue
        kind = rec.get("type")
        if kind == "run":
            journal.run = journal.run or rec["run"]
        elif kind == "attempt" and isinstance(rec.get("pid"), int):
            journal.attempt_of_pid[rec["pid"]] = rec["attempt"]
        elif kind == "result":
            journal.results.append((rec["attempt"], rec["test"], rec["outcome"]))
        elif kind == "end":
            journal.complete = bool(rec.get("complete"))
    return journal


# -- audit


@dataclass
class Figures:
    rounds: dict[str, int] = field(default_factory=lambda: {"single": 0, "xdist": 0})
    kills: Counter[str] = field(default_factory=Counter)
    long_kills: int = 0
    attempts: int = 0
    lost: int = 0
    doubled: int = 0
    rerun_after_result: int = 0
    never_run: int = 0
    innocent_crashed: int = 0
    victims_crashed: int = 0
    killer_crashed_rounds: int = 0
    incomplete: int = 0
    hangs: int = 0
    internal_errors: int = 0
    extra_executions: int = 0
    reported: int = 0

    @property
    def bad(self) -> int:
        return (
            self.lost
            + self.doubled
            + self.rerun_after_result
            + self.never_run
            + self.innocent_crashed
            + self.incomplete
            + self.hangs
            + self.internal_errors
        )


def audit_round(
    figures: Figures,
    journal: RunJournal,
    logs: list[tuple[int, SideLog]],
    kills: list[Kill],
    ids: list[str],
    label: str,
) -> list[str]:
    """Add one round's counts to ``figures``; the problems found, for printing."""
    problems = []
    by_key = {(a, t) for a, t, _ in journal.results}
    per_test = Counter(t for _, t, _ in journal.results)
    final: dict[str, tuple[int, str]] = {}
    first_result: dict[str, int] = {}
    for attempt, test, outcome in journal.results:
        final[test] = (attempt, outcome)
        first_result.setdefault(test, attempt)
    started_in: dict[str, set[int]] = {}
    all_starts = [t for _, log in logs for _, t in log.starts]
    figures.extra_executions += len(all_starts) - len(set(all_starts))
    for pid, log in logs:
        figures.reported += len(log.reported)
        attempt = journal.attempt_of_pid.get(pid)
        for run, a, test in log.reported:
            if run != journal.run or (a, test) not in by_key:
                figures.lost += 1
                problems.append(f"{label}: lost: {test} reported in attempt {a} of run {run}")
        if attempt is None:
            continue
        for _, test in log.starts:
            started_in.setdefault(test, set()).add(attempt)
    for test, n in per_test.items():
        if n > 1:
            figures.doubled += 1
            problems.append(f"{label}: doubled: {test} has {n} results")
    for test, attempt in first_result.items():
        later = sorted(a for a in started_in.get(test, ()) if a > attempt)
        if later:
            figures.rerun_after_result += 1
            problems.append(
                f"{label}: re-run: {test} recorded in attempt {attempt}, run again in {later}"
            )
    for test in ids:
        if test not in final:
            figures.never_run += 1
            problems.append(f"{label}: never run: {test} has no result")
        elif final[test][1] != "crashed" and test not in started_in:
            figures.never_run += 1
            problems.append(f"{label}: never run: {test} has {final[test][1]} but never started")
    # worker-kill victims: the test the killed worker was running, or had just been handed
    victims: set[tuple[int, str]] = set()
    crashed = {(a, t) for a, t, o in journal.results if o == "crashed" and t != KILLER}
    log_of = dict(logs)
    for kill in kills:
        attempt = journal.attempt_of_pid.get(kill.controller)
        if kill.kind != "worker" or attempt is None:
            continue
        log = log_of.get(kill.controller, SideLog())
        mine = {t for t, pid in log.open_tests().items() if pid == kill.pid}
        started = {t for _, t in log.starts}
        # torn down in the worker, its teardown report not yet at the controller: xdist
        # counts it the crashed one (its protocol was not acknowledged)
        ended = [t for pid, t in log.ends if pid == kill.pid]
        last_ended = ended[-1] if ended else None
        candidates = sorted(
            (a, t)
            for a, t in crashed - victims
            if a == attempt and (t in mine or (not mine and (t not in started or t == last_ended)))
        )
        if candidates:
            victims.add(candidates[0])
    figures.victims_crashed += len(victims)
    for a, t in sorted(crashed - victims):
        figures.innocent_crashed += 1
        problems.append(f"{label}: innocent crashed: {t} in attempt {a}")
    if final.get(KILLER, (0, ""))[1] == "crashed":
        figures.killer_crashed_rounds += 1
    else:
        problems.append(f"{label}: the killer has {final.get(KILLER, (0, 'no result'))[1]}")
    return problems


# -- the stress loop


def pytest_command(mode: str, journal: Path, first: bool) -> list[str]:
    xdist = ["-p", "no:xdist"] if mode == "single" else ["-n", "2"]
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        *xdist,
        f"--resume-journal={journal}",
        "--resume-new" if first else "--resume",
    ]


def plugin_trouble(out: str) -> bool:
    return "INTERNALERROR" in out or ("Traceback" in out and "pytest_resumable" in out)


def run_round(
    root: Path,
    number: int,
    mode: str,
    kill_budget: int,
    ids: list[str],
    long_tests: set[str],
    rng: random.Random,
    figures: Figures,
    max_attempts: int,
    timeout: float,
) -> list[str]:
    journal = root / f"journal-{number}.jsonl"
    kinds = ["controller", "sigterm", "sigint"] + (["worker"] if mode == "xdist" else [])
    kills: list[Kill] = []
    logs: list[tuple[int, SideLog]] = []
    problems: list[str] = []
    label = f"round {number} ({mode})"
    complete = False
    for invocation in range(max_attempts):
        log_path = root / f"side-{number}-{invocation}.log"
        env = {**os.environ, "STRESS_LOG": str(log_path)}
        env.pop("PYTEST_ADDOPTS", None)
        env.pop("PYTEST_RESUME_JOURNAL", None)
        proc = subprocess.Popen(
            pytest_command(mode, journal, invocation == 0),
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        figures.attempts += 1
        if len(kills) < kill_budget:
            kill = deliver_kill(proc, log_path, rng.choice(kinds), long_tests, rng)
            if kill is not None:
                kills.append(kill)
                figures.kills[kill.kind] += 1
                figures.long_kills += kill.long_in_flight
        try:
            out = proc.communicate(timeout=timeout)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            figures.hangs += 1
            reap_group(proc.pid)
            out = proc.communicate()[0].decode(errors="replace")
            problems.append(f"{label}: invocation {invocation} hung:\n{out[-3000:]}")
        reap_group(proc.pid)
        logs.append((proc.pid, read_side_log(log_path)))
        if plugin_trouble(out):
            figures.internal_errors += 1
            problems.append(f"{label}: invocation {invocation}:\n{out[-3000:]}")
        if "complete after" in out:
            complete = True
            break
    run = read_journal(journal)
    if not complete or not run.complete:
        figures.incomplete += 1
        problems.append(f"{label}: run {run.run} not complete after {max_attempts} attempts")
    problems += audit_round(figures, run, logs, kills, ids, label)
    if problems:  # keep the evidence
        keep = root.parent / f"{root.name}-round-{number}"
        shutil.copytree(root, keep, dirs_exist_ok=True)
        problems.append(f"{label}: journal and side logs kept in {keep}")
    else:
        for path in root.glob(f"side-{number}-*.log"):
            path.unlink()
    for path in root.glob(f"journal-{number}.jsonl*"):
        path.unlink()
    return problems


def stress(root: Path, args: argparse.Namespace) -> tuple[Figures, list[str]]:
    rng = random.Random(args.seed)
    ids, long_tests = make_suite(root, args.tests)
    figures = Figures()
    problems: list[str] = []
    number = 0
    started = time.monotonic()
    while sum(figures.kills.values()) < args.kills:
        mode = "single" if number % 2 == 0 else "xdist"
        budget = min(rng.randint(2, 4), args.kills - sum(figures.kills.values()))
        found = run_round(
            root,
            number,
            mode,
            budget,
            ids,
            long_tests,
            rng,
            figures,
            args.max_attempts,
            args.timeout,
        )
        figures.rounds[mode] += 1
        for line in found:
            print(line, flush=True)
        problems += found
        number += 1
        if number % 10 == 0:
            print(
                f"{number} rounds, {sum(figures.kills.values())} kills, "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
    return figures, problems


def summary(figures: Figures, elapsed: float) -> str:
    rounds = sum(figures.rounds.values())
    kills = figures.kills
    return (
        f"kill stress: rounds {rounds} ({figures.rounds['single']} single process, "
        f"{figures.rounds['xdist']} -n 2), attempts {figures.attempts}, "
        f"kills {sum(kills.values())} (controller SIGKILL {kills['controller']}, "
        f"worker SIGKILL {kills['worker']}, SIGTERM {kills['sigterm']}, "
        f"SIGINT {kills['sigint']}; {figures.long_kills} with a 0.3 s test in flight); "
        f"lost {figures.lost}, doubled {figures.doubled}, "
        f"re-run after result {figures.rerun_after_result}, never run {figures.never_run}, "
        f"innocent crashed {figures.innocent_crashed}, "
        f"worker-kill victims crashed {figures.victims_crashed}, "
        f"deliberate killer recorded crashed "
        f"{'yes' if figures.killer_crashed_rounds == rounds else 'no'} "
        f"({figures.killer_crashed_rounds}/{rounds}), incomplete {figures.incomplete}, "
        f"hangs {figures.hangs}, internal errors {figures.internal_errors}, "
        f"results reported and checked {figures.reported}, "
        f"extra executions {figures.extra_executions} ({elapsed:.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100, help="kills delivered in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tests", type=int, default=120, help="fast tests in the suite")
    parser.add_argument("--max-attempts", type=int, default=12, help="per round")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per invocation")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="resumable-stress-kill-"))
    started = time.monotonic()
    try:
        figures, _ = stress(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(summary(figures, time.monotonic() - started), flush=True)
    rounds = sum(figures.rounds.values())
    return 1 if figures.bad or figures.killer_crashed_rounds != rounds else 0


if __name__ == "__main__":
    raise SystemExit(main())
