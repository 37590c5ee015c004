"""The ``pytest-resumable`` command. No pytest import: it must start fast and work anywhere."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_resumable import __version__
from pytest_resumable.history import History, RunState, read_durations, read_history, verify_runs
from pytest_resumable.journal.errors import JournalError
from pytest_resumable.journal.records import OUTCOMES
from pytest_resumable.journal.rewrite import DEFAULT_KEEP_RUNS, compact, merge
from pytest_resumable.options import cli_journal_path
from pytest_resumable.terminal import escape


def _row(state: RunState) -> dict[str, object]:
    counts = state.counts()
    return {
        "run": state.id,
        "resume_id": state.record.resume_id,
        "shard": state.record.shard,
        "attempts": len(state.attempts),
        "results": len(state.results),
        "selected": state.selected,
        "failed": counts.get("failed", 0) + counts.get("error", 0),
        "crashed": counts.get("crashed", 0),
        "complete": state.complete,
        "last_activity": state.last_time,
    }


def _when(timestamp: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return "?"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns in a terminal; tab-separated, no padding, in a pipe."""
    rows = [[escape(cell) for cell in row] for row in rows]  # text from a journal: escaped
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
    history = read_history(path)
    rows = [_row(state) for state in history.runs.values()]
    corrupt = history.corrupt
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


def _seconds(text: str) -> float:
    """A finite number of seconds >= 0 (``nan`` waited forever)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _waiting(line: str) -> None:
    """Say that the command waits for the journal lock (held by another process)."""
    print(f"pytest-resumable: {escape(line.removeprefix('resumable: '))}", file=sys.stderr)


class UsageProblem(Exception):
    """A command-line mistake found after parsing: exit 2, one line."""


def _find_runs(history: History, name: str) -> list[RunState]:
    """Runs named by ``name``: a run id, a unique prefix of one, or a --resume-id."""
    runs = list(history.runs.values())
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
    raise UsageProblem(f"no run {name!r} in {history.path}")


def cmd_show(args: argparse.Namespace) -> int:
    history = read_history(args.journal)
    runs = _find_runs(history, args.run)
    wanted = set(args.outcome.split(",")) if args.outcome else None
    if wanted is not None and not wanted <= set(OUTCOMES):
        raise UsageProblem(
            f"--outcome: unknown outcome in {args.outcome!r}; expected some of "
            + ",".join(OUTCOMES)
        )
    rows = []
    for state in runs:
        for result in state.results.values():
            if wanted is None or result.outcome in wanted:
                rows.append(
                    {
                        "run": state.id,
                        "shard": state.record.shard,
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
    result = compact(
        args.journal, keep_runs=args.keep_runs, lock_timeout=args.lock_timeout, on_wait=_waiting
    )
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
    written, dropped = merge(
        args.inputs, args.output, lock_timeout=args.lock_timeout, on_wait=_waiting
    )
    print(
        f"{args.output}: {written:,} records from {len(args.inputs)} journals "
        f"({dropped:,} duplicates dropped)"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    history = read_history(args.journal)
    verdict = verify_runs(_find_runs(history, args.run))
    if args.json:
        _dump(verdict.to_dict())
    else:
        for line in verdict.lines:
            print(escape(line))
    return 0 if verdict.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from pytest_resumable.report import collect, write

    journals = [Path(j) for j in (args.journals or [args.journal])]
    states = []
    for journal in journals:
        if not journal.is_file():
            raise UsageProblem(f"no journal at {journal}")
        history = read_history(journal)
        try:
            states.extend(_find_runs(history, args.run))
        except UsageProblem:
            continue  # this journal holds other shards only
    if not states:
        raise UsageProblem(f"no run {args.run!r} in {', '.join(map(str, journals))}")
    if not args.junitxml and not args.report_log:
        raise UsageProblem("report: give --junitxml FILE and/or --report-log FILE")
    report = collect(states)
    status = write(report, args.junitxml, args.report_log, args.junit_logging)
    counts: dict[str, int] = {}
    for result in report.results.values():
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda x: -x[1]))
    flight = f"; {len(report.in_flight)} in flight without a result" if report.in_flight else ""
    written = " and ".join(str(f) for f in (args.junitxml, args.report_log) if f)
    print(
        escape(
            f"{written}: {len(report.results) + len(report.in_flight)} tests of "
            f"{len(report.runs)} run(s) ({summary or 'no results'}{flight})"
        )
    )
    return 0 if status in (0, 1) else 2


def cmd_durations(args: argparse.Namespace) -> int:
    durations = read_durations(args.journal)
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
    # long but flat: one declaration per subcommand and option, read top to bottom
    parser = argparse.ArgumentParser(
        prog="pytest-resumable", description="Inspect pytest-resumable journals."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    journal_help = (
        "journal file (default: $PYTEST_RESUME_JOURNAL, else what pytest run here would use: "
        "resume_journal or cache_dir from the ini file, else "
        ".pytest_cache/d/resumable/journal.jsonl)"
    )
    # accepted before and after the subcommand; SUPPRESS keeps one from resetting the other
    parser.add_argument("--journal", default=None, help=journal_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--journal", default=argparse.SUPPRESS, help=journal_help)
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
        "--lock-timeout", type=_seconds, default=30.0, help="seconds to wait for the lock"
    )
    comp.set_defaults(func=cmd_compact)

    mrg = sub.add_parser("merge", help="merge journals (one per CI shard) into one")
    mrg.add_argument("inputs", nargs="+", type=Path, metavar="IN")
    mrg.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    mrg.add_argument(
        "--lock-timeout", type=_seconds, default=30.0, help="seconds to wait for OUT's lock"
    )
    mrg.set_defaults(func=cmd_merge)

    ver = sub.add_parser(
        "verify", parents=[common], help="check that a run's shards gave every test one result"
    )
    ver.add_argument("run", help="a --resume-id shared by the shards, or a run id")
    ver.add_argument("--json", action="store_true", help="machine-readable output")
    ver.set_defaults(func=cmd_verify)

    rep = sub.add_parser(
        "report",
        help="the report of a whole run (all shards and attempts) from journals: JUnit XML, "
        "report-log",
    )
    rep.add_argument("run", help="a --resume-id shared by the shards, a run id or a prefix")
    rep.add_argument(
        "--journal",
        dest="journals",
        action="append",
        metavar="PATH",
        help="a journal to read (repeat for one journal per shard); default as for status",
    )
    rep.add_argument("--junitxml", metavar="FILE", help="write JUnit XML here (pytest's writer)")
    rep.add_argument("--report-log", metavar="FILE", help="write a pytest-reportlog file here")
    rep.add_argument(
        "--junit-logging",
        default="no",
        choices=("no", "log", "system-out", "system-err", "out-err", "all"),
        help="captured output in the JUnit file, as pytest's junit_logging (default no)",
    )
    rep.set_defaults(func=cmd_report)

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
    try:
        args.journal = cli_journal_path(args.journal, Path.cwd())
        return int(args.func(args))
    except (JournalError, UsageProblem, ValueError) as exc:
        message = escape(str(exc).removeprefix("resumable: "))
        print(f"pytest-resumable: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`
        return 0
    except KeyboardInterrupt:  # Ctrl-C, e.g. while waiting for the lock: nothing was changed
        print("pytest-resumable: interrupted", file=sys.stderr)
        return 130
