"""pytest-resumable side by side with what users try first (issue #7).

Used by ``benchmarks/run.py``; not a script of its own. Three measurements:

* :func:`scaling` -- wall time of whole runs of 1k / 10k / 100k trivial tests, each tool
  recording, alternated in rounds (the order rotates every round), median per size;
* :func:`resume_savings` -- a suite interrupted (SIGINT) at half of its tests, then resumed with
  each tool: what the resume costs, how many tests it ran, and whether those were exactly the
  ones without a result;
* the recipes themselves (:data:`RECIPES`), written as plugins so one suite serves every tool.

The alternatives:

* **JSON status file**: a ``conftest.py`` that rewrites a JSON file of every result so far after
  each test and, when asked to resume, deselects the tests listed as passed (the recipe of blog
  posts and Q&A answers);
* **SQLite row per test**: the same with ``INSERT OR REPLACE`` + ``COMMIT`` per test (SQLite's
  defaults: rollback journal, ``synchronous=FULL``);
* **pytest-checkpoint** (PyPI), if it installs: ``--lap-out`` + ``--collect-behavior deselect``;
* **--lf** for reference: no recording cost, and it cannot resume -- after an interrupted run it
  re-runs the last failures only (or everything when nothing failed).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RECIPES = {
    "bench_json_status.py": '''
"""Recipe: rewrite a JSON file of all results after every test; on resume deselect passed."""
import json, os

_PATH = os.environ["BENCH_STATE"]
_results = {}


def pytest_collection_modifyitems(config, items):
    if os.environ.get("BENCH_RESUME") and os.path.exists(_PATH):
        with open(_PATH) as f:
            _results.update(json.load(f))
        done = [i for i in items if _results.get(i.nodeid) == "passed"]
        items[:] = [i for i in items if _results.get(i.nodeid) != "passed"]
        config.hook.pytest_deselected(items=done)


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _results[report.nodeid] = report.outcome
        with open(_PATH, "w") as f:
            json.dump(_results, f)
''',
    "bench_sqlite_status.py": '''
"""Recipe: one SQLite row per test, committed at once; on resume deselect passed."""
import os, sqlite3

_db = sqlite3.connect(os.environ["BENCH_STATE"])
_db.execute("CREATE TABLE IF NOT EXISTS results (nodeid TEXT PRIMARY KEY, outcome TEXT)")
_db.commit()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("BENCH_RESUME"):
        passed = {n for (n,) in _db.execute("SELECT nodeid FROM results WHERE outcome='passed'")}
        done = [i for i in items if i.nodeid in passed]
        items[:] = [i for i in items if i.nodeid not in passed]
        config.hook.pytest_deselected(items=done)


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (report.nodeid, report.outcome))
        _db.commit()
''',
}


def bench_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of every measured run: the recipes importable, and bytecode caching on
    (a user's normal setting; with ``PYTHONDONTWRITEBYTECODE`` every run would compile the
    plugin's modules again, ~0.2 s that no installed user pays)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root / "plugins"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env.update(extra)
    return env


@dataclass
class Tool:
    name: str
    args: Callable[[Path], list[str]]  # recording run, given the suite root
    resume: Callable[[Path], list[str]]  # the resuming run
    env: dict[str, str] = field(default_factory=dict)
    resume_env: dict[str, str] = field(default_factory=dict)
    state: tuple[str, ...] = ()  # files (relative to the root) that hold its state

    def reset(self, root: Path) -> None:
        for name in self.state:
            p = root / name
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def checkpoint_available() -> bool:
    return importlib.util.find_spec("pytest_checkpoint") is not None


def tools(*, include_lf: bool = True) -> list[Tool]:
    off = ["-p", "no:resumable"]
    found = [
        Tool("pytest (no plugin)", lambda r: off, lambda r: off),
        Tool(
            "pytest-resumable",
            lambda r: ["--resume-journal", str(r / "journal.jsonl")],
            lambda r: ["--resume", "--resume-journal", str(r / "journal.jsonl")],
            state=("journal.jsonl", "journal.jsonl.lock"),
        ),
        Tool(
            "JSON status file (recipe)",
            lambda r: [*off, "-p", "bench_json_status"],
            lambda r: [*off, "-p", "bench_json_status"],
            env={"BENCH_STATE": "status.json"},
            resume_env={"BENCH_RESUME": "1"},
            state=("status.json",),
        ),
        Tool(
            "SQLite row per test (recipe)",
            lambda r: [*off, "-p", "bench_sqlite_status"],
            lambda r: [*off, "-p", "bench_sqlite_status"],
            env={"BENCH_STATE": "status.db"},
            resume_env={"BENCH_RESUME": "1"},
            state=("status.db", "status.db-journal"),
        ),
    ]
    if checkpoint_available():
        lap = ["-p", "pytest_checkpoint", "--lap-out", "lap.json", "--collect-behavior", "deselect"]
        found.append(
            Tool(
                "pytest-checkpoint 0.1",
                lambda r: [*off, *lap],
                lambda r: [*off, *lap],
                state=("lap.json",),
            )
        )
    if include_lf:
        found.append(
            Tool(
                "--lf (cannot resume)",
                lambda r: off,
                lambda r: [*off, "--lf"],
                state=(".pytest_cache",),
            )
        )
    return found


@dataclass
class Run:
    cpu: float
    wall: float
    code: int | None  # None: stopped at the time limit
    out: str


def run_pytest(
    root: Path, args: list[str], env: dict[str, str], timeout: float | None = None
) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        code = None
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if code not in (None, 0, 1, 2):
        raise SystemExit(f"pytest {' '.join(args)} in {root} exited {code}:\n{out[-3000:]}")
    return Run(cpu, wall, code, out)


def write_recipes(root: Path) -> None:
    (root / "plugins").mkdir(parents=True, exist_ok=True)
    for name, text in RECIPES.items():
        (root / "plugins" / name).write_text(text.lstrip())


def make_trivial_suite(root: Path, tests: int, *, interrupt_at_half: bool = False) -> None:
    """``tests`` trivial tests in files of 500; with ``interrupt_at_half`` one more test, collected
    after the first half, that sends SIGINT to its own process when ``BENCH_INTERRUPT`` is set."""
    root.mkdir(parents=True, exist_ok=True)
    per_file = min(500, tests)
    files = max(1, tests // per_file)
    for f in range(files):
        (root / f"test_m{f:03d}.py").write_text(
            "import pytest\n\n"
            f"@pytest.mark.parametrize('i', range({per_file}))\n"
            "def test_t(i):\n    pass\n"
        )
    if interrupt_at_half:
        # "test_m009.py" < "test_m009z..." < "test_m010.py": collected after half the files
        (root / f"test_m{files // 2 - 1:03d}z_interrupt.py").write_text(INTERRUPT_TEST)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly\n")
    write_recipes(root)


INTERRUPT_TEST = """
import os, signal, time

