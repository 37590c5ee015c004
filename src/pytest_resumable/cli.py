"""The ``pytest-resumable`` command. No pytest import: it must start fast and work anywhere."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_resumable import __version__
from pytest_resumable.compact import DEFAULT_KEEP_RUNS, compact, merge
from pytest_resumable.journal import OUTCOMES, JournalError
from pytest_resumable.runstate import (
    JournalIndex,
    RunState,
    RunSummary,
    load_all,
    load_durations,
)

DEFAULT_JOURNAL = Path(".pytest_cache") / "d" / "resumable" / "journal.jsonl"


def default_journal() -> Path:
    env = os.environ.get("PYTEST_RESUME_JOURNAL")
    return Path(env) if env else DEFAULT_JOURNAL


def _row(summary: RunSummary, state: RunState) -> dict[str, object]:
    counts = state.counts()
    last = summary.last_attempt
    selected = last.end.selected if last and last.end else None
    if selected is None and state.shard is not None:
        selected = len(state.shard.tests)
    return {
        "run": summary.id,
        "resume_id": summary.record.resume_id,
        "shard": summary.record.shard,
        "attempts": len(summary.attempts),
        "results": len(state.results),
        "selected": selected,
        "failed": counts.get("failed", 0) + counts.get("error", 0),
        "crashed": counts.get("crashed", 0),
        "complete": summary.complete,
        "last_activity": summary.last_time,
    }


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns in a terminal; tab-separated, no padding, in a pipe."""
    if not sys.stdout.isatty():
        for row in [header, *rows]:
            print("\t".join(row))
        return
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _dump(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def cmd_status(args: argparse.Namespace) -> int:
    path: Path = args.journal
    index, states = load_all(path)
    rows = [_row(summary, states[summary.id]) for summary in index.runs.values()]
    corrupt = index.stats.corrupt
    if args.json:
        _dump({"journal": str(path), "runs": rows, "corrupt_lines": corrupt})
        return 0
    if not rows:
        print(f"{path}: no runs recorded")
    else:
        table = []
        for row in rows:
            selected = row["selected"]
            table.append(
                (
                    str(row["run"]),
                    str(row["resume_id"] or "-"),
                    str(row["shard"] or "-"),
                    str(row["attempts"]),
                    f"{row['results']}/{selected if selected is not None else '?'}",
                    str(row["failed"]),
                    str(row["crashed"]),
                    "complete" if row["complete"] else "incomplete",
                    _when(float(row["last_activity"])),  # type: ignore[arg-type]
                )
            )
        print_table(
            (
                "run",
                "id",
                "shard",
                "attempts",
                "results",
                "failed",
                "crashed",
                "state",
                "last activity",
            ),
            table,
        )
    if corrupt:
        print(f"{corrupt} corrupt line{'s' if corrupt != 1 else ''} skipped")
    return 0


class UsageProblem(Exception):
    """A command-line mistake found after parsing: exit 2, one line."""


def _find_runs(index: JournalIndex, name: str) -> list[RunSummary]:
    """Runs named by ``name``: a run id, a unique prefix of one, or a --resume-id."""
    runs = list(index.runs.values())
    exact = [r for r in runs if r.id == name]
    if exact:
        return exact
    by_resume_id = [r for r in runs if r.record.resume_id == name]
    if by_resume_id:
        return by_resume_id
    prefixed = [r for r in runs if r.id.startswith(name)]
    if len(prefixed) == 1:
        return prefixed
    if prefixed:
        raise UsageProblem(f"run {name!r} is ambiguous: {', '.join(r.id for r in prefixed)}")
    raise UsageProblem(f"no run {name!r} in {index_path(index)}")


def index_path(index: JournalIndex) -> str:
    return getattr(index, "path", "the journal")


def cmd_show(args: argparse.Namespace) -> int:
    index, states = load_all(args.journal)
    runs = _find_runs(index, args.run)
    wanted = set(args.outcome.split(",")) if args.outcome else None
    if wanted is not None and not wanted <= set(OUTCOMES):
        raise UsageProblem(
            f"--outcome: unknown outcome in {args.outcome!r}; expected some of "
            + ",".join(OUTCOMES)
        )
    rows = []
    for summary in runs:
        for result in states[summary.id].results.values():
            if wanted is None or result.outcome in wanted:
                rows.append(
                    {
                        "run": summary.id,
                        "shard": summary.record.shard,
                        "test": result.test,
                        "outcome": result.outcome,
                        "duration": result.duration,
                        "attempt": result.attempt,
                        "message": result.message,
                    }
                )
    if args.json:
        _dump({"runs": [r.id for r in runs], "results": rows})
        return 0
    print_table(
        ("test", "outcome", "duration", "attempt", "run", "message"),
        [
            (
                str(r["test"]),
                str(r["outcome"]),
                f"{r['duration']:.3f}s",
                str(r["attempt"]),
                str(r["run"]),
                (str(r["message"] or "").splitlines() or [""])[0][:100],
            )
            for r in rows
        ],
    )
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    if args.keep_runs < 0:
        raise UsageProblem("--keep-runs: expected a number >= 0")
    result = compact(args.journal, keep_runs=args.keep_runs, lock_timeout=args.lock_timeout)
    for name in result.cleaned:
        print(f"removed {name}, left by a compaction that was killed")
    if result.before == 0:
        print(f"{args.journal}: nothing to compact")
        return 0
    print(
        f"{args.journal}: {result.before:,} -> {result.after:,} bytes; "
        f"{result.runs_kept} runs kept, {result.runs_dropped} dropped "
        "(their durations kept in a summary)"
    )
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    written, dropped = merge(args.inputs, args.output)
    print(
        f"{args.output}: {written:,} records from {len(args.inputs)} journals "
        f"({dropped:,} duplicates dropped)"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    index, states = load_all(args.journal)
    runs = _find_runs(index, args.run)
    report = verify_runs([states[r.id] for r in runs])
    if args.json:
        _dump(report)
    else:
        for line in report["lines"]:
            print(line)
    return 0 if report["ok"] else 1


def verify_runs(states: list[RunState]) -> dict[str, Any]:
    """Whether the runs (the shards of one CI run) gave every selected test one result."""
    lines: list[str] = []
    sharded = [s for s in states if s.shard is not None]
    problems: dict[str, list[str]] = {"missing": [], "doubled": [], "unassigned": []}
    if not sharded:
        for state in states:
            last = state.summary.last_attempt
            selected = last.end.selected if last and last.end else None
            if selected is None or len(state.results) < selected:
                problems["missing"].append(
                    f"run {state.summary.id}: {len(state.results)} results of "
                    f"{selected if selected is not None else '?'} selected"
                )
        ok = not problems["missing"]
        lines.append(
            f"{len(states)} run(s), not sharded: "
            + ("every selected test has a result" if ok else "; ".join(problems["missing"]))
        )
        return {"ok": ok, "lines": lines, **problems}
    specs = sorted({s.summary.record.shard or "" for s in sharded})
    n = int(specs[0].split("/")[1]) if "/" in specs[0] else 0
    present = {int(spec.split("/")[0]) for spec in specs if "/" in spec}
    selection: set[str] = set()
    for state in sharded:
        assert state.shard is not None
        selection |= set(state.shard.selection)
    owners: dict[str, list[str]] = {}
    results: dict[str, list[str]] = {}
    for state in sharded:
        assert state.shard is not None
        for test in state.shard.tests:
            owners.setdefault(test, []).append(state.shard.shard)
        for test in state.results:
            results.setdefault(test, []).append(state.shard.shard)
    for test in sorted(selection | set(results)):
        got = results.get(test, [])
        if len(got) == 0:
            problems["missing"].append(test)
        elif len(got) > 1:
            problems["doubled"].append(f"{test} (shards {', '.join(sorted(got))})")
        if test in selection and not owners.get(test) and not got:
            problems["unassigned"].append(test)
    absent = sorted(set(range(1, n + 1)) - present)
    ok = not problems["missing"] and not problems["doubled"]
    lines.append(
        f"{len(sharded)} shard run(s) of {n}"
        + (f" (shard {', '.join(map(str, absent))} never ran)" if absent else "")
        + f": {len(selection)} selected tests, {sum(1 for t in selection if t in results)} "
        f"with a result, {len(problems['missing'])} missing, {len(problems['doubled'])} doubled"
    )
    for kind in ("missing", "doubled"):
        for item in problems[kind][:50]:
            lines.append(f"{kind}: {item}")
        if len(problems[kind]) > 50:
            lines.append(f"{kind}: ... and {len(problems[kind]) - 50} more")
    lines.append("OK" if ok else "FAILED")
    return {"ok": ok, "lines": lines, "absent_shards": absent, **problems}


def cmd_durations(args: argparse.Namespace) -> int:
    durations = load_durations(args.journal)
    if args.format == "text":
        out = "".join(f"{d:.6f}\t{t}\n" for t, d in sorted(durations.items(), key=lambda x: -x[1]))
    else:  # json and pytest-split's .test_durations are the same: {"node id": seconds}
        out = json.dumps(dict(sorted(durations.items())), indent=4, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
        print(f"{args.output}: durations of {len(durations)} tests")
    else:
        sys.stdout.write(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-resumable", description="Inspect pytest-resumable journals."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--journal",
        type=Path,
        default=None,
        help=f"journal file (default: $PYTEST_RESUME_JOURNAL, else {DEFAULT_JOURNAL})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = sub.add_parser("status", parents=[common], help="one row per run")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    show = sub.add_parser("show", parents=[common], help="per-test results of a run")
    show.add_argument("run", help="run id (or a unique prefix), or a --resume-id")
    show.add_argument("--outcome", help="only these outcomes, comma-separated (failed,error)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)

    comp = sub.add_parser(
        "compact", parents=[common], help="rewrite the journal: one record per test per run"
    )
    comp.add_argument(
        "--keep-runs",
        type=int,
        default=DEFAULT_KEEP_RUNS,
        metavar="N",
        help=f"keep the newest N runs (default {DEFAULT_KEEP_RUNS}); older complete runs are "
        "dropped, their durations kept in a summary. Runs that can still be resumed are kept",
    )
    comp.add_argument(
        "--lock-timeout", type=float, default=30.0, help="seconds to wait for the lock"
    )
    comp.set_defaults(func=cmd_compact)

    mrg = sub.add_parser("merge", help="merge journals (one per CI shard) into one")
    mrg.add_argument("inputs", nargs="+", type=Path, metavar="IN")
    mrg.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    mrg.set_defaults(func=cmd_merge, journal=Path("-"))

    ver = sub.add_parser(
        "verify", parents=[common], help="check that a run's shards gave every test one result"
    )
    ver.add_argument("run", help="a --resume-id shared by the shards, or a run id")
    ver.add_argument("--json", action="store_true", help="machine-readable output")
    ver.set_defaults(func=cmd_verify)

    dur = sub.add_parser("durations", parents=[common], help="export per-test durations")
    dur.add_argument(
        "--format",
        choices=("json", "pytest-split", "text"),
        default="json",
        help="pytest-split: the .test_durations file pytest-split reads",
    )
    dur.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    dur.set_defaults(func=cmd_durations)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.journal is None:
        args.journal = default_journal()
    try:
        return int(args.func(args))
    except (JournalError, UsageProblem) as exc:
        print(f"pytest-resumable: {str(exc).removeprefix('resumable: ')}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`
        return 0
