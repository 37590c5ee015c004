"""What resuming and recording cost, in one table from one run (issue #17; SPEC §7).

Every figure is CPU time (user + sys) of the whole process tree (pytest and its xdist
workers, via ``RUSAGE_CHILDREN``) or wall time, as the median of alternated pairs, so machine
noise hits both sides alike:

* recording overhead: N trivial tests, plugin on vs ``-p no:resumable``, single process
  (``-p no:xdist`` both sides) and ``-n 2``;
* resume at 50 % and 98 % done: ``pytest --resume`` vs the ideal -- collect everything, run only
  the tests without a result (the rest deselected by a 10-line plugin), no pytest-resumable --
  and the CPU per carried test above the ideal;
* ``--resume`` start-up with a journal of 100,000 and 1,000,000 records of other runs vs an empty
  journal, on a 10-test suite, single and ``-n 2``; peak RSS of the controller.

With ``--concurrent``, the single-process recording overhead also from pairs whose two sides
run at the same time, each pinned to a CPU of its own (:func:`run_pinned_pair`), and the same
way the floor: a 10-line plugin that only makes the two ``O_APPEND`` writes a test the journal
needs (a start line, a result line of the real size), vs off, and recording vs that floor.

Usage: ``python benchmarks/cost.py [--tests 10000,100000] [--pairs 5]
[--only overhead,resume,startup] [--shares 0.5,0.98] [--modes single,-n 2] [--concurrent]``;
the CPU per carried test is a small difference of two large totals: measure it alone with
more pairs, ``--only resume --shares 0.98 --pairs 15``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_resumable.journal.codec import encode, passed_line, start_line, start_prefix
from pytest_resumable.journal.records import VERSION, AttemptRecord, HeaderRecord, RunRecord

IDEAL_PLUGIN = """
import os, pytest
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    keep = set(open(os.environ["BENCH_KEEP"]).read().split("\\n"))
    chosen = [i for i in items if i.nodeid in keep]
    config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in keep])
    items[:] = chosen
