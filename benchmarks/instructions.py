"""Recording overhead as instructions executed, a figure machine noise cannot move (issue #17).

CPU time on a shared 2-core machine varies by 20-30 % from one run to the next, so a ratio of a
few percent needs many alternated pairs (``cost.py``). This counts the instructions every
process of the tree executed, under ``valgrind --tool=cachegrind`` (no cache simulation), with
the plugin recording and with ``-p no:resumable``: the same run gives the same count to
~0.01 %. What it does not see: time in the kernel (the two ``write`` calls per test, ~1.2 µs
each here) and cache misses. Runs ~20x slower than natively.

Prints, per mode, the instructions off and on, the difference per test, and the overhead.
Each run is made once unmeasured first, so every module is compiled (``.pyc``) as it is for a
user. ``PYTHONHASHSEED=0`` on both sides.

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
        print("| mode | off | on | on - off, per test | overhead |")
        print("|---|---|---|---|---|")
        for name in options.modes.split(","):
            mode = modes[name.strip()]
            off = count([*mode, "-p", "no:resumable"], root, logs, journal)
            on = count([*mode, f"--resume-journal={journal}"], root, logs, journal)
            per_test = (on - off) / options.tests
            print(
                f"| {name.strip()} | {off / 1e9:.2f} G | {on / 1e9:.2f} G | "
                f"{per_test / 1e3:+.1f} k | {100 * (on / off - 1):+.2f} % |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    raise SystemExit(main())
