"""Where the CPU of a resumed ``-n 2`` session goes: the controller and the workers apart.

``cost.py`` measures the whole process tree; this measures each process's own CPU
(``os.times()`` at ``pytest_unconfigure``, through a small plugin) for ``pytest -n 2 --resume``
at 98 % done against the ideal (collect everything, run only the tests without a result), as
the median of alternated pairs, and prints the extra per carried test on the controller and on
the workers.

Usage: ``python benchmarks/per_process.py [--tests 10000] [--pairs 7]``
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import cost

PROBE = """
import os
import pytest

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    t = os.times()
    who = "workers" if os.environ.get("PYTEST_XDIST_WORKER") else "controller"
    with open(os.environ["BENCH_CPU"], "a") as f:
        f.write(f"{who} {t.user + t.system}\\n")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10000)
    parser.add_argument("--pairs", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="resumable-per-process-"))
    try:
        suite = root / "suite"
        ids = cost.make_suite(suite, args.tests)
        done = int(args.tests * 0.98)
        (suite / "bench_cpu.py").write_text(PROBE)
        (suite / "keep.txt").write_text("\n".join(ids[done:]))
        data = cost.partial_journal(suite, ids, done)
        report = root / "cpu.txt"
        journal = suite / "j" / "journal.jsonl"

        def one(kind: str) -> dict[str, float]:
            report.write_text("")
            env = {**cost.env(), "BENCH_CPU": str(report), "PYTHONPATH": str(suite)}
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"]
            argv += ["-p", "bench_cpu"]
            if kind == "ours":
                shutil.rmtree(journal.parent, ignore_errors=True)
                journal.parent.mkdir()
                journal.write_bytes(data)
                argv += ["--resume", f"--resume-journal={journal}"]
            else:
                argv += ["-p", "no:resumable", "-p", "bench_ideal"]
                env["BENCH_KEEP"] = str(suite / "keep.txt")
            subprocess.run(argv, cwd=suite, env=env, stdout=subprocess.DEVNULL, check=False)
            out: dict[str, float] = collections.defaultdict(float)
            for line in report.read_text().splitlines():
                who, seconds = line.split()
                out[who] += float(seconds)
            return out

        got: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        for i in range(args.pairs):
            for kind in ("ideal", "ours") if i % 2 == 0 else ("ours", "ideal"):
                for who, seconds in one(kind).items():
                    got[(kind, who)].append(seconds)
        print(f"{args.pairs} alternated pairs, median; {args.tests - done} run now, {done} carried")
        for who in ("controller", "workers"):
            ideal = statistics.median(got[("ideal", who)])
            ours = statistics.median(got[("ours", who)])
            print(
                f"{who}: ideal {ideal:.3f} s, --resume {ours:.3f} s, "
                f"extra {(ours - ideal) / done * 1e6:+.1f} µs per carried test"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
