"""The ``pytest-resumable`` command. No pytest import: it must start fast and work anywhere."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_resumable import __version__
from pytest_resumable.journal import JournalError
from pytest_resumable.runstate import RunSummary, load_index, load_run

DEFAULT_JOURNAL = Path(".pytest_cache") / "d" / "resumable" / "journal.jsonl"


def default_journal() -> Path:
    env = os.environ.get("PYTEST_RESUME_JOURNAL")
    return Path(env) if env else DEFAULT_JOURNAL


def _row(summary: RunSummary, path: Path) -> dict[str, object]:
    state = load_run(path, summary)
    counts = state.counts()
    last = summary.last_attempt
    selected = last.end.selected if last and last.end else None
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


def cmd_status(args: argparse.Namespace) -> int:
    path: Path = args.journal
    index = load_index(path)
    rows = [_row(summary, path) for summary in index.runs.values()]
    corrupt = index.stats.corrupt
    if args.json:
        json.dump(
            {"journal": str(path), "runs": rows, "corrupt_lines": corrupt}, sys.stdout, indent=2
        )
        sys.stdout.write("\n")
        return 0
    if not rows:
        print(f"{path}: no runs recorded")
    else:
        header = (
            "run",
            "id",
            "shard",
            "attempts",
            "results",
            "failed",
            "crashed",
            "state",
            "last activity",
        )
        table = [header]
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
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for r in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip())
    if corrupt:
        print(f"{corrupt} corrupt line{'s' if corrupt != 1 else ''} skipped")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.journal is None:
        args.journal = default_journal()
    try:
        return int(args.func(args))
    except JournalError as exc:
        print(f"pytest-resumable: {str(exc).removeprefix('resumable: ')}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`
        return 0
