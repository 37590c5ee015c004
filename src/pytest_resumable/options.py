"""The validated options of a session, and the one journal-path resolver (the CLI uses it too).

No pytest import at module level: the command line tool imports this module and must start
fast; ``pytest.UsageError`` is imported where it is raised.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_resumable.defaults import CACHE_SUBDIR, DEFAULT_COMPACT_BYTES, JOURNAL_NAME
from pytest_resumable.journal.records import FSYNC_MODES, FsyncMode
from pytest_resumable.values import Frozen

if TYPE_CHECKING:
    import pytest

ORDER_MODES = ("duration", "none")


class Settings(Frozen):
    """The validated options of one session."""

    journal: Path
    #: the journal is the default one inside pytest's cache (created through config.cache)
    journal_in_cache: bool
    resume: bool  # --resume, --resume-id, $PYTEST_RESUME_ID or --resume-retry-failed
    explicit: bool  # any option of the plugin was given: journal problems are errors
    resume_id: str | None
    new: bool
    retry_failed: bool
    fsync: FsyncMode
    lock_timeout: float
    shard: tuple[int, int] | None  # (K, N), K 1-based
    order: str
    compact_bytes: int

    def __init__(
        self,
        journal: Path,
        journal_in_cache: bool,
        resume: bool,
        explicit: bool,
        resume_id: str | None,
        new: bool,
        retry_failed: bool,
        fsync: FsyncMode,
        lock_timeout: float,
        shard: tuple[int, int] | None = None,
        order: str = "duration",
        compact_bytes: int = DEFAULT_COMPACT_BYTES,
    ) -> None:
        self.__dict__.update(
            journal=journal,
            journal_in_cache=journal_in_cache,
            resume=resume,
            explicit=explicit,
            resume_id=resume_id,
            new=new,
            retry_failed=retry_failed,
            fsync=fsync,
            lock_timeout=lock_timeout,
            shard=shard,
            order=order,
            compact_bytes=compact_bytes,
        )

    @property
    def shard_spec(self) -> str | None:
        return f"{self.shard[0]}/{self.shard[1]}" if self.shard else None


class OptionError(ValueError):
    """A malformed option value; ``str()`` names the option and the accepted form."""

    def __init__(self, option: str, problem: str, accepted: str) -> None:
        super().__init__(f"{option}: {problem}; expected {accepted}")


def read_settings(config: pytest.Config) -> Settings:
    """Validate the options; raise ``pytest.UsageError`` naming the option otherwise."""
    import pytest

    try:
        return _read_settings(config)
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def _read_settings(config: pytest.Config) -> Settings:
    opt = config.option
    env = os.environ
    resume_id = parse_resume_id(opt.resumable_resume_id, env)
    if opt.resumable_resume and opt.resumable_new:
        raise OptionError(
            "--resume-new",
            "cannot be combined with --resume (one continues a run, the other starts a new one)",
            "one of them",
        )
    fsync = _choice(opt.resumable_fsync, "--resume-fsync", config, "resume_fsync", FSYNC_MODES)
    order = _choice(opt.resumable_order, "--resume-order", config, "resume_order", ORDER_MODES)
    lock_timeout = _number(config, "resume_lock_timeout", "a number of seconds >= 0")
    compact_bytes = int(_number(config, "resume_compact_bytes", "a number of bytes >= 0", int))
    shard = parse_shard(opt.resumable_shard, env)
    journal, in_cache = plugin_journal_path(config)
    resume = bool(opt.resumable_resume or resume_id is not None or opt.resumable_retry_failed)
    explicit = resume or bool(opt.resumable_new) or shard is not None
    return Settings(
        journal=journal,
        journal_in_cache=in_cache,
        resume=resume and not opt.resumable_new,
        explicit=explicit,
        resume_id=resume_id,
        new=bool(opt.resumable_new),
        retry_failed=bool(opt.resumable_retry_failed),
        fsync=fsync,  # type: ignore[arg-type]  # checked against FSYNC_MODES
        lock_timeout=lock_timeout,
        shard=shard,
        order=order,
        compact_bytes=compact_bytes,
    )


def _choice(
    value: str | None, option: str, config: pytest.Config, ini: str, accepted: tuple[str, ...]
) -> str:
    if value is None:
        value = str(config.getini(ini)).strip() or accepted[0 if ini != "resume_fsync" else 1]
        option = ini
    if value not in accepted:
        raise OptionError(option, f"unknown mode {value!r}", "one of " + ", ".join(accepted))
    return value


def _number(config: pytest.Config, ini: str, accepted: str, kind: type = float) -> float:
    raw = str(config.getini(ini)).strip()
    try:
        value = kind(raw)
        if not 0 <= value < float("inf"):
            raise ValueError
    except ValueError:
        raise OptionError(ini, f"invalid value {raw!r}", accepted) from None
    return float(value)


def parse_resume_id(value: str | None, env: Mapping[str, str]) -> str | None:
    """``--resume-id`` or ``$PYTEST_RESUME_ID``; ``auto`` takes the CI's pipeline id."""
    option = "--resume-id"
    if value is None and env.get("PYTEST_RESUME_ID"):
        value, option = env["PYTEST_RESUME_ID"], "PYTEST_RESUME_ID"
    if value is None:
        return None
    if value == "auto":
        from pytest_resumable.ci import CIDetectionError, detect_run_id

        try:
            return detect_run_id(env)
        except CIDetectionError as exc:
            raise OptionError(option, str(exc), "a run id, or auto inside a known CI") from None
    if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise OptionError(
            option, f"invalid run id {value!r}", "a non-empty name without control characters"
        )
    if len(value) > 200:
        raise OptionError(option, "run id too long", "at most 200 characters")
    return value