"""

#: the floor of recording (SPEC §5: one ``write`` of a whole line per record, a start record
#: before the test body and the result before the next report): the two writes a passing test
#: costs and nothing else; ``{start!r}`` and ``{result!r}`` are lines of the real layout and size
FLOOR_PLUGIN = """
import os
_START = {start!r}
_RESULT = {result!r}
_fd = os.open(os.environ["BENCH_FLOOR"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def pytest_runtest_logstart(nodeid):
    os.write(_fd, _START)
def pytest_runtest_logreport(report):
    if report.when == "teardown":
        os.write(_fd, _RESULT)
"""


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    out.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed user's plugin is compiled once
    return out


def pytest_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def check_exit(args: list[str], returncode: int, stderr: str) -> None:
    if returncode not in (0, 5):
        raise SystemExit(f"pytest {' '.join(args)} failed ({returncode}): {stderr[-2000:]}")


def run(
    args: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """(CPU of the process tree, wall, peak RSS in KiB) of one pytest run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        pytest_command(args),
        cwd=cwd,
        env={**env(), **(extra_env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    check_exit(args, proc.returncode, proc.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, after.ru_maxrss


#: one side of a pinned pair: pytest's arguments, its directory, extra environment
Side = tuple[list[str], Path, dict[str, str]]


def run_pinned_pair(a: Side, b: Side, swap: bool) -> tuple[float, float]:
    """CPU (user + sys) of two single-process pytest runs made at the same time, each pinned
    to a CPU of its own (CPUs 0 and 1, swapped when ``swap``). Running both sides at once
    exposes them to the same state of a shared machine: on this project's 2-CPU VM two runs
    of the same command made this way differ by ~3 % (standard deviation), one after the
    other by ~10 %."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        raise SystemExit("--concurrent needs two CPUs")
    if swap:
        cpus.reverse()
    procs = []
    for (args, cwd, extra), cpu in zip((a, b), cpus, strict=True):
        procs.append(
            subprocess.Popen(
                pytest_command(args),
                cwd=cwd,
                env={**env(), **extra},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu}),
            )
        )
    cpu_times = []
    for (args, _, _), proc in zip((a, b), procs, strict=True):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        check_exit(args, proc.returncode, stderr)
        cpu_times.append(usage.ru_utime + usage.ru_stime)
    return cpu_times[0], cpu_times[1]


def make_suite(root: Path, tests: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    body = (
        f"import pytest\n\n@pytest.mark.parametrize('i', range({tests}))\n"
        "def test_t(i):\n    pass\n"
    )
    (root / "test_trivial.py").write_text(body)
    (root / "bench_ideal.py").write_text(IDEAL_PLUGIN)
    ids = [f"test_trivial.py::test_t[{i}]" for i in range(tests)]
    digest = hashlib.blake2b(body.encode(), digest_size=8).hexdigest()
    prefix = start_prefix("0123abcd", 1)  # a run id of the real length
    last = ids[-1]
    floor = FLOOR_PLUGIN.format(
        start=start_line(prefix, last),
        result=passed_line("0123abcd", 1, last, 0.000123, 4, digest),
    )
    (root / "bench_floor.py").write_text(floor)
    return ids


def partial_journal(root: Path, ids: list[str], done: int) -> bytes:
    """A journal whose one unfinished run has results for the first ``done`` tests."""
    digest = hashlib.blake2b((root / "test_trivial.py").read_bytes(), digest_size=8).hexdigest()
    lines = [encode(HeaderRecord(VERSION, 1.0)), encode(RunRecord("bench001", 1.0))]
    lines.append(encode(AttemptRecord("bench001", 1, 1.0, 1, "bench")))
    prefix = start_prefix("bench001", 1)
    for test in ids[:done]:
        lines.append(start_line(prefix, test))
        lines.append(passed_line("bench001", 1, test, 0.0004, 3, digest))
    return b"".join(lines)


def pairs_of(n: int, a: callable, b: callable) -> list[tuple[tuple[float, float, int], ...]]:  # type: ignore[valid-type]
    out = []
    for i in range(n):
        if i % 2:
            y, x = b(), a()
        else:
            x, y = a(), b()
        out.append((x, y))
    return out


def ratio(pairs: list, index: int) -> float:
    return statistics.median(y[index] / x[index] for x, y in pairs)


def overhead(root: Path, pairs: int, mode: list[str]) -> dict[str, float]:
    journal = root / "j" / "journal.jsonl"

    def on() -> tuple[float, float, int]:
        shutil.rmtree(journal.parent, ignore_errors=True)
        return run([*mode, f"--resume-journal={journal}"], root)

    def off() -> tuple[float, float, int]:
        return run([*mode, "-p", "no:resumable"], root)

    got = pairs_of(pairs, off, on)
    return {"cpu": ratio(got, 0) - 1, "wall": ratio(got, 1) - 1}


def concurrent_ratio(root: Path, pairs: int, first: Side, second: Side) -> float:
    """The median CPU ratio minus one of ``second`` over ``first``, each pair run at the same
    time (:func:`run_pinned_pair`); every journal of the pair's sides starts empty."""
    ratios = []
    for i in range(pairs):
        for side in ("ja", "jb", "jf"):
            shutil.rmtree(root / side, ignore_errors=True)
        (root / "jf").mkdir()
        a, b = run_pinned_pair(first, second, swap=bool(i % 2))
        ratios.append(b / a)
    return statistics.median(ratios) - 1


def sides(root: Path, previous: str | None = None) -> dict[str, Side]:
    """Single-process sides of a pinned pair: ``off``, ``floor`` (:data:`FLOOR_PLUGIN`),
    ``on`` (recording) and, with ``previous``, ``previous`` (that ``src/`` recording)."""
    mode = ["-p", "no:xdist"]
    off = [*mode, "-p", "no:resumable"]
    floor_env = {"BENCH_FLOOR": str(root / "jf" / "journal.jsonl"), "PYTHONPATH": str(root)}
    out: dict[str, Side] = {
        "off": (off, root, {}),
        "floor": ([*off, "-p", "bench_floor"], root, floor_env),
        "on": ([*mode, f"--resume-journal={root / 'jb' / 'journal.jsonl'}"], root, {}),
    }
    if previous is not None:
        journal = f"--resume-journal={root / 'ja' / 'journal.jsonl'}"
        out["previous"] = ([*mode, journal], root, {"PYTHONPATH": previous})
    return out


def previous_release(root: Path, pairs: int, mode: list[str], src: str) -> dict[str, float]:
    """Recording with this code vs with another checkout's ``src`` (the previous release),
    alternated: the ratio says whether recording got cheaper or dearer."""
    journal = root / "j" / "journal.jsonl"

    def recording(extra: dict[str, str]) -> tuple[float, float, int]:
        shutil.rmtree(journal.parent, ignore_errors=True)
        return run([*mode, f"--resume-journal={journal}"], root, extra)

    got = pairs_of(pairs, lambda: recording({"PYTHONPATH": src}), lambda: recording({}))
    return {"cpu": ratio(got, 0) - 1, "wall": ratio(got, 1) - 1}


def resume(root: Path, ids: list[str], pairs: int, mode: list[str], done: int) -> dict[str, float]:
    journal = root / "j" / "journal.jsonl"
    data = partial_journal(root, ids, done)
    keep = root / "keep.txt"
    keep.write_text("\n".join(ids[done:]))

    def ours() -> tuple[float, float, int]:
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.write_bytes(data)
        return run([*mode, "--resume", f"--resume-journal={journal}"], root)

    def ideal() -> tuple[float, float, int]:
        return run(
            [*mode, "-p", "no:resumable", "-p", "bench_ideal"],
            root,
            {"BENCH_KEEP": str(keep), "PYTHONPATH": str(root)},
        )

    got = pairs_of(pairs, ideal, ours)
    extra = statistics.median(y[0] - x[0] for x, y in got)
    return {
        "ratio_cpu": ratio(got, 0),
        "ratio_wall": ratio(got, 1),
        "us_per_carried": extra / done * 1e6,
    }


def big_journal(path: Path, records: int) -> None:
    """``records`` start and result lines of 100 complete runs of other tests."""
    with open(path, "wb") as f:
        f.write(encode(HeaderRecord(VERSION, 1.0)))
        per_run = records // 100
        for r in range(100):
            run_id = f"old{r:05d}"
            f.write(encode(RunRecord(run_id, 1.0 + r)))
            f.write(encode(AttemptRecord(run_id, 1, 1.0 + r, 1, "x")))
            prefix = start_prefix(run_id, 1)
            for i in range(per_run // 2):
                test = f"tests/test_old_{i % 500}.py::test_case[{i}]"
                f.write(start_line(prefix, test))
                f.write(passed_line(run_id, 1, test, 0.01, 7, "0123456789abcdef"))


def startup(root: Path, pairs: int, mode: list[str], records: int) -> dict[str, float]:
    small = root / "small"
    make_suite(small, 10)
    big = root / f"big-{records}.jsonl"
    if not big.exists():
        big_journal(big, records)
    empty = root / "empty.jsonl"

    # no automatic compaction at the end (it is measured by `compact`): start-up only
    quiet = ["-o", "resume_compact_bytes=0"]

    def with_big() -> tuple[float, float, int]:
        work = small / "j.jsonl"
        shutil.copyfile(big, work)
        return run([*mode, *quiet, "--resume", f"--resume-journal={work}"], small)

    def with_empty() -> tuple[float, float, int]:
        empty.unlink(missing_ok=True)
        return run([*mode, *quiet, "--resume", f"--resume-journal={empty}"], small)

    got = pairs_of(pairs, with_empty, with_big)
    return {
        "extra_wall": statistics.median(y[1] - x[1] for x, y in got),
        "extra_cpu": statistics.median(y[0] - x[0] for x, y in got),
        "rss_mb": max(y[2] for _, y in got) / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tests", default="10000", help="suite sizes, comma-separated: two columns each"
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--only", default="overhead,resume,startup")
    parser.add_argument(
        "--shares", default="0.5,0.98", help="resume rows: the shares already done, comma-separated"
    )
    parser.add_argument("--modes", default="single,-n 2", help="columns: 'single', '-n 2', or both")
    parser.add_argument(
        "--previous", metavar="SRC", help="src/ of the previous release: compare recording"
    )
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="also the single-process recording overhead, the floor (two writes a test, "
        "nothing else) and recording vs that floor, from pairs run at the same time, each "
        "side pinned to a CPU of its own (less noise on a shared machine)",
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))
    sizes = [int(n) for n in args.tests.split(",")]
    root = Path(tempfile.mkdtemp(prefix="resumable-cost-"))
    all_modes = {"single": ["-p", "no:xdist"], "-n 2": ["-n", "2"]}
    modes = {name: all_modes[name] for name in args.modes.split(",")}
    columns = [(n, name, mode) for n in sizes for name, mode in modes.items()]

    def row(label: str, cells: list[str]) -> None:
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)

    try:
        suites = {n: make_suite(root / f"suite-{n}", n) for n in sizes}
        print(f"{args.pairs} alternated pairs, median; CPU = user + sys of the process tree")
        row("measure", [f"{n:,} tests, {name}" for n, name, _ in columns])
        print("|---" * (len(columns) + 1) + "|")
        if "overhead" in parts:
            cells = []
            for n, _, mode in columns:
                r = overhead(root / f"suite-{n}", args.pairs, mode)
                cells.append(f"{r['cpu']:+.1%} ({r['wall']:+.1%})")
            row("recording overhead, CPU (wall)", cells)

        def pinned_cells(first: str, second: str) -> list[str]:
            # single-process columns only: a -n 2 side needs both CPUs for itself
            cells = []
            for n, name, _ in columns:
                if name != "single":
                    cells.append("")
                    continue
                suite = root / f"suite-{n}"
                both = sides(suite, args.previous)
                got = concurrent_ratio(suite, args.pairs, both[first], both[second])
                cells.append(f"{got:+.1%}")
            return cells

        if args.concurrent:
            row("recording overhead, CPU, both sides at once (pinned)", pinned_cells("off", "on"))
            row(
                "the floor (two O_APPEND writes a test, nothing else) vs off, both at once "
                "(pinned)",
                pinned_cells("off", "floor"),
            )
            row("recording vs the floor, both at once (pinned)", pinned_cells("floor", "on"))
        if args.previous:
            cells = []
            for n, _, mode in columns:
                r = previous_release(root / f"suite-{n}", args.pairs, mode, args.previous)
                cells.append(f"{r['cpu']:+.1%} ({r['wall']:+.1%})")
            row("recording, this code vs the previous release, CPU (wall)", cells)
            if args.concurrent:
                row(
                    "recording, this code vs the previous release, both at once (pinned)",
                    pinned_cells("previous", "on"),
                )
        if "resume" in parts:
            for share in (float(x) for x in args.shares.split(",")):
                got = [
                    resume(root / f"suite-{n}", suites[n], args.pairs, mode, int(n * share))
                    for n, _, mode in columns
                ]
                row(
                    f"resume at {share:.0%} done vs ideal, CPU (wall)",
                    [f"{r['ratio_cpu']:.2f}x ({r['ratio_wall']:.2f}x)" for r in got],
                )
                row(
                    f"CPU per carried test at {share:.0%}",
                    [f"{r['us_per_carried']:.1f} µs" for r in got],
                )
        if "startup" in parts:
            for records in (100_000, 1_000_000):
                # start-up does not depend on the suite's size: measured once per mode
                once = [startup(root, args.pairs, mode, records) for mode in modes.values()]
                row(
                    f"--resume start-up, {records:,}-record journal (10-test suite): "
                    "extra wall (CPU), peak RSS",
                    [
                        f"+{r['extra_wall']:.2f} s (+{r['extra_cpu']:.2f} s), {r['rss_mb']:.0f} MB"
                        for r in once
                    ]
                    * len(sizes),
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
