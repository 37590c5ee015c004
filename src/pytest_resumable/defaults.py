"""Defaults the option declarations (:mod:`.plugin`) and the settings (:mod:`.options`) share.

Imported by every pytest process, xdist workers included: nothing else here (the settings
module, with its settings class and the journal's record types, cost a worker ~10 ms to import).
"""

from __future__ import annotations

JOURNAL_NAME = "journal.jsonl"
CACHE_SUBDIR = "resumable"
DEFAULT_COMPACT_BYTES = 64 * 1024 * 1024
