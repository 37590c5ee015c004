"""Where recording's per-test cost goes, measured inside a real session (issue #17).

Runs N trivial tests in a single process with pytest-resumable recording, wrapping the two
hooks of the recorder with a clock, and prints the time spent inside them per test, the
session's own CPU per test, and the start-up work of the plugin (``pytest_sessionstart``).
Timing inside the process is not disturbed by other processes the way whole-run CPU ratios
are on a noisy machine; the wrapper adds ~0.2 µs per call.

Usage: ``python benchmarks/hot_path.py [--tests 10000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import cost

PROBE = """
import atexit, json, os, resource, time
import pytest
from pytest_resumable import controller, recorder

clock = time.perf_counter
acc = {"start": 0.0, "report": 0.0, "tests": 0, "sessionstart": 0.0}
R = recorder.Recorder
start_hook, report_hook = R.pytest_runtest_logstart, R.pytest_runtest_logreport


def logstart(self, nodeid, location):
    t = clock()
    start_hook(self, nodeid, location)
    acc["start"] += clock() - t
    acc["tests"] += 1


def logreport(self, report):
    t = clock()
    report_hook(self, report)
    acc["report"] += clock() - t


R.pytest_runtest_logstart = logstart
R.pytest_runtest_logreport = logreport
C = controller.ControllerPlugin
session_start = C._start


def timed_start(self, *args, **kwargs):
    t = clock()
    try:
        return session_start(self, *args, **kwargs)
    finally:
        acc["sessionstart"] += clock() - t


C._start = timed_start


def dump():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    acc["cpu"] = usage.ru_utime + usage.ru_stime
    with open(os.environ["HOT_PATH_OUT"], "w") as f:
        json.dump(acc, f)


atexit.register(dump)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="resumable-hot-"))
    try:
        cost.make_suite(root, args.tests)
        (root / "hot_path_probe.py").write_text(PROBE)
        out = root / "out.json"
        env = cost.env()
        env.update(PYTHONPATH=str(root), HOT_PATH_OUT=str(out))
        rows = []
        for _ in range(args.runs):
            shutil.rmtree(root / "j", ignore_errors=True)
            subprocess.run(
                [
                    sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-p", "no:xdist", "-p", "hot_path_probe", f"--resume-journal={root}/j/j.jsonl",
                ],
                cwd=root, env=env, stdout=subprocess.DEVNULL, check=True,
            )  # fmt: skip
            rows.append(json.loads(out.read_text()))
        n = args.tests

        def med(key: str, scale: float) -> float:
            return statistics.median(r[key] for r in rows) * scale

        hooks = med("start", 1e6 / n) + med("report", 1e6 / n)
        cpu = med("cpu", 1e6 / n)
        print(f"{n:,} trivial tests, single process, median of {args.runs} runs")
        print(f"| in pytest_runtest_logstart, per test | {med('start', 1e6 / n):.1f} µs |")
        print(
            f"| in pytest_runtest_logreport (3 calls), per test | {med('report', 1e6 / n):.1f} µs |"
        )
        print(f"| the session's CPU, per test (everything) | {cpu:.0f} µs |")
        print(f"| recording hooks' share of the session's CPU | {hooks / cpu:.1%} |")
        print(f"| plugin start-up (pytest_sessionstart) | {med('sessionstart', 1e3):.1f} ms |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
