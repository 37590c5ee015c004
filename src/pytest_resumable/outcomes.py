"""Test outcomes as the journal records them. Tiny on purpose: xdist workers import it."""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

Outcome: TypeAlias = Literal[
    "passed", "failed", "error", "skipped", "xfailed", "xpassed", "crashed"
]
OUTCOMES: Final[frozenset[str]] = frozenset(
    ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "crashed")
)
#: Outcomes that keep a run red until the test is run again and passes.
BAD_OUTCOMES: Final[frozenset[str]] = frozenset(("failed", "error", "crashed"))
