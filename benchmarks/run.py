"""Benchmarks of pytest-resumable (``tox -e bench``; ``--quick`` for a smoke run).

Noisy machines make absolute timings meaningless, so every figure is a ratio of two
configurations run side by side, alternated, with the median over several pairs:

* recording overhead: 10,000 trivial tests with the plugin on vs ``-p no:resumable``, in one
  process and with ``-n 2``; CPU time of the whole process tree (user + sys of all children)
  and wall time;
* ``--resume`` start-up with a journal of 100,000 and 1,000,000 records (of other runs) vs an
  empty journal, on a suite of 1 test;
* ``compact`` of a 1,000,000-record journal: seconds and peak memory.

Scheduling (``--resume-order``, ``--shard``) is measured by ``benchmarks/scheduling.py``.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_resumable.journal import (
    VERSION,
    AttemptRecord,
    EndRecord,
    HeaderRecord,
    ResultRecord,
    RunRecord,
    StartRecord,
    encode,
)


def make_trivial_suite(root: Path, tests: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    per_file = 500
    for f in range(max(1, tests // per_file)):
        (root / f"test_m{f:03d}.py").write_text(
            "import pytest\n\n"
            f"@pytest.mark.parametrize('i', range({min(per_file, tests)}))\n"
            "def test_t(i):\n    pass\n"
        )
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly -p no:cacheprovider\n")


def run_timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """(CPU seconds of the process tree, wall seconds) of one pytest run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"pytest {args} failed: {proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def overhead(tests: int, pairs: int, extra: list[str], label: str) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="resumable-bench-"))
    try:
        make_trivial_suite(root, tests)
        journal = root / "journal.jsonl"
        on = ["--resume-journal", str(journal), *extra]
        off = ["-p", "no:resumable", *extra]
        run_timed(off, root)  # warm the file system cache and .pyc files
        cpu_ratios, wall_ratios = [], []
        for i in range(pairs):
            order = [(on, "on"), (off, "off")] if i % 2 == 0 else [(off, "off"), (on, "on")]
            got = {}
            for args, name in order:
                journal.unlink(missing_ok=True)
                got[name] = run_timed(args, root)
            cpu_ratios.append(got["on"][0] / got["off"][0])
            wall_ratios.append(got["on"][1] / got["off"][1])
        return {
            "what": f"recording overhead, {tests:,} trivial tests, {label}",
            "cpu": statistics.median(cpu_ratios) - 1,
            "wall": statistics.median(wall_ratios) - 1,
            "pairs": pairs,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write_big_journal(path: Path, records: int) -> None:
    """Old runs of 1,000 tests each: run, attempt, start+result per test, end."""
    with open(path, "wb") as f:
        f.write(encode(HeaderRecord(VERSION, 0.0)))
        written = 1
        while written < records:
            run = secrets.token_hex(4)
            lines = [encode(RunRecord(run, 1.0)), encode(AttemptRecord(run, 1, 1.0, 1, "h"))]
            for t in range(1000):
                test = f"tests/test_mod_{t // 100}.py::test_case[{t}]"
                lines.append(encode(StartRecord(run, 1, test)))
                lines.append(
                    encode(
                        ResultRecord(
                            run, 1, test, "passed", 0.001234, line=10, file_hash="0123456789abcdef"
                        )
                    )
                )
            lines.append(encode(EndRecord(run, 1, 2.0, 0, 1000, 1000, True)))
            f.write(b"".join(lines))
            written += len(lines)


def startup(records: int, pairs: int, extra: tuple[str, ...] = ()) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="resumable-bench-"))
    try:
        make_trivial_suite(root, 1)
        big, empty = root / "big.jsonl", root / "empty.jsonl"
        write_big_journal(big, records)
        deltas = []
        for i in range(pairs):
            got = {}
            order = [big, empty] if i % 2 == 0 else [empty, big]
            for journal in order:
                if journal == empty:
                    empty.unlink(missing_ok=True)
                # no automatic compaction: every pair must read the same big journal
                args = [
                    "--resume",
                    "--resume-journal",
                    str(journal),
                    "-o",
                    "resume_compact_bytes=0",
                ]
                got[journal] = run_timed([*args, *extra], root)[1]
            deltas.append(got[big] - got[empty])
        size = big.stat().st_size
        return {
            "what": f"--resume start-up, {records:,}-record journal ({size / 1e6:.0f} MB)"
            + (f", {' '.join(extra)}" if extra else ""),
            "extra_s": statistics.median(deltas),
            "pairs": pairs,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compaction(records: int) -> dict[str, object]:
    """``pytest-resumable compact`` of a journal of old complete runs: time and peak memory of
    the compacting process (its own ru_maxrss)."""
    root = Path(tempfile.mkdtemp(prefix="resumable-bench-"))
    try:
        big = root / "journal.jsonl"
        write_big_journal(big, records)
        size = big.stat().st_size
        code = (
            "import resource, sys, time\n"
            "from pathlib import Path\n"
            "from pytest_resumable.compact import compact\n"
            "t = time.perf_counter()\n"
            "r = compact(Path(sys.argv[1]), keep_runs=3)\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
            " r.after)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(big)], capture_output=True, text=True, check=True
        )
        seconds, maxrss_kb, after = out.stdout.split()
        return {
            "what": f"compact, {records:,}-record journal ({size / 1e6:.0f} MB -> "
            f"{int(after) / 1e6:.1f} MB)",
            "seconds": float(seconds),
            "peak_mb": int(maxrss_kb) / 1024,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few pairs (CI smoke)")
    parser.add_argument("--pairs", type=int, default=None)
    args = parser.parse_args()
    pairs = args.pairs or (2 if args.quick else 5)
    tests = 1000 if args.quick else 10_000
    rows = [
        overhead(tests, pairs, ["-p", "no:xdist"], "single process"),
        overhead(tests, pairs, ["-n", "2"], "-n 2"),
        startup(10_000 if args.quick else 100_000, pairs),
    ]
    if not args.quick:
        rows.append(startup(1_000_000, 3))
        # under xdist the durations are read too, to order the work
        rows.append(startup(1_000_000, 3, ("-n", "2")))
    rows.append(compaction(100_000 if args.quick else 1_000_000))
    print(
        f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"median of alternated pairs\n"
    )
    for row in rows:
        if "cpu" in row:
            print(
                f"{row['what']:<58} CPU {row['cpu']:+.1%}   wall {row['wall']:+.1%}"
                f"   ({row['pairs']} pairs)"
            )
        elif "seconds" in row:
            print(f"{row['what']:<58} {row['seconds']:.2f} s, peak memory {row['peak_mb']:.0f} MB")
        else:
            print(f"{row['what']:<58} +{row['extra_s']:.3f} s wall   ({row['pairs']} pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
