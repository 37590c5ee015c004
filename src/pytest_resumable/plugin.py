"""pytest11 entry point: options, ini values, validation, and registering the plugin objects.

No state lives here: the controller's state is on
:class:`~pytest_resumable.controller.ControllerPlugin`, a worker's on
:class:`~pytest_resumable.worker.WorkerPlugin`.
"""

from __future__ import annotations

import pytest

from pytest_resumable.defaults import DEFAULT_COMPACT_BYTES, JOURNAL_NAME


def pytest_addoption(parser: pytest.Parser) -> None:
    # long but flat: one declaration per option and ini value (SPEC §3)
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
        help="name the run (in CI: the pipeline's run id; 'auto' reads it from GitHub, "
        "GitLab, CircleCI, Buildkite or Azure); implies --resume. Default: $PYTEST_RESUME_ID",
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
        help="journal file; write --resume-journal=PATH (with '='): with a space, pytest may "
        "take an existing file for a test path. Default: $PYTEST_RESUME_JOURNAL, the "
        f"resume_journal ini value, or <cache_dir>/d/resumable/{JOURNAL_NAME}",
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
        "run, so a retried shard runs exactly the rest of its own tests; 'auto' reads K and N "
        "from GitLab, CircleCI, Buildkite or Azure. Default: $PYTEST_SHARD",
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


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin object of this process: a worker's, or the controller's."""
    if hasattr(config, "workerinput"):
        from pytest_resumable.worker import (
            CHANNEL_KEY,
            WORKERINPUT_KEY,
            WorkerPlugin,
            WorkerSnapshot,
        )

        workerinput = config.workerinput
        if WORKERINPUT_KEY in workerinput and CHANNEL_KEY in workerinput:
            snapshot = WorkerSnapshot.from_dict(workerinput[WORKERINPUT_KEY])
            plugin = WorkerPlugin(snapshot, workerinput[CHANNEL_KEY])
            config.pluginmanager.register(plugin, "resumable-worker")
        return

    from pytest_resumable.options import read_settings

    settings = read_settings(config)
    if not settings.explicit and not config.getini("resume_record"):
        return

    from pytest_resumable.controller import ControllerPlugin, XdistControllerHooks

    controller = ControllerPlugin(config, settings)
    config.pluginmanager.register(controller, "resumable-controller")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistControllerHooks(controller), "resumable-xdist")
