"""Stress: sessions append to one journal while another process compacts it in a loop.

Every appender writes its own run of numbered results; at the end every (run, test) must be
in the journal exactly once: nothing lost to a compaction that replaced the file under a
writer, nothing doubled. Run: ``python benchmarks/stress_compact.py --compactions 100``.
Exit status 0 when nothing was lost or doubled, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pytest_resumable.journal.rewrite import compact

APPENDER = """
import sys, time
from pathlib import Path
from pytest_resumable.journal.records import AttemptRecord, ResultRecord, RunRecord
from pytest_resumable.journal.writer import JournalWriter
path, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
w = JournalWriter(path, fsync="never", idle=0.002, max_hold=0.02)
w.append(RunRecord(name, time.time(), name))
w.append(AttemptRecord(name, 1, time.time()))
for i in range(count):
    w.append(ResultRecord(name, 1, f"t::{i}", "passed", 0.001))
    if i % 50 == 0:
        time.sleep(0.003)
w.close()
"""


def stress(path: Path, appenders: int, records: int, compactions: int) -> dict[str, int]:
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), f"w{i}", str(records)])
        for i in range(appenders)
    ]
    done = 0
    try:
        while any(p.poll() is None for p in procs) or done < compactions:
            if path.exists():
                compact(path, keep_runs=0)
                done += 1
                # filelock polls (it is not fair): a compactor that takes the lock again at
                # once could starve the appenders; no real compactor runs back to back
                time.sleep(0.01)
    finally:
        for p in procs:
            p.wait(timeout=600)
    keys: Counter[tuple[str, str]] = Counter()
    for line in path.read_bytes().splitlines():
        obj = json.loads(line)
        if obj["type"] == "result":
            keys[(obj["run"], obj["test"])] += 1
    expected = {(f"w{i}", f"t::{n}") for i in range(appenders) for n in range(records)}
    return {
        "compactions": done,
        "appenders_failed": sum(1 for p in procs if p.returncode != 0),
        "records": appenders * records,
        "lost": len(expected - set(keys)),
        "doubled": sum(1 for k, n in keys.items() if n > 1),
        "unexpected": len(set(keys) - expected),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appenders", type=int, default=4)
    parser.add_argument("--records", type=int, default=5000, help="results per appender")
    parser.add_argument("--compactions", type=int, default=100, help="at least this many")
    args = parser.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        result = stress(Path(tmp) / "journal.jsonl", args.appenders, args.records, args.compactions)
    print(
        f"{result['compactions']} compactions while {args.appenders} processes appended "
        f"{result['records']} results: lost {result['lost']}, doubled {result['doubled']}, "
        f"unexpected {result['unexpected']}, appenders failed {result['appenders_failed']} "
        f"({time.monotonic() - start:.1f} s)"
    )
    bad = result["lost"] or result["doubled"] or result["unexpected"] or result["appenders_failed"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
