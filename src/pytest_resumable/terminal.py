"""The lines this plugin prints: the header after collection, the shard line, the last line,
and the carried counts in pytest's stats line. Text from a journal is escaped on the way out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_resumable.plan import AttemptPlan

_ORDER = ("passed", "failed", "error", "crashed", "skipped", "xfailed", "xpassed")
#: control characters, and lone surrogates but those ``surrogateescape`` turns back into the
#: bytes of an undecodable file name (\udc80-\udcff): no stream could encode them
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udc7f\udd00-\udfff]")


def escape(text: str) -> str:
    """``text`` with control characters shown as escapes: text read from a journal must not
    move the cursor, retitle the terminal or write the clipboard (ESC, OSC, CR...). A lone
    surrogate in a test id (pytest allows them with its id escaping disabled) is shown as
    ``\\ud800``: printing it would fail."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


def describe_counts(counts: Mapping[str, int]) -> str:
    parts = [f"{counts[o]} {o}" for o in _ORDER if counts.get(o)]
    return ", ".join(parts) if parts else "none"


def count_outcomes(outcomes: Iterable[str]) -> dict[str, int]:
    return Counter(outcomes)  # counted in C: a session's last line counts every test


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def header_line(plan: AttemptPlan, selected: list[str], carried_selected: list[str]) -> str:
    """``resumable: resuming run 7f3a (attempt 2): 4210/10000 have results (...); 5790 to run``"""
    counts = count_outcomes(plan.carried[t].outcome for t in carried_selected)
    line = (
        f"resumable: resuming run {plan.run_id} (attempt {plan.attempt}): "
        f"{len(carried_selected)}/{len(selected)} have results ({describe_counts(counts)}); "
        f"{len(selected) - len(carried_selected)} to run"
    )
    chosen = set(selected)
    in_flight = [t for t in plan.in_flight if t in chosen]
    if in_flight:
        shown = ", ".join(escape(t) for t in in_flight[:3]) + (
            ", ..." if len(in_flight) > 3 else ""
        )
        line += f"; {len(in_flight)} {_plural(len(in_flight), 'was', 'were')} in flight: {shown}"
    suspects = [t for t in plan.suspects if t in chosen]
    if suspects:
        line += f" ({len(suspects)} first run in a child process)"
    if plan.not_carried_changed:
        line += f"; {plan.not_carried_changed} not carried (test file changed)"
    if plan.each_not_carried:
        line += "; --dist each: nothing is carried, every test runs on every worker"
    return line + corrupt_note(plan.corrupt_lines)


def corrupt_note(corrupt: int) -> str:
    if not corrupt:
        return ""
    return f"; {corrupt} corrupt journal {_plural(corrupt, 'line', 'lines')} skipped"


def shard_line(plan: AttemptPlan, selected: int, excluded: int) -> str:
    assert plan.shard is not None
    source = plan.shard.source
    if source == "frozen":
        how = "the rest of its assignment frozen in attempt 1"
    elif source == "adopted":
        how = f"split as frozen by shard {escape(plan.shard.adopted_from or '?')} of this run"
    else:
        how = "split by recorded durations, frozen"
    return (
        f"resumable: shard {plan.shard.spec}: {selected} tests ({excluded} belong to other "
        f"shards; {how})"
    )


def pluralize(count: int, noun: str) -> tuple[int, str]:
    """The count and noun as pytest's stats line writes them ("1 error", "2 errors")."""
    if noun in ("error", "warnings", "test"):
        noun = noun.replace("warnings", "warning")
        return count, noun + "s" if count != 1 else noun
    return count, noun


