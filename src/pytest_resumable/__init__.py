"""pytest-resumable: resume an interrupted pytest run and report it as a whole."""

from __future__ import annotations

from pytest_resumable.journal import FORMAT, VERSION, JournalError

__all__ = ["FORMAT", "VERSION", "JournalError", "__version__"]

__version__ = "0.1.0.dev0"
