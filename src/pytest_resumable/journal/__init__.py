"""The journal: an append-only JSON-lines file of runs, attempts, starts and results.

No pytest import anywhere in this package. ``records`` holds the data types, ``codec`` the one
line layout, ``reader`` the tolerant bounded reader, ``writer`` the single writer and its lock
lease, ``rewrite`` compaction and merging. The format is documented in
``docs/journal-format.md``.
"""