def test_interrupt_here():
    if os.environ.get("BENCH_INTERRUPT"):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
"""


def make_sleep_suite(root: Path, scale: float) -> int:
    """60 sleep-based tests (every 10th slow), one failing early, interrupted at the 31st when
    ``BENCH_INTERRUPT`` is set. Each test that completes appends its id to ``BENCH_RAN``."""
    root.mkdir(parents=True, exist_ok=True)
    durations = [round(scale * (0.5 if i % 10 == 9 else 0.05), 4) for i in range(60)]
    (root / "test_sleep.py").write_text(
        "import os, signal, time, pytest\n\n"
        f"D = {durations!r}\n\n"
        "@pytest.mark.parametrize('i', range(len(D)))\n"
        "def test_s(i):\n"
        "    time.sleep(D[i])\n"
        "    if i == 30 and os.environ.get('BENCH_INTERRUPT'):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(5)\n"
        "    with open(os.environ['BENCH_RAN'], 'a') as f:\n"
        "        f.write(f'{i}\\n')\n"
        "    assert i != 5, 'the one failing test'\n"
    )
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly\n")
    write_recipes(root)
    return len(durations)


# --------------------------------------------------------------------------------------------
# scaling: whole recorded runs at 1k / 10k / 100k tests


@dataclass
class ScalingRow:
    tests: int
    tool: str
    walls: list[float]
    cpus: list[float]
    stopped: bool  # at least one run hit the time limit


def scaling(
    sizes: list[tuple[int, int]], limit: float, log: Callable[[str], None]
) -> list[ScalingRow]:
    """``sizes``: (tests, rounds). Each round runs every tool once, in an order rotated by one
    each round; a tool that hits ``limit`` seconds (or took a quarter of it) is not run again
    at that size."""
    rows: list[ScalingRow] = []
    for tests, rounds in sizes:
        root = Path(tempfile.mkdtemp(prefix="resumable-bench-"))
        try:
            make_trivial_suite(root, tests)
            recorders = tools(include_lf=False)
            env = bench_env(root)
            run_pytest(root, ["-p", "no:resumable"], env)  # warm caches and .pyc files
            run_pytest(root, ["--resume-journal", str(root / "warm.jsonl")], env)
            got = {t.name: ScalingRow(tests, t.name, [], [], False) for t in recorders}
            for r in range(rounds):
                k = r % len(recorders)
                for tool in recorders[k:] + recorders[:k]:
                    row = got[tool.name]
                    if row.stopped or (row.walls and row.walls[0] > limit / 4):
                        continue  # stopped, or so slow that one run says enough
                    tool.reset(root)
                    res = run_pytest(root, tool.args(root), bench_env(root, **tool.env), limit)
                    if res.code is None:
                        row.stopped = True
                        row.walls.append(res.wall)
                        log(f"  {tests:>7,} tests  {tool.name:<30} stopped at {limit:.0f} s")
                        continue
                    if res.code != 0:
                        raise SystemExit(f"{tool.name} failed at {tests} tests:\n{res.out[-2000:]}")
                    row.walls.append(res.wall)
                    row.cpus.append(res.cpu)
                    log(f"  {tests:>7,} tests  {tool.name:<30} {res.wall:7.2f} s")
            rows.extend(got.values())
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------------------------
# resume: interrupted at half, then resumed by each tool


@dataclass
class ResumeRow:
    suite: str
    tool: str
    wall: float
    ran: int  # tests executed by the resuming run
    remaining: int  # tests without a result after the interruption
    missing: int  # tests that never completed (in either run)
    repeated: int  # tests that completed in the first run and ran again
    code: int | None


def _ran(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def resume_savings(scale: float, log: Callable[[str], None]) -> list[ResumeRow]:
    """The sleep suite: interrupted at test 31 of 60, resumed with each tool; and a full re-run
    (no plugin) for reference."""
    rows: list[ResumeRow] = []
    root = Path(tempfile.mkdtemp(prefix="resumable-bench-"))
    try:
        total = make_sleep_suite(root, scale)
        everything = {str(i) for i in range(total)}
        ran_file = root / "ran.txt"
        for tool in tools()[1:]:  # the tool-less run is the full re-run at the end
            tool.reset(root)
            ran_file.unlink(missing_ok=True)
            env = bench_env(root, BENCH_RAN=str(ran_file), **tool.env)
            first = run_pytest(root, tool.args(root), {**env, "BENCH_INTERRUPT": "1"})
            if first.code != 2:
                raise SystemExit(f"{tool.name}: the run was not interrupted:\n{first.out[-2000:]}")
            done = _ran(ran_file)
            ran_file.unlink()
            res = run_pytest(root, tool.resume(root), {**env, **tool.resume_env})
            now = _ran(ran_file)
            rows.append(
                ResumeRow(
                    f"{total} sleep-based tests",
                    tool.name,
                    res.wall,
                    sum(now.values()),
                    len(everything - set(done)),
                    len(everything - set(done) - set(now)),
                    sum(1 for t in now if t in done),
                    res.code,
                )
            )
            log(f"  resume  {tool.name:<30} {res.wall:6.2f} s, ran {sum(now.values())}")
        ran_file.unlink(missing_ok=True)
        full = run_pytest(root, ["-p", "no:resumable"], bench_env(root, BENCH_RAN=str(ran_file)))
        rows.append(
            ResumeRow(
                f"{total} sleep-based tests",
                "full re-run (no plugin)",
                full.wall,
                len(_ran(ran_file)),
                total,
                0,
                0,
                full.code,
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def resume_trivial(tests: int, log: Callable[[str], None]) -> list[ResumeRow]:
    """``tests`` trivial tests interrupted at half; resume with each recording tool vs a full
    re-run: what reading the state and deselecting costs at that size."""
    rows: list[ResumeRow] = []
    root = Path(tempfile.mkdtemp(prefix="resumable-bench-"))
    try:
        make_trivial_suite(root, tests, interrupt_at_half=True)
        env0 = bench_env(root)
        run_pytest(root, ["-p", "no:resumable"], env0)  # warm
        for tool in tools(include_lf=False)[1:]:
            tool.reset(root)
            env = bench_env(root, **tool.env)
            first = run_pytest(root, tool.args(root), {**env, "BENCH_INTERRUPT": "1"}, 600)
            if first.code != 2:
                raise SystemExit(f"{tool.name}: the run was not interrupted:\n{first.out[-2000:]}")
            res = run_pytest(root, tool.resume(root), {**env, **tool.resume_env}, 600)
            ran = _count_run(res.out)
            rows.append(
                ResumeRow(
                    f"{tests:,} trivial tests",
                    tool.name,
                    res.wall,
                    ran,
                    tests // 2 + 1,
                    -1,
                    -1,
                    res.code,
                )
            )
            log(f"  resume  {tool.name:<30} {res.wall:6.2f} s, ran {ran}")
        full = run_pytest(root, ["-p", "no:resumable"], env0)
        rows.append(
            ResumeRow(
                f"{tests:,} trivial tests",
                "full re-run (no plugin)",
                full.wall,
                _count_run(full.out),
                tests + 1,
                -1,
                -1,
                full.code,
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _count_run(out: str) -> int:
    """Tests run now, from pytest's stats line (carried results excluded)."""
    import re

    lines = [
        line
        for line in out.splitlines()
        if " in " in line and ("passed" in line or "failed" in line or "deselected" in line)
    ]
    if not lines:
        return 0
    line = lines[-1]
    total = 0
    for m in re.finditer(
        r"(\d+) (passed|failed|error|errors|skipped|xfailed|xpassed)"
        r"(?: \((\d+) carried\))?",
        line,
    ):
        total += int(m.group(1)) - int(m.group(3) or 0)
    return total


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
