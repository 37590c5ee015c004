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
load (~15 M from run to run at 2,000 tests). So recording is counted with a probe plugin that
stops that clock (:data:`CLOCK_PROBE`): closer to what a native run executes.

With the clock stopped a count repeats (10,000 tests: twice within 0.5 M, one of the runs on a
loaded machine), but it moves when something unrelated changes: one extra environment
variable moved the recording count of 10,000 tests by 26 M instructions (0.11 % of the run),
and two virtual environments with the same packages gave plugin-off counts 10 M apart. A change
smaller than that cannot be seen in one pair of runs. So each side is counted in ``--variants``
variants of the environment (a variable of a different length each, the same for both sides,
off and on of one variant back to back) and the table gives the means, and the range of the
per-variant overheads.

Prints, per mode, the instructions off and recording with the clock stopped (means over the
variants), the difference per test, the overhead, and its range over the variants; with
``--with-clock`` also the recording count with the clock running (first variant only). Each run
is made once unmeasured first, so every module is compiled (``.pyc``) as it is for a user.
``PYTHONHASHSEED=0`` on every side.

Usage: ``python benchmarks/instructions.py [--tests 10000] [--modes single,-n 2] [--variants 3]
[--with-clock]`` (needs ``valgrind`` on the ``PATH``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
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


#: the environment variable whose length makes a run's variant
VARIANT_VARIABLE = "RESUMABLE_BENCH_VARIANT"


def count(args: list[str], root: Path, logs: Path, journal: Path, variant: int = 0) -> int:
    """Instructions of every process of one pytest run (the xdist workers included), with
    no journal at ``journal`` when it starts (as ``cost.py`` measures), in environment
    variant ``variant``."""
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    env = {**cost.env(), "PYTHONHASHSEED": "0", VARIANT_VARIABLE: "x" * (37 * variant)}
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


def _cells(value: float, off: float, tests: int) -> list[str]:
    return [
        f"{value / 1e9:.2f} G",
        f"{(value - off) / tests / 1e3:+.1f} k",
        f"{100 * (value / off - 1):+.2f} %",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10000)
    parser.add_argument("--modes", default="single,-n 2")
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--with-clock", action="store_true")
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("instructions.py needs valgrind on the PATH", file=sys.stderr)
        return 2
    if options.variants < 1:
        parser.error("--variants must be at least 1")
    modes = {"single": ["-p", "no:xdist"], "-n 2": ["-n", "2"]}
    variants = range(options.variants)
    with tempfile.TemporaryDirectory(prefix="resumable-instructions-") as tmp:
        root = Path(tmp) / "suite"
        cost.make_suite(root, options.tests)
        journal = Path(tmp) / "j" / "journal.jsonl"
        logs = Path(tmp) / "logs"
        print(
            f"{options.tests:,} trivial tests, instructions of the whole process tree, "
            f"means over {options.variants} variants"
        )
        (root / "resumable_clock_probe.py").write_text(CLOCK_PROBE)  # cwd: on sys.path
        header = "| mode | off | on, clock stopped | per test | overhead | range over variants |"
        if options.with_clock:
            header += " on, clock running | per test | overhead |"
        print(header)
        print("|---" * (header.count("|") - 1) + "|")
        for name in options.modes.split(","):
            mode = modes[name.strip()]
            recording = [*mode, f"--resume-journal={journal}"]
            offs, stills = [], []
            for variant in variants:  # off and on of one variant back to back
                offs.append(count([*mode, "-p", "no:resumable"], root, logs, journal, variant))
                stills.append(
                    count([*recording, "-p", "resumable_clock_probe"], root, logs, journal, variant)
                )
            off, still = statistics.fmean(offs), statistics.fmean(stills)
            each = [100 * (s / o - 1) for o, s in zip(offs, stills, strict=True)]
            cells = [f"{off / 1e9:.2f} G", *_cells(still, off, options.tests)]
            cells.append(f"{min(each):+.2f} % to {max(each):+.2f} %")
            if options.with_clock:
                on = count(recording, root, logs, journal, 0)
                cells += _cells(on, offs[0], options.tests)
            print(f"| {name.strip()} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    raise SystemExit(main())
