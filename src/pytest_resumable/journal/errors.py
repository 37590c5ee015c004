"""Errors of the journal. ``str()`` of each is one line meant for the user."""

from __future__ import annotations


class JournalError(Exception):
    """A journal cannot be used."""


class JournalVersionError(JournalError):
    """The journal was written by a newer pytest-resumable; it is never written to."""


class JournalLockTimeout(JournalError):
    """Another live process held the journal lock longer than the timeout."""
