"""Recording overhead as instructions executed, a figure machine noise barely moves (issue #17).

CPU time on a shared 2-core machine varies by 20-30 % from one run to the next, so a ratio of a
few percent needs many alternated pairs (``cost.py``). This counts the instructions every
process of the tree executed, under ``valgrind --tool=cachegrind`` (no cache simulation), with
the plugin recording and with ``-p no:resumable`` (with the plugin off the same run gives the
same count to ~0.01 %; recording, see below). What it does not see: time in the kernel (the
two ``write`` calls per test, ~1.2 µs each here) and cache misses. Runs ~40x slower than natively.

One part of recording is driven by the clock, not by the tests: the journal writer releases
its lock lease every 0.5 s of wall time and takes it again at the next append, and syncs once a
second. Under valgrind a run lasts ~40x longer, so that part is counted ~40x (10,000 tests:
~190 lease cycles instead of ~5-10 natively, ~70 M instructions) and moves with the machine's
load (~15 M from run to run at 2,000 tests). The last columns count the run again with a probe
plugin that stops that clock (:data:`CLOCK_PROBE`): closer to what a native run executes,
and repeatable between runs made back to back (two runs of identical code were 12 M apart
at 2,000 tests, clock stopped, one of them beside another benchmark: compare in pairs).

Prints, per mode, the instructions off and on, the difference per test, the overhead, and the
same with the clock stopped. Each run is made once unmeasured first, so every module is
compiled (``.pyc``) as it is for a user. ``PYTHONHASHSEED=0`` on every side.

Usage: ``python benchmarks/instructions.py [--tests 10000] [--modes single,-n 2]``
(needs ``valgrind`` on the ``PATH``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import cost

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")

#: A plugin (``-p resumable_clock_probe``) that stops the writer's lease and sync clock: the
#: lease is taken once and held to the end of the session. It reaches into the writer's
#: private attributes; ``tests/test_benchmarks.py`` runs it, so a rename fails there.
CLOCK_PROBE = """\
from pytest_resumable.journal.writer import JournalWriter

_init = JournalWriter.__init__


def _init_without_clock(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    for name in ("_idle", "_max_hold", "_fsync_interval"):
        getattr(self, name)  # AttributeError if the writer changed
        setattr(self, name, 1e9)


JournalWriter.__init__ = _init_without_clock
"""


def count(args: list[str], root: Path, logs: Path, journal: Path) -> int:
    """Instructions of every process of one pytest run (the xdist workers included), with
    no journal at ``journal`` when it starts (as ``cost.py`` measures)."""
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    env = {**cost.env(), "PYTHONHASHSEED": "0"}
    shutil.rmtree(journal.parent, ignore_errors=True)
    subprocess.run(command, cwd=root, env=env, stdout=subprocess.DEVNULL, check=False)
    shutil.rmtree(journal.parent, ignore_errors=True)
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            "--trace-children=yes",
            f"--log-file={logs}/%p.log",
            *command,
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode not in (0, 5):
        raise SystemExit(f"pytest {' '.join(args)} failed under valgrind ({done.returncode})")
    total = 0
    for log in logs.glob("*.log"):
        found = _REFS.search(log.read_text(errors="replace"))
        if found:
            total += int(found.group(1).replace(",", ""))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10000)
    parser.add_argument("--modes", default="single,-n 2")
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("instructions.py needs valgrind on the PATH", file=sys.stderr)
        return 2
    modes = {"single": ["-p", "no:xdist"], "-n 2": ["-n", "2"]}
    with tempfile.TemporaryDirectory(prefix="resumable-instructions-") as tmp:
        root = Path(tmp) / "suite"
        cost.make_suite(root, options.tests)
        journal = Path(tmp) / "j" / "journal.jsonl"
        logs = Path(tmp) / "logs"
        print(f"{options.tests:,} trivial tests, instructions of the whole process tree")
        (root / "resumable_clock_probe.py").write_text(CLOCK_PROBE)  # cwd: on sys.path
        print(
            "| mode | off | on | on - off, per test | overhead "
            "| on, clock stopped | per test | overhead |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name in options.modes.split(","):
            mode = modes[name.strip()]
            off = count([*mode, "-p", "no:resumable"], root, logs, journal)
            recording = [*mode, f"--resume-journal={journal}"]
            on = count(recording, root, logs, journal)
            still = count([*recording, "-p", "resumable_clock_probe"], root, logs, journal)
            cells = [f"{off / 1e9:.2f} G"]
            for value in (on, still):
                cells += [
                    f"{value / 1e9:.2f} G",
                    f"{(value - off) / options.tests / 1e3:+.1f} k",
                    f"{100 * (value / off - 1):+.2f} %",
                ]
            print(f"| {name.strip()} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    raise SystemExit(main())
