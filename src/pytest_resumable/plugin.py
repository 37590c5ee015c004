"""pytest11 entry point: options, ini values, validation, and registering the plugin objects.

No state lives here: the controller's state is on
:class:`~pytest_resumable.session.ResumableSession`, a worker's on
:class:`~pytest_resumable.xdist.WorkerPlugin`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_resumable.journal import FsyncMode

JOURNAL_NAME = "journal.jsonl"
ORDER_MODES = ("duration", "none")
DEFAULT_COMPACT_BYTES = 64 * 1024 * 1024


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resumable", "resume interrupted runs (pytest-resumable)")
    group.addoption(
        "--resume",
        action="store_true",
        dest="resumable_resume",
        default=False,
        help="continue the latest unfinished run: run only the tests that have no result yet "
        "(with no unfinished run, start a new one)",
    )
    group.addoption(
        "--resume-id",
        metavar="ID",
        dest="resumable_resume_id",
        default=None,
        help="name the run (in CI: the pipeline's run id); implies --resume. "
        "Default: $PYTEST_RESUME_ID",
    )
    group.addoption(
        "--resume-new",
        action="store_true",
        dest="resumable_new",
        default=False,
        help="start a new run even if an unfinished one exists",
    )
    group.addoption(
        "--resume-retry-failed",
        action="store_true",
        dest="resumable_retry_failed",
        default=False,
        help="also run again the tests whose carried result is failed, error or crashed; "
        "implies --resume",
    )
    group.addoption(
        "--resume-journal",
        metavar="PATH",
        dest="resumable_journal",
        default=None,
        help="journal file. Default: $PYTEST_RESUME_JOURNAL, the resume_journal ini value, "
        f"or <cache_dir>/d/resumable/{JOURNAL_NAME}",
    )
    group.addoption(
        "--resume-fsync",
        metavar="MODE",
        dest="resumable_fsync",
        default=None,
        help="always | interval (default: at most ~1 s of results at risk on power loss) | "
        "never. No mode loses a result when a process is killed",
    )
    group.addoption(
        "--shard",
        metavar="K/N",
        dest="resumable_shard",
        default=None,
        help="run only shard K (1-based) of N, balanced by recorded durations and frozen per "
        "run, so a retried shard runs exactly the rest of its own tests. Default: $PYTEST_SHARD",
    )
    group.addoption(
        "--resume-order",
        metavar="MODE",
        dest="resumable_order",
        default=None,
        help="duration (default: under xdist, longest recorded tests first, xdist groups kept "
        "whole) | none (collection order)",
    )
    parser.addini("resume_journal", "journal file for pytest-resumable", default="")
    parser.addini("resume_order", "duration | none (pytest-resumable)", default="")
    parser.addini(
        "resume_compact_bytes",
        "compact the journal at session end once it is larger than this many bytes; "
        "0 never (pytest-resumable)",
        default=str(DEFAULT_COMPACT_BYTES),
    )
    parser.addini("resume_fsync", "always | interval | never (pytest-resumable)", default="")
    parser.addini(
        "resume_record",
        "record every run, even without --resume (pytest-resumable)",
        type="bool",
        default=True,
    )
    parser.addini(
        "resume_lock_timeout",
        "seconds to wait for the journal lock (pytest-resumable)",
        default="30",
    )


@dataclass(frozen=True)
class Settings:
    """The validated options of one session."""

    journal: Path
    resume: bool  # --resume, --resume-id, $PYTEST_RESUME_ID or --resume-retry-failed
    explicit: bool  # any option of the plugin was given: journal problems are errors
    resume_id: str | None
    new: bool
    retry_failed: bool
    fsync: FsyncMode
    lock_timeout: float
    shard: tuple[int, int] | None = None  # (K, N), K 1-based
    order: str = "duration"
    compact_bytes: int = DEFAULT_COMPACT_BYTES

    @property
    def shard_spec(self) -> str | None:
        return f"{self.shard[0]}/{self.shard[1]}" if self.shard else None


def _usage(option: str, problem: str, accepted: str) -> pytest.UsageError:
    return pytest.UsageError(f"{option}: {problem}; expected {accepted}")


def read_settings(config: pytest.Config) -> Settings:
    """Validate the options; raise ``pytest.UsageError`` naming the option otherwise."""
    from pytest_resumable.journal import FSYNC_MODES  # not at import: workers skip it

    opt = config.option
    resume_id = opt.resumable_resume_id
    option_name = "--resume-id"
    if resume_id is None and os.environ.get("PYTEST_RESUME_ID"):
        resume_id = os.environ["PYTEST_RESUME_ID"]
        option_name = "PYTEST_RESUME_ID"
    if resume_id is not None:
        if not resume_id.strip() or any(ord(c) < 32 or ord(c) == 127 for c in resume_id):
            raise _usage(
                option_name,
                f"invalid run id {resume_id!r}",
                "a non-empty name without control characters",
            )
        if len(resume_id) > 200:
            raise _usage(option_name, "run id too long", "at most 200 characters")

    if opt.resumable_resume and opt.resumable_new:
        raise pytest.UsageError(
            "--resume-new: cannot be combined with --resume (one continues a run, the other "
            "starts a new one)"
        )

    fsync = opt.resumable_fsync
    fsync_name = "--resume-fsync"
    if fsync is None:
        fsync = str(config.getini("resume_fsync")).strip() or "interval"
        fsync_name = "resume_fsync"
    if fsync not in FSYNC_MODES:
        raise _usage(fsync_name, f"unknown mode {fsync!r}", "one of " + ", ".join(FSYNC_MODES))

    raw_timeout = str(config.getini("resume_lock_timeout")).strip()
    try:
        lock_timeout = float(raw_timeout)
        if not lock_timeout >= 0 or lock_timeout == float("inf"):
            raise ValueError
    except ValueError:
        raise _usage(
            "resume_lock_timeout", f"invalid value {raw_timeout!r}", "a number of seconds >= 0"
        ) from None

    shard = _shard(opt.resumable_shard)

    order = opt.resumable_order
    order_name = "--resume-order"
    if order is None:
        order = str(config.getini("resume_order")).strip() or "duration"
        order_name = "resume_order"
    if order not in ORDER_MODES:
        raise _usage(order_name, f"unknown mode {order!r}", "one of " + ", ".join(ORDER_MODES))

    raw_bytes = str(config.getini("resume_compact_bytes")).strip()
    try:
        compact_bytes = int(raw_bytes)
        if compact_bytes < 0:
            raise ValueError
    except ValueError:
        raise _usage(
            "resume_compact_bytes", f"invalid value {raw_bytes!r}", "a number of bytes >= 0"
        ) from None

    journal = _journal_path(config)
    resume = bool(opt.resumable_resume or resume_id is not None or opt.resumable_retry_failed)
    explicit = resume or bool(opt.resumable_new) or shard is not None
    return Settings(
        journal=journal,
        resume=resume and not opt.resumable_new,
        explicit=explicit,
        resume_id=resume_id,
        new=bool(opt.resumable_new),
        retry_failed=bool(opt.resumable_retry_failed),
        fsync=fsync,
        lock_timeout=lock_timeout,
        shard=shard,
        order=order,
        compact_bytes=compact_bytes,
    )


def _shard(value: str | None) -> tuple[int, int] | None:
    name = "--shard"
    if value is None and os.environ.get("PYTEST_SHARD"):
        value, name = os.environ["PYTEST_SHARD"], "PYTEST_SHARD"
    if value is None:
        return None
    k_text, sep, n_text = value.strip().partition("/")
    try:
        if not sep or not k_text.isdigit() or not n_text.isdigit():
            raise ValueError
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise _usage(name, f"invalid shard {value!r}", "K/N with 1 <= K <= N, e.g. 2/4") from None
    if n < 1 or not 1 <= k <= n:
        raise _usage(name, f"invalid shard {value!r}", "K/N with 1 <= K <= N, e.g. 2/4")
    if n > 10000:
        raise _usage(name, f"too many shards in {value!r}", "N at most 10000")
    return k, n


def _expand(value: str, base: Path) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else base / path


def _journal_path(config: pytest.Config) -> Path:
    if config.option.resumable_journal:
        value = config.option.resumable_journal
        if not value.strip():
            raise _usage("--resume-journal", "empty path", "a file path")
        return _expand(value, config.invocation_params.dir)
    if os.environ.get("PYTEST_RESUME_JOURNAL"):
        return _expand(os.environ["PYTEST_RESUME_JOURNAL"], config.invocation_params.dir)
    ini = str(config.getini("resume_journal")).strip()
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return _expand(ini, base)
    try:
        cache_ini = str(config.getini("cache_dir"))
    except (ValueError, KeyError):  # -p no:cacheprovider removes the ini value
        cache_ini = ".pytest_cache"
    cache_dir = _expand(cache_ini, config.rootpath)
    return cache_dir / "d" / "resumable" / JOURNAL_NAME


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin object of this process: a worker's, or the controller's."""
    if hasattr(config, "workerinput"):
        if "resumable" in config.workerinput:
            from pytest_resumable.xdist import WorkerPlugin

            config.pluginmanager.register(
                WorkerPlugin(config.workerinput["resumable"]), "resumable-worker"
            )
        return

    settings = read_settings(config)
    if not settings.explicit and not config.getini("resume_record"):
        return

    from pytest_resumable.session import ResumableSession

    session = ResumableSession(config, settings)
    config.pluginmanager.register(session, "resumable-session")
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_resumable.xdist import ControllerXdistHooks

        config.pluginmanager.register(ControllerXdistHooks(session), "resumable-xdist")
