"""How well the remaining work is spread: ``--resume-order`` under xdist, and ``--shard``.

1. Resume makespan (issue #8): a suite of 200 sleep-based tests with skewed durations (a few
   long ones collected last) is run once to learn durations, then run in collection order
   (``--resume-order none``) with ``-n 4`` and interrupted (SIGINT) once half the tests have a
   result; from copies of that journal the rest is resumed with ``-n 4``, once with
   ``--resume-order duration`` and once with ``none``, alternated ``--repeat`` times. Each
   test logs its start and end; the makespan of the resumed part is compared with its lower
   bound max(longest test, total / 4).
2. Shard balance (issue #9): recorded skewed durations of 1,000 tests split into N = 2, 4, 8
   shards by ``--shard``'s partition and by pytest-split's ``least_duration`` on the same
   durations: slowest shard / max(mean shard, longest test).

Run: ``python benchmarks/scheduling.py`` (``--quick``: fewer, shorter tests).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

CONFTEST = """
import json, os, time, pytest

@pytest.fixture(autouse=True)
def _timing(request):
    start = time.time()
    yield
    with open(os.environ["SCHED_LOG"], "a") as f:
        f.write(json.dumps([request.node.nodeid, start, time.time()]) + "\\n")
"""


def skewed_durations(n: int, scale: float, seed: int = 7) -> list[float]:
    """Mostly short tests, a tail of slower ones, and the 5 longest collected last."""
    rng = random.Random(seed)
    durations = [round(scale * rng.lognormvariate(-3.2, 0.8), 4) for _ in range(n - 5)]
    return durations + [round(scale * x, 4) for x in (1.2, 1.0, 0.9, 0.8, 0.7)]


def make_suite(root: Path, durations: list[float]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conftest.py").write_text(CONFTEST)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly -p no:cacheprovider\n")
    (root / "test_sleep.py").write_text(
        "import time, pytest\n\n"
        f"D = {durations!r}\n\n"
        "@pytest.mark.parametrize('i', range(len(D)))\n"
        "def test_s(i):\n    time.sleep(D[i])\n"
    )


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args]


def read_log(path: Path) -> list[tuple[str, float, float]]:
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]  # type: ignore[misc]


def interrupted_half(root: Path, journal: Path, total: int) -> None:
    env = {**os.environ, "SCHED_LOG": str(root / "first.log")}
    proc = subprocess.Popen(
        pytest_cmd("-n", "4", "--resume-order", "none", "--resume-journal", str(journal)),
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while len(read_log(root / "first.log")) < total // 2 and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)


def resumed_makespan(root: Path, journal: Path, order: str, tag: str) -> dict[str, float]:
    log = root / f"resume-{tag}.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "SCHED_LOG": str(log)}
    subprocess.run(
        pytest_cmd(
            "-n", "4", "--resume", "--resume-order", order, "--resume-journal", str(journal)
        ),
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    entries = read_log(log)
    durations = [end - start for _, start, end in entries]
    makespan = max(e for _, _, e in entries) - min(s for _, s, _ in entries)
    bound = max(max(durations), sum(durations) / 4)
    return {"makespan": makespan, "bound": bound, "tests": len(entries)}


def resume_order_benchmark(repeat: int, quick: bool) -> list[str]:
    tests = 100 if quick else 200
    durations = skewed_durations(tests, 1.0 if quick else 2.0)
    root = Path(tempfile.mkdtemp(prefix="resumable-sched-"))
    try:
        make_suite(root, durations)
        learned = root / "learned.jsonl"
        subprocess.run(
            pytest_cmd("-n", "4", "--resume-journal", str(learned)),
            cwd=root,
            env={**os.environ, "SCHED_LOG": str(root / "learn.log")},
            stdout=subprocess.DEVNULL,
            check=False,
        )
        interrupted_half(root, learned, tests)
        ratios: dict[str, list[float]] = {"duration": [], "none": []}
        spans: dict[str, list[float]] = {"duration": [], "none": []}
        counts = set()
        for i in range(repeat):
            modes = ["duration", "none"] if i % 2 == 0 else ["none", "duration"]
            for mode in modes:
                journal = root / f"copy-{mode}.jsonl"
                shutil.copy(learned, journal)
                got = resumed_makespan(root, journal, mode, mode)
                ratios[mode].append(got["makespan"] / got["bound"])
                spans[mode].append(got["makespan"])
                counts.add(int(got["tests"]))
        lines = [
            f"resumed part ({'/'.join(map(str, sorted(counts)))} of {tests} tests, "
            f"{sum(durations):.1f} s of sleep in all), -n 4, median of {repeat}:"
        ]
        for mode in ("duration", "none"):
            lines.append(
                f"  --resume-order {mode:<8}  makespan {statistics.median(spans[mode]):6.2f} s"
                f"   = {statistics.median(ratios[mode]):.3f} x lower bound"
            )
        return lines
    finally:
        shutil.rmtree(root, ignore_errors=True)


def shard_balance_benchmark() -> list[str]:
    from pytest_resumable.order import partition

    try:
        from pytest_split.algorithms import Algorithms
    except ImportError:
        Algorithms = None
    rng = random.Random(11)
    ids = [f"tests/test_m{i // 50:02d}.py::test_{i}" for i in range(100)]
    durations = {t: round(rng.lognormvariate(-1.0, 0.9), 4) for t in ids}
    lines = ["shard balance, 100 tests with skewed durations: slowest / max(mean, longest)"]
    for n in (2, 4, 8):
        bound = max(sum(durations.values()) / n, max(durations.values()))
        ours = max(sum(durations[t] for t in part) for part in partition(ids, durations, n))
        kind = "mean" if bound > max(durations.values()) else "longest"
        line = f"  N={n} (bound: {kind} {bound:.2f} s):  --shard {ours / bound:.4f}"
        if Algorithms is not None:
            items = [SimpleNamespace(nodeid=t) for t in ids]
            groups = Algorithms["least_duration"].value(n, items, durations)
            theirs = max(g.duration for g in groups)
            line += f"   pytest-split least_duration {theirs / bound:.4f}"
        lines.append(line)
    if Algorithms is None:
        lines.append("  (pytest-split is not installed: pip install pytest-split)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for line in shard_balance_benchmark():
        print(line)
    for line in resume_order_benchmark(repeat, args.quick):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