def parse_shard(value: str | None, env: Mapping[str, str]) -> tuple[int, int] | None:
    """``--shard K/N`` or ``$PYTEST_SHARD``; ``auto`` takes the CI's shard variables."""
    name = "--shard"
    if value is None and env.get("PYTEST_SHARD"):
        value, name = env["PYTEST_SHARD"], "PYTEST_SHARD"
    if value is None:
        return None
    if value.strip() == "auto":
        from pytest_resumable.ci import CIDetectionError, detect_shard

        try:
            return detect_shard(env)
        except CIDetectionError as exc:
            raise OptionError(name, str(exc), "K/N, or auto inside a known CI") from None
    k_text, sep, n_text = value.strip().partition("/")
    if not sep or not k_text.isdigit() or not n_text.isdigit() or len(value) > 20:
        raise OptionError(name, f"invalid shard {value!r}", "K/N with 1 <= K <= N, e.g. 2/4")
    k, n = int(k_text), int(n_text)
    if n < 1 or not 1 <= k <= n:
        raise OptionError(name, f"invalid shard {value!r}", "K/N with 1 <= K <= N, e.g. 2/4")
    if n > 10000:
        raise OptionError(name, f"too many shards in {value!r}", "N at most 10000")
    return k, n


# --------------------------------------------------------------------------------------------
# The journal path: one resolver for the plugin and the CLI


def _expand(value: str, base: Path) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else base / path


def resolve_journal(
    *,
    explicit: str | None,
    env: Mapping[str, str],
    invocation_dir: Path,
    ini_journal: str,
    ini_dir: Path,
    cache_dir: str | None,
    rootpath: Path,
) -> tuple[Path | None, bool]:
    """The journal path and whether it is the default one inside pytest's cache.

    In order: ``--resume-journal`` / ``--journal`` (relative to where the command runs),
    ``$PYTEST_RESUME_JOURNAL`` (same), the ``resume_journal`` ini value (relative to the ini
    file), ``<cache_dir>/d/resumable/journal.jsonl``. ``cache_dir`` None: pytest's cache is off
    (``-p no:cacheprovider``), so there is no default journal (``None``).
    """
    if explicit is not None:
        if not explicit.strip():
            raise OptionError("--resume-journal", "empty path", "a file path")
        return _expand(explicit, invocation_dir), False
    if env.get("PYTEST_RESUME_JOURNAL"):
        return _expand(env["PYTEST_RESUME_JOURNAL"], invocation_dir), False
    if ini_journal.strip():
        return _expand(ini_journal.strip(), ini_dir), False
    if cache_dir is None:
        return None, True
    return _expand(cache_dir, rootpath) / "d" / CACHE_SUBDIR / JOURNAL_NAME, True


def plugin_journal_path(config: pytest.Config) -> tuple[Path, bool]:
    try:
        cache_dir: str | None = str(config.getini("cache_dir"))
    except (ValueError, KeyError):  # -p no:cacheprovider removes the ini value
        cache_dir = None
    if not config.pluginmanager.has_plugin("cacheprovider"):
        cache_dir = None
    path, in_cache = resolve_journal(
        explicit=config.option.resumable_journal,
        env=os.environ,
        invocation_dir=config.invocation_params.dir,
        ini_journal=str(config.getini("resume_journal")),
        ini_dir=config.inipath.parent if config.inipath else config.rootpath,
        cache_dir=cache_dir,
        rootpath=config.rootpath,
    )
    # no cache and no journal named: Path() marks "nothing to record" for the controller
    return (path if path is not None else Path()), in_cache


_INI_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def locate_ini(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """The ini file pytest would use from ``start`` (no test paths given), and its values:
    the first of pytest.ini, .pytest.ini, pyproject.toml with a pytest table, tox.ini with
    [pytest], setup.cfg with [tool:pytest], from ``start`` upwards (pytest's own rules)."""
    for directory in (start, *start.parents):
        for name in _INI_FILES:
            path = directory / name
            if not path.is_file():
                continue
            values = _ini_values(path)
            if values is not None:
                return path, values
    return None, {}


def _ini_values(path: Path) -> dict[str, Any] | None:
    import configparser  # the command line's path resolver only

    try:
        if path.name == "pyproject.toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - pytest depends on tomli before 3.11
                import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
            with open(path, "rb") as f:
                data = tomllib.load(f)
            tool = data.get("tool", {}).get("pytest", None)
            if not isinstance(tool, dict):
                return None
            table = tool.get("ini_options", tool)
            return dict(table) if isinstance(table, dict) else {}
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path, encoding="utf-8")
        section = {"tox.ini": "pytest", "setup.cfg": "tool:pytest"}.get(path.name, "pytest")
        if parser.has_section(section):
            return dict(parser.items(section))
        return {} if path.name in ("pytest.ini", ".pytest.ini") else None
    except (OSError, ValueError, configparser.Error):
        return None


def cli_journal_path(explicit: str | None, cwd: Path) -> Path:
    """The journal the command line tool uses: the same resolution as a pytest session
    started in ``cwd`` (rootdir = the ini file's directory, else ``cwd``)."""
    if explicit is not None and explicit.strip():
        return Path(os.path.expanduser(explicit))  # relative to cwd, shown as given
    inipath, values = locate_ini(cwd)
    rootpath = inipath.parent if inipath is not None else cwd
    cache_dir = values.get("cache_dir")
    path, _ = resolve_journal(
        explicit=explicit,
        env=os.environ,
        invocation_dir=cwd,
        ini_journal=str(values.get("resume_journal") or ""),
        ini_dir=rootpath,
        cache_dir=str(cache_dir) if cache_dir else ".pytest_cache",
        rootpath=rootpath,
    )
    assert path is not None
    return path