def mark_carried_in_stats_line(tr: Any, carried_attr: str) -> None:
    """Make the terminal's stats line say how many of each count were carried, e.g.
    ``1 failed (1 carried), 27 passed (19 carried) in 4.07s``.

    pytest has no hook for the wording of that line; its parts are built by
    ``TerminalReporter.build_summary_stats_line``, so wrap that method on this one reporter
    (if a future pytest renames it, the line simply stays pytest's own).
    """
    original = getattr(tr, "build_summary_stats_line", None)
    if original is None or getattr(original, "_resumable", False):
        return

    counted: dict[str, tuple[int, int, int]] = {}  # key -> (reports, shown, carried)

    def build_summary_stats_line() -> tuple[list[tuple[str, dict[str, bool]]], str]:
        parts, main_color = original()
        carried_by_text: dict[str, int] = {}
        for key, reports in tr.stats.items():
            if not key:
                continue
            seen = counted.get(key)
            if seen is None or seen[0] != len(reports):  # pytest may ask more than once
                shown = n_carried = 0
                for r in reports:
                    if getattr(r, "count_towards_summary", True):
                        shown += 1
                        n_carried += hasattr(r, carried_attr)
                seen = counted[key] = (len(reports), shown, n_carried)
            if seen[2]:
                count, noun = pluralize(seen[1], key)
                carried_by_text[f"{count} {noun}"] = seen[2]
        out = []
        for text, markup in parts:
            of_them = carried_by_text.get(text)
            out.append((f"{text} ({of_them} carried)" if of_them else text, markup))
        return out, main_color

    build_summary_stats_line._resumable = True  # type: ignore[attr-defined]
    tr.build_summary_stats_line = build_summary_stats_line


#: plugins whose reaction to a plain pass is known (terminal letters and stats, --lf
#: bookkeeping, live-log sections, the session's failure count, this plugin): when only they
#: listen, carried plain passes are replayed in bulk instead of five hook calls each
_BULK_SAFE = frozenset(
    (
        "_pytest.terminal.TerminalReporter",
        "_pytest.cacheprovider.LFPlugin",
        "_pytest.logging.LoggingPlugin",
        "_pytest.main.Session",
        "pytest_resumable.controller.ControllerPlugin",
        "pytest_resumable.recorder.Recorder",
        "pytest_resumable.controller.XdistControllerHooks",
    )
)
_BULK_HOOKS = ("pytest_runtest_logstart", "pytest_runtest_logreport", "pytest_runtest_logfinish")


def bulk_replay_possible(config: Any, tr: Any) -> bool:
    """Whether :func:`bulk_replay_passes` gives what the per-test hooks would: nobody but the
    known plugins listens, tests are shown as letters (not -v lines), and this pytest has the
    terminal internals it uses (pytest 8.1+); otherwise the replay goes test by test."""
    if tr is None or config.option.verbose > 0:
        return False
    if getattr(tr, "_show_progress_info", None) not in (False, "progress", "count"):
        return False
    needed = ("_progress_nodeids_reported", "_write_progress_information_if_past_edge")
    if not all(hasattr(tr, name) for name in (*needed, "write_fspath_result", "_tw")):
        return False
    for name in _BULK_HOOKS:
        for impl in getattr(config.hook, name).get_hookimpls():
            kind = type(impl.plugin)
            if f"{kind.__module__}.{kind.__qualname__}" not in _BULK_SAFE:
                return False
    return True


def bulk_replay_passes(config: Any, tr: Any, reports: list[Any]) -> None:
    """Report carried plain passes as the terminal would, one write per line of letters:
    the same letters, line breaks and progress figures, stats and ``--lf`` bookkeeping."""
    stats = tr.stats.setdefault("passed", [])
    reported = tr._progress_nodeids_reported
    lf = config.pluginmanager.get_plugin("lfplugin")
    lastfailed = getattr(lf, "lastfailed", None)
    i = 0
    while i < len(reports):
        first = reports[i]
        tr.write_fspath_result(first.nodeid, "")
        path = first.nodeid.split("::", 1)[0]
        room = max(1, tr._screen_width - tr._width_of_current_line - len(" [100%]") - 1)
        chunk: list[Any] = []
        while i < len(reports) and len(chunk) < room:
            if reports[i].nodeid.split("::", 1)[0] != path:
                break
            chunk.append(reports[i])
            i += 1
        stats.extend(chunk)
        for report in chunk:
            reported.add(report.nodeid)
        if lastfailed:
            # pytest 9.2+ keys it by the structured id (``report.id``), earlier by the string
            for report in chunk:
                lastfailed.pop(getattr(report, "id", report.nodeid), None)
        tr._tw.write("." * len(chunk), green=True)
        tr._write_progress_information_if_past_edge()
    tr.flush()
