"""Journal stress: concurrent sessions on one journal, compaction, merge, lock deletion, kills.

    python benchmarks/stress_journal.py --duration 180 --seed 1

Two session slots run at once on ONE journal (``--resume-journal=PATH``): slot 0 in a single
process (``-p no:xdist``), slot 1 with ``-n 2``. Each slot works through runs of its own, each
named by its own ``--resume-id`` (so runs are distinct): a session of that id, and after a
kill ``--resume`` sessions of it, until the run says it is complete. A session is SIGKILLed
(the controller, then its process group) at a random moment with probability ``--kill-rate``.
Meanwhile a background loop, at random intervals, runs
``python -m pytest_resumable compact --journal PATH --keep-runs 1000000`` (every run kept, so
the audit can see them all), ``python -m pytest_resumable merge PATH other.jsonl -o PATH``
(``other.jsonl``: a journal with a run of its own) or deletes ``PATH.lock``; half of the
compactions and merges also get ``PATH.lock`` deleted while they start (so they lock a new lock
file at once, possibly while a session still holds its lease on the deleted one).

Each session has a side log (the conftest of ``stress_kill.py``): ``S``/``E`` lines when a test
starts and ends, and ``R <pid> <run> <attempt> <test>`` from a ``trylast``
``pytest_runtest_logreport`` in the controller once the plugin's recorder has handled the
test's final report: that result line has been written.

Audit (all must be 0):

* lost: an ``R`` line whose run has no result for that test in the final journal;
* doubled: a (run, test) with more than one result line, in the final journal or in a copy of
  the journal taken right before each compaction and merge (those rewrite one result per
  test and drop identical lines, so they would hide a duplicate written before them);
* re-run after its result: a test started in a later attempt of its run than the one that
  recorded its result;
* missing: a test of the suite without a result in the final journal, for every run (all are
  resumed until complete; a session that ended normally saying complete had them all);
* split runs: a ``--resume-id`` that got more than one run (a resume that did not find its run);
* incomplete runs, hangs, failed compact/merge commands, INTERNALERRORs or tracebacks of the
  plugin.

Prints one summary line; exit status 1 if any audit count is nonzero.
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
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from stress_kill import CONFTEST, FAST_MODULE, SideLog, plugin_trouble, read_side_log, reap_group

MODULES = ("test_a.py", "test_b.py", "test_c.py")


def make_suite(root: Path, fast_tests: int) -> list[str]:
    (root / "conftest.py").write_text(CONFTEST)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly -p no:cacheprovider\n")
    ids = []
    per_module = max(1, fast_tests // len(MODULES))
    for m, name in enumerate(MODULES):
        (root / name).write_text(FAST_MODULE.format(n=per_module, m=m))
        ids += [f"{name}::test_t[{i}]" for i in range(per_module)]
        ids.append(f"{name}::test_long")
    return ids


def session_env(log: Path) -> dict[str, str]:
    env = {**os.environ, "STRESS_LOG": str(log)}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_RESUME_JOURNAL", None)
    return env


def result_keys(data: bytes) -> tuple[Counter[tuple[str, str]], int]:
    """Result lines per (run, test) in a journal's bytes (a torn last line ignored), and the
    lines that did not parse."""
    keys: Counter[tuple[str, str]] = Counter()
    bad = 0
    for line in data.split(b"\n")[:-1]:
        if b'"result"' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(rec, dict) and rec.get("type") == "result":
            keys[(rec["run"], rec["test"])] += 1
    return keys, bad


# -- the background loop


@dataclass
class Background:
    journal: Path
    other: Path
    root: Path
    rng: random.Random
    delete_lock: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    doubled: set[tuple[str, str]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def loop(self) -> None:
        cli = [sys.executable, "-m", "pytest_resumable"]
        while not self.stop.wait(self.rng.uniform(0.05, 0.6)):
            action = self.rng.choices(["compact", "merge", "unlink"], [5, 2, 3])[0]
            if action == "unlink" and not self.delete_lock:
                continue
            if action == "unlink":
                self.unlink_lock()
                continue
            if not self.journal.exists():
                continue
            self.snapshot()
            if action == "compact":
                cmd = [*cli, "compact", "--journal", str(self.journal), "--keep-runs", "1000000"]
            else:
                cmd = [*cli, "merge", str(self.journal), str(self.other), "-o", str(self.journal)]
            proc = subprocess.Popen(
                cmd, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            if self.delete_lock and self.rng.random() < 0.5:
                # delete the lock file while the command starts: it locks a new lock file
                # at once, while a session may still hold its lease on the deleted one
                time.sleep(self.rng.uniform(0.05, 0.3))
                self.unlink_lock()
            stderr = proc.communicate()[1]
            if proc.returncode != 0 or "Traceback" in stderr:
                self.failures.append(f"{' '.join(cmd[2:])}: exit {proc.returncode}\n{stderr}")
            else:
                self.counts["compactions" if action == "compact" else "merges"] += 1

    def unlink_lock(self) -> None:
        try:
            os.unlink(f"{self.journal}.lock")
            self.counts["lock deletions"] += 1
        except FileNotFoundError:
            pass

    def snapshot(self) -> None:
        """Duplicates written so far, before a rewrite folds them away."""
        try:
            data = self.journal.read_bytes()
        except FileNotFoundError:
            return
        keys, _ = result_keys(data)
        self.doubled |= {key for key, n in keys.items() if n > 1}


# -- sessions


@dataclass
class Slot:
    mode: str  # single or xdist
    resume_id: str = ""
    sessions_of_run: int = 0
    proc: subprocess.Popen[bytes] | None = None
    kill_at: float | None = None
    started: float = 0.0
    log: Path = Path()


@dataclass
class Figures:
    runs: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    kills: int = 0
    reported: int = 0
    lost: int = 0
    doubled: int = 0
    rerun_after_result: int = 0
    missing: int = 0
    split_runs: int = 0
    incomplete: int = 0
    hangs: int = 0
    errors: int = 0
    corrupt: int = 0

    @property
    def bad(self) -> int:
        return (
            self.lost
            + self.doubled
            + self.rerun_after_result
            + self.missing
            + self.split_runs
            + self.incomplete
            + self.hangs
            + self.errors
        )


def start_session(
    slot: Slot, root: Path, journal: Path, number: int, kill: bool, rng: random.Random
) -> None:
    slot.log = root / f"side-{number}.log"
    xdist = ["-p", "no:xdist"] if slot.mode == "single" else ["-n", "2"]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        *xdist,
        f"--resume-journal={journal}",
        f"--resume-id={slot.resume_id}",
    ]
    slot.proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=session_env(slot.log),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    slot.started = time.monotonic()
    slot.kill_at = slot.started + rng.uniform(0.2, 3.0) if kill else None
    slot.sessions_of_run += 1


def stress(root: Path, args: argparse.Namespace) -> tuple[Figures, Background, list[str]]:
    rng = random.Random(args.seed)
    ids = make_suite(root, args.tests)
    journal = root / "journal.jsonl"
    other = root / "other.jsonl"
    problems: list[str] = []
    # the journal merged in: a run of its own, recorded by a real session
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", f"--resume-journal={other}"],
        cwd=root,
        env=session_env(root / "side-other.log"),
        capture_output=True,
        check=False,
    )
    background = Background(
        journal, other, root, random.Random(args.seed + 1), not args.no_lock_deletion
    )
    thread = threading.Thread(target=background.loop, daemon=True)
    thread.start()
    figures = Figures()
    slots = [Slot("single"), Slot("xdist")]
    logs: list[tuple[int, SideLog]] = []
    run_ids: list[str] = []
    number = 0
    deadline = time.monotonic() + args.duration
    outputs = {}
    # output of each session is drained by a thread: a full pipe must not stall pytest
    while True:
        now = time.monotonic()
        active = False
        for slot in slots:
            proc = slot.proc
            if proc is None:
                if now >= deadline:
                    continue
                slot.resume_id = f"stress-{len(run_ids)}"
                run_ids.append(slot.resume_id)
                slot.sessions_of_run = 0
                figures.runs[slot.mode] += 1
                start_session(slot, root, journal, number, rng.random() < args.kill_rate, rng)
                outputs[slot.proc.pid] = _drain(slot.proc)  # type: ignore[union-attr]
                figures.sessions += 1
                number += 1
                active = True
                continue
            active = True
            if proc.poll() is None:
                if slot.kill_at is not None and now >= slot.kill_at:
                    slot.kill_at = None
                    try:
                        os.kill(proc.pid, signal.SIGKILL)
                        figures.kills += 1
                    except ProcessLookupError:
                        pass
                elif now - slot.started > args.timeout:
                    figures.hangs += 1
                    problems.append(f"session {proc.pid} ({slot.resume_id}) hung")
                    reap_group(proc.pid)
                continue
            reap_group(proc.pid)
            reader = outputs.pop(proc.pid)
            reader[0].join(timeout=10)
            out = b"".join(reader[1]).decode(errors="replace")
            logs.append((proc.pid, read_side_log(slot.log)))
            if plugin_trouble(out):
                figures.errors += 1
                problems.append(f"session {proc.pid} ({slot.resume_id}):\n{out[-3000:]}")
            slot.proc = None
            if "complete after" in out:
                continue  # the slot takes a new run
            if slot.sessions_of_run >= args.max_attempts:
                figures.incomplete += 1
                problems.append(f"{slot.resume_id}: not complete after {args.max_attempts}:\n{out}")
                continue
            kill = time.monotonic() < deadline and rng.random() < args.kill_rate
            start_session(slot, root, journal, number, kill, rng)
            outputs[slot.proc.pid] = _drain(slot.proc)  # type: ignore[union-attr]
            figures.sessions += 1
            number += 1
        if not active:
            break
        time.sleep(0.01)
    background.stop.set()
    thread.join()
    problems += background.failures
    figures.errors += len(background.failures)
    problems += audit(figures, background, journal, logs, ids, run_ids)
    return figures, background, problems


def _drain(proc: subprocess.Popen[bytes]) -> tuple[threading.Thread, list[bytes]]:
    chunks: list[bytes] = []

    def read() -> None:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(65536), b""):  # type: ignore[union-attr]
            chunks.append(chunk)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, chunks


def audit(
    figures: Figures,
    background: Background,
    journal: Path,
    logs: list[tuple[int, SideLog]],
    ids: list[str],
    run_ids: list[str],
) -> list[str]:
    problems = []
    data = journal.read_bytes()
    final, figures.corrupt = result_keys(data)
    runs_of: dict[str, set[str]] = {}
    attempt_of_pid: dict[int, tuple[str, int]] = {}
    result_attempt: dict[tuple[str, str], int] = {}
    complete: set[str] = set()
    for line in data.split(b"\n")[:-1]:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        kind = rec.get("type")
        if kind == "run" and rec.get("resume_id"):
            runs_of.setdefault(rec["resume_id"], set()).add(rec["run"])
        elif kind == "attempt" and isinstance(rec.get("pid"), int):
            attempt_of_pid[rec["pid"]] = (rec["run"], rec["attempt"])
        elif kind == "result":
            result_attempt.setdefault((rec["run"], rec["test"]), rec["attempt"])
        elif kind == "end" and rec.get("complete"):
            complete.add(rec["run"])
    doubled = background.doubled | {key for key, n in final.items() if n > 1}
    figures.doubled = len(doubled)
    problems += [f"doubled: {test} in run {run}" for run, test in sorted(doubled)]
    for pid, log in logs:
        figures.reported += len(log.reported)
        for run, attempt, test in log.reported:
            if (run, test) not in final:
                figures.lost += 1
                problems.append(f"lost: {test} of run {run}, reported in attempt {attempt}")
        where = attempt_of_pid.get(pid)
        if where is None:
            continue
        run, attempt = where
        for test in {t for _, t in log.starts}:
            first = result_attempt.get((run, test))
            if first is not None and first < attempt:
                figures.rerun_after_result += 1
                problems.append(
                    f"re-run: {test} of run {run} recorded in attempt {first}, run in {attempt}"
                )
    for resume_id in run_ids:
        runs = runs_of.get(resume_id, set())
        if len(runs) > 1:
            figures.split_runs += 1
            problems.append(f"split: {resume_id} has runs {sorted(runs)}")
        for run in sorted(runs):
            if run not in complete:
                figures.incomplete += 1
                problems.append(f"incomplete: run {run} ({resume_id}) has no complete end")
            gone = [t for t in ids if (run, t) not in final]
            figures.missing += len(gone)
            problems += [f"missing: {t} in run {run} ({resume_id})" for t in gone[:20]]
        if not runs:
            figures.missing += len(ids)
            problems.append(f"missing: no run of {resume_id} in the journal")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of new runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tests", type=int, default=90, help="fast tests in the suite")
    parser.add_argument("--kill-rate", type=float, default=0.4, help="sessions SIGKILLed")
    parser.add_argument("--max-attempts", type=int, default=15, help="sessions per run")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per session")
    parser.add_argument(
        "--no-lock-deletion", action="store_true", help="never delete PATH.lock (a control)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the directory")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="resumable-stress-journal-"))
    started = time.monotonic()
    try:
        figures, background, problems = stress(root, args)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    for line in problems[:200]:
        print(line)
    counts = background.counts
    print(
        f"journal stress: {sum(figures.runs.values())} runs ({figures.runs['single']} single "
        f"process, {figures.runs['xdist']} -n 2) in {figures.sessions} sessions on one "
        f"journal; kills {figures.kills}, compactions {counts['compactions']}, merges "
        f"{counts['merges']}, lock deletions {counts['lock deletions']}; results reported "
        f"{figures.reported}; lost {figures.lost}, doubled {figures.doubled}, re-run after "
        f"result {figures.rerun_after_result}, missing {figures.missing}, split runs "
        f"{figures.split_runs}, incomplete {figures.incomplete}, hangs {figures.hangs}, "
        f"errors {figures.errors}, corrupt lines {figures.corrupt} "
        f"({time.monotonic() - started:.0f} s{', kept in ' + str(root) if args.keep else ''})",
        flush=True,
    )
    return 1 if figures.bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
