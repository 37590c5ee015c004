"""Benchmarks of pytest-resumable (``tox -e bench``; ``--quick`` for a smoke run).

Noisy machines make absolute timings meaningless, so every figure comes from configurations
run side by side in one invocation, alternated, and reported as medians and ratios:

* recording overhead: 10,000 trivial tests with the plugin on vs ``-p no:resumable``, in one
  process and with ``-n 2``; CPU time of the whole process tree (user + sys of all children)
  and wall time, median of alternated pairs;
* scaling: whole recorded runs of 1,000 / 10,000 / 100,000 trivial tests with each tool --
  pytest-resumable, the JSON-status-file and SQLite-row-per-test conftest recipes,
  pytest-checkpoint if installed -- against no plugin, in rotating rounds (``compare.py``);
* resume: a 60-test sleep-based suite (every 10th test slow, one failing) and the 10,000-test
  suite interrupted (SIGINT) at half, then resumed with each tool (``--lf`` for reference)
  vs a full re-run: time, tests run, tests lost or run twice;
* ``--resume`` start-up with a journal of 100,000 and 1,000,000 records vs an empty one;
* ``compact`` of a 1,000,000-record journal: seconds and peak memory.

The tables are printed and, unless ``--quick``, written with a plot to ``docs/benchmarks.md``
and ``docs/benchmarks.png``. Scheduling (``--resume-order``, ``--shard``) is measured by
``benchmarks/scheduling.py``, concurrent compaction by ``benchmarks/stress_compact.py``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import (
    ResumeRow,
    ScalingRow,
    bench_env,
    checkpoint_available,
    make_trivial_suite,
    median,
    resume_savings,
    resume_trivial,
    run_pytest,
    scaling,
)
from pytest_resumable.journal.codec import encode
from pytest_resumable.journal.records import (
    VERSION,
    AttemptRecord,
    EndRecord,
    HeaderRecord,
    ResultRecord,
    RunRecord,
    StartRecord,
)


def run_timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """(CPU seconds of the process tree, wall seconds) of one pytest run."""
    res = run_pytest(cwd, args, bench_env(cwd))
    if res.code not in (0, 1):
        raise SystemExit(f"pytest {args} failed: {res.out[-2000:]}")
    return res.cpu, res.wall


def overhead(tests: int, pairs: int, extra: list[str], label: str) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="resumable-bench-"))
    try:
        make_trivial_suite(root, tests)
        journal = root / "journal.jsonl"
        on = ["--resume-journal", str(journal), *extra]
        off = ["-p", "no:resumable", *extra]
        run_timed(off, root)  # warm the file system cache and .pyc files
        run_timed(on, root)
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
            "from pytest_resumable.journal.rewrite import compact\n"
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


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def overhead_table(rows: list[dict[str, object]]) -> list[str]:
    out = [
        "| recording overhead (plugin on vs `-p no:resumable`) | CPU | wall | pairs |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        out.append(f"| {row['what']} | {row['cpu']:+.1%} | {row['wall']:+.1%} | {row['pairs']} |")
    return out


def scaling_table(rows: list[ScalingRow], limit: float) -> list[str]:
    sizes = sorted({r.tests for r in rows})
    names = list(dict.fromkeys(r.tool for r in rows))
    base = {r.tests: median(r.walls) for r in rows if r.tool == names[0]}
    head = "| tool | " + " | ".join(f"{n:,} tests" for n in sizes) + " |"
    out = [head, "|---|" + "---:|" * len(sizes)]
    for name in names:
        cells = []
        for n in sizes:
            row = next(r for r in rows if r.tool == name and r.tests == n)
            if row.stopped:
                cells.append(f"> {limit:.0f} s (stopped)")
            elif name == names[0]:
                cells.append(f"{median(row.walls):.2f} s")
            else:
                wall = median(row.walls)
                runs = "" if len(row.walls) > 1 else "1 run, "
                per_test = (wall - base[n]) / n * 1e6
                cells.append(
                    f"{wall:.2f} s ({runs}{wall / base[n] - 1:+.1%}, {per_test:+.0f} \u00b5s/test)"
                )
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    rounds = {n: max(len(r.walls) for r in rows if r.tests == n) for n in sizes}
    out.append("")
    out.append(
        "Median wall time of whole recorded runs ("
        + ", ".join(f"{n:,}: {k} rounds" for n, k in rounds.items())
        + "); in brackets: versus pytest with no plugin, and per test."
    )
    return out


def resume_table(rows: list[ResumeRow]) -> list[str]:
    out = [
        "| suite | tool | resume wall | vs full re-run | tests run | had no result | "
        "never run | ran twice | exit |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        full = next(r for r in rows if r.suite == row.suite and r.tool.startswith("full"))
        missing = "-" if row.missing < 0 else str(row.missing)
        repeated = "-" if row.repeated < 0 else str(row.repeated)
        out.append(
            f"| {row.suite} | {row.tool} | {row.wall:.2f} s | {row.wall / full.wall:.0%} | "
            f"{row.ran} | {row.remaining} | {missing} | {repeated} | {row.code} |"
        )
    return out


def plot(
    scale_rows: list[ScalingRow], resume_rows: list[ResumeRow], path: Path, title: str
) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot (tox -e bench installs it)")
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    names = list(dict.fromkeys(r.tool for r in scale_rows))
    base = {r.tests: median(r.walls) for r in scale_rows if r.tool == names[0]}
    for name in names[1:]:
        rows = sorted((r for r in scale_rows if r.tool == name), key=lambda r: r.tests)
        done = [r for r in rows if not r.stopped]
        # seconds added to the run by recording (floored at 1 ms to fit a log scale)
        added = [max(median(r.walls) - base[r.tests], 1e-3) for r in done]
        (line,) = left.plot([r.tests for r in done], added, marker="o", label=name)
        stopped = [r for r in rows if r.stopped]
        if stopped:
            left.scatter(
                [r.tests for r in stopped],
                [max(r.walls) - base[r.tests] for r in stopped],
                marker="^",
                color=line.get_color(),
            )
    sizes = sorted(base)
    if len(sizes) > 1:
        ref = 20e-6  # 20 microseconds per test: a straight line of slope 1 (linear cost)
        left.plot(
            sizes, [ref * n for n in sizes], "k--", lw=0.8, label="20 \u00b5s per test (linear)"
        )
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("trivial tests in the suite")
    left.set_ylabel("seconds added to the run by recording")
    left.set_title("Cost of recording (\u25b2 stopped at the time limit)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    sleep = [r for r in resume_rows if "sleep" in r.suite]
    labels = [f"{r.tool}\n{r.ran} run, {r.missing} never run" for r in sleep]
    colors = ["tab:red" if r.missing else "tab:blue" for r in sleep]
    right.barh(range(len(sleep)), [r.wall for r in sleep], color=colors)
    right.set_yticks(range(len(sleep)), labels, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("wall time of the run after the interruption (s)")
    right.set_title(f"Interrupted at half: {sleep[0].suite if sleep else ''} (red: tests lost)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


SECTIONS = ("overhead", "scaling", "resume", "journal")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few pairs (CI smoke)")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write benchmarks.md and benchmarks.png here (default: docs/ unless --quick)",
    )
    parser.add_argument("--limit", type=float, default=None, help="seconds before a run is stopped")
    parser.add_argument(
        "--only", default="", help=f"comma-separated sections, of: {','.join(SECTIONS)}"
    )
    args = parser.parse_args()
    quick = args.quick
    pairs = args.pairs or (2 if quick else 5)
    tests = 1000 if quick else 10_000
    limit = args.limit or (60.0 if quick else 120.0)
    out_dir = args.out or (None if quick else Path(__file__).resolve().parent.parent / "docs")
    machine = (
        f"{os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().release}, "
        f"Python {sys.version.split()[0]}"
    )
    started = time.monotonic()

    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    lines = [
        f"Machine: {machine}. pytest-checkpoint "
        + ("installed" if checkpoint_available() else "not installed (rows left out)")
        + ".",
        "",
    ]
    scale_rows: list[ScalingRow] = []
    resume_rows: list[ResumeRow] = []
    if "overhead" in sections:
        log("recording overhead")
        over = [
            overhead(tests, pairs, ["-p", "no:xdist"], "single process"),
            overhead(tests, pairs, ["-n", "2"], "-n 2"),
        ]
        lines += [*overhead_table(over), ""]
    if "scaling" in sections:
        log("scaling, each tool recording")
        sizes = [(200, 2), (1000, 2)] if quick else [(1000, 5), (10_000, 3), (100_000, 1)]
        scale_rows = scaling(sizes, limit, log)
        lines += [*scaling_table(scale_rows, limit), ""]
    if "resume" in sections:
        log("resume after an interruption at half")
        resume_rows = resume_savings(0.2 if quick else 1.0, log)
        resume_rows += resume_trivial(1000 if quick else 10_000, log)
        lines += [*resume_table(resume_rows), ""]
    if "journal" in sections:
        log("start-up and compaction")
        other = [startup(10_000 if quick else 100_000, pairs)]
        if not quick:
            other.append(startup(1_000_000, 3))
            # under xdist the durations are read too, to order the work
            other.append(startup(1_000_000, 3, ("-n", "2")))
        other.append(compaction(100_000 if quick else 1_000_000))
        lines += ["| journal | figure |", "|---|---|"]
        for row in other:
            if "seconds" in row:
                lines.append(
                    f"| {row['what']} | {row['seconds']:.2f} s, peak memory "
                    f"{row['peak_mb']:.0f} MB |"
                )
            else:
                lines.append(
                    f"| {row['what']} | {row['extra_s']:+.3f} s wall ({row['pairs']} pairs) |"
                )
    lines[0] += f" Took {time.monotonic() - started:.0f} s."
    text = "\n".join(lines) + "\n"
    print(text)
    if out_dir is not None and sections == set(SECTIONS):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "benchmarks.md").write_text(text)
        command = "python benchmarks/run.py" + (" --quick" if quick else "")
        if plot(scale_rows, resume_rows, out_dir / "benchmarks.png", f"{command} -- {machine}"):
            log(f"wrote {out_dir / 'benchmarks.md'} and {out_dir / 'benchmarks.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
