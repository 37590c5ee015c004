"""Kill stress: SIGKILL the xdist controller or a worker at random moments, resume, audit.

    python benchmarks/stress_kill.py --kills 100        (about 10 minutes on 2 CPUs)

For each kill: a new run of a few hundred tests starts under ``pytest -n 3``; at a random moment
one process of it (the controller, or one worker) gets SIGKILL; ``pytest -n 3 --resume`` then
runs until the run is complete. Every test writes ``S <node id>`` to a side log when it starts
and ``E <node id> <time>`` when its body ends, so the audit knows what ran, how often, and when.

Printed, over all kills:

* results lost: a test whose body ended more than 1 s before a kill (long enough for its report
  to reach the controller and be written) and that then ran again — must be 0;
* results recorded twice: tests with more than one result record in a run — must be 0;
* tests never run: selected tests that never started and are not recorded ``crashed`` — must
  be 0 (a worker killed just as it began a test, before the test's first fixture wrote to the
  side log, is reported by xdist as crashed while running it; counted apart);
* tests without a result when the run says complete — must be 0;
* extra executions per kill: runs of a test beyond the first (only tests in flight at a kill
  should run again; xdist hands a worker several tests at once, so a controller kill can
  interrupt more than one).

Exit status 1 if any must-be-0 figure is not 0.
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
from pathlib import Path

CONFTEST = """
import os, time, pytest

@pytest.fixture(autouse=True)
def _side_log(request):
    fd = os.open(os.environ["STRESS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"S {request.node.nodeid}\\n".encode())
    yield
    os.write(fd, f"E {request.node.nodeid} {time.time():.6f}\\n".encode())
    os.close(fd)
"""

MODULE = """
import time, pytest

@pytest.mark.parametrize("i", range({n}))
def test_t(i):
    time.sleep(((i * 7919 + {m}) % 13) / 1000)
"""


def make_suite(root: Path, modules: int, per_module: int) -> list[str]:
    (root / "conftest.py").write_text(CONFTEST)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly -p no:cacheprovider\n")
    ids = []
    for m in range(modules):
        (root / f"test_s{m}.py").write_text(MODULE.format(n=per_module, m=m))
        ids += [f"test_s{m}.py::test_t[{i}]" for i in range(per_module)]
    return ids


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


def read_log(log: Path) -> list[tuple[str, str, float]]:
    rows = []
    for line in log.read_text().splitlines():
        parts = line.split(" ")
        if parts[0] == "S":
            rows.append(("S", parts[1], 0.0))
        elif parts[0] == "E" and len(parts) == 3:
            rows.append(("E", parts[1], float(parts[2])))
    return rows


def pytest_run(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-n", "3", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def journal_results(journal: Path, run: str) -> tuple[Counter[str], dict[str, str]]:
    """How many results each test has in the run, and its (last) outcome."""
    got: Counter[str] = Counter()
    outcome: dict[str, str] = {}
    for line in journal.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") == "result" and rec.get("run") == run:
            got[rec["test"]] += 1
            outcome[rec["test"]] = rec["outcome"]
    return got, outcome


def newest_run(journal: Path) -> str:
    run = ""
    for line in journal.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") == "run":
            run = rec["run"]
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--tests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="resumable-stress-"))
    try:
        return stress(root, args.kills, args.tests, random.Random(args.seed))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stress(root: Path, kill_count: int, tests: int, rng: random.Random) -> int:
    ids = make_suite(root, 6, tests // 6)
    journal = root / "journal.jsonl"
    log = root / "side.log"
    env = {**os.environ, "STRESS_LOG": str(log), "PYTEST_RESUME_JOURNAL": str(journal)}
    env.pop("PYTEST_ADDOPTS", None)

    lost = doubled = never = missing = extra = internal = crashed_unstarted = 0
    kills = {"controller": 0, "worker": 0}
    started = time.monotonic()
    for k in range(kill_count):
        log.write_text("")
        target = rng.choice(["controller", "worker"])
        proc = pytest_run(root, env, "--resume-new")
        delay = rng.uniform(1.2, 3.0)  # start-up is ~1 s; the tests take ~1-2 s on 3 workers
        time.sleep(delay)
        kill_time = time.time()
        if proc.poll() is None:
            if target == "controller":
                proc.send_signal(signal.SIGKILL)
            else:
                workers = children(proc.pid)
                if workers:
                    os.kill(rng.choice(workers), signal.SIGKILL)
            kills[target] += 1
        out = proc.communicate()[0].decode(errors="replace")
        _reap_group(proc.pid)
        internal += "INTERNALERROR" in out
        run = newest_run(journal)
        attempts = 0
        while "complete after" not in out:
            attempts += 1
            if attempts > 10:
                print(f"kill {k}: run {run} not complete after 10 resumes:\n{out}")
                return 1
            resumed = pytest_run(root, env, "--resume")
            out = resumed.communicate()[0].decode(errors="replace")
            internal += "INTERNALERROR" in out
        rows = read_log(log)
        starts = Counter(nid for kind, nid, _ in rows if kind == "S")
        first_end: dict[str, float] = {}
        reran_after_end = set()
        seen_end: set[str] = set()
        for kind, nid, when in rows:
            if kind == "E" and nid not in first_end:
                first_end[nid] = when
            if kind == "E":
                seen_end.add(nid)
        # a test whose body ended >1 s before the kill, started again afterwards
        for nid, n in starts.items():
            if n > 1 and nid in first_end and first_end[nid] < kill_time - 1.0:
                reran_after_end.add(nid)
        results, outcome = journal_results(journal, run)
        lost += len(reran_after_end)
        doubled += sum(1 for n in results.values() if n > 1)
        for t in ids:
            if starts[t] == 0:
                # A worker killed after xdist handed it the test but before the test's first
                # fixture ran: xdist reports it crashed while running it, and so does the journal.
                if outcome.get(t) == "crashed":
                    crashed_unstarted += 1
                else:
                    never += 1
        missing += sum(1 for t in ids if results[t] == 0)
        extra += sum(n - 1 for n in starts.values() if n > 1)
        if (k + 1) % 10 == 0:
            print(f"{k + 1} kills, {time.monotonic() - started:.0f} s", flush=True)

    total = sum(kills.values())
    print(
        f"\nkill stress: {total} SIGKILLs ({kills['controller']} controller, "
        f"{kills['worker']} worker) of `pytest -n 3` over {len(ids)} tests, each run "
        f"resumed until complete"
    )
    print(f"results lost:                  {lost}")
    print(f"results recorded twice:        {doubled}")
    print(f"tests never run:               {never}")
    print(f"complete runs missing results: {missing}")
    print(f"INTERNALERRORs:                {internal}")
    print(
        f"crashed before their body ran: {crashed_unstarted} (worker killed as it began the "
        f"test: recorded crashed, as xdist reports it)"
    )
    print(
        f"extra executions per kill:     {extra / max(total, 1):.2f} "
        f"({extra} in all: tests in flight at a kill)"
    )
    return 0 if lost == doubled == never == missing == internal == 0 else 1


def _reap_group(pgid: int) -> None:
    """Workers of a killed controller exit on their own; make sure none is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
