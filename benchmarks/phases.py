"""Where recording's whole-process cost falls, phase by phase (issue #17).

Runs N trivial tests in a single process, plugin on (recording) and off (``-p
no:resumable``), alternated, and splits each process's CPU (user + sys, from the kernel) into
phases by ``time.process_time()`` marks a probe plugin takes: interpreter and pytest start-up
to ``pytest_sessionstart``, collection, the test loop, the end of the session, and the exit
after ``atexit`` (the interpreter's teardown of its modules, whose collections walk whatever
is still alive). Prints the median of each phase, on and off, and the median of the pairs'
differences.

Usage: ``python benchmarks/phases.py [--tests 10000] [--pairs 5] [--src DIR]``; ``--src``: the
plugin's code from another checkout's ``src`` (the code before a change), put first on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import cost

PROBE = """
import atexit, json, os, time
import pytest

marks = []


def mark(name):
    marks.append((name, time.process_time()))


mark("pytest and plugins loaded")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    mark("configure, session start")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session):
    try:
        return (yield)
    finally:
        mark("collection")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session):
    mark("between")
    try:
        return (yield)
    finally:
        mark("test loop")


def dump():  # registered first, so it runs last of the atexit handlers
    mark("session end, atexit")
    with open(os.environ["PHASES_OUT"], "w") as f:
        json.dump(marks, f)


atexit.register(dump)
"""

EXIT = "exit after atexit (module teardown)"


def run(root: Path, args: list[str], out: Path, src: str | None) -> dict[str, float]:
    env = cost.env()
    path = [src, str(root)] if src else [str(root)]
    env.update(PYTHONPATH=os.pathsep.join(path), PHASES_OUT=str(out))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "phases_probe", *args],
        cwd=root, env=env, stdout=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    phases: dict[str, float] = {}
    last = 0.0
    for name, at in json.loads(out.read_text()):
        phases[name] = phases.get(name, 0.0) + at - last
        last = at
    phases[EXIT] = total - last
    phases["whole process"] = total
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--src", default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="resumable-phases-"))
    try:
        cost.make_suite(root, args.tests)
        (root / "phases_probe.py").write_text(PROBE)
        out = root / "out.json"
        runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        for i in range(args.pairs):
            for side in ("off", "on") if i % 2 == 0 else ("on", "off"):
                shutil.rmtree(root / "j", ignore_errors=True)
                journal = f"--resume-journal={root}/j/j"
                extra = ["-p", "no:resumable"] if side == "off" else [journal]
                runs[side].append(run(root, extra, out, args.src))
        names = list(runs["on"][0])
        print(
            f"{args.tests:,} trivial tests, single process, {args.pairs} alternated pairs, "
            f"median CPU (user + sys) per phase, {time.strftime('%Y-%m-%d %H:%M')}"
        )
        print("| phase | off | on | on - off (median of the pairs' differences) |")
        print("|---|---|---|---|")
        for name in names:
            off = statistics.median(r.get(name, 0.0) for r in runs["off"])
            on = statistics.median(r.get(name, 0.0) for r in runs["on"])
            pairs = zip(runs["on"], runs["off"], strict=True)
            paired = statistics.median(a.get(name, 0.0) - b.get(name, 0.0) for a, b in pairs)
            print(f"| {name} | {off:.3f} s | {on:.3f} s | {paired:+.3f} s |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
