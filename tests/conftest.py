from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# The suite the session tests run: each test appends its node id to a side file when its setup
# starts, so a test can assert exactly which tests ran and how often. A test listed in
# $RESUMABLE_BLOCK waits while the file $RESUMABLE_BLOCK_FILE exists: the harness interrupts
# the run while it waits, so "interrupted after N tests" is exact, not a race.
SUITE_CONFTEST = """
import os, time, pytest

@pytest.fixture(autouse=True)
def _side_log(request):
    with open(os.environ["RESUMABLE_LOG"], "a") as f:
        f.write(request.node.nodeid + "\\n")
    blockers = os.environ.get("RESUMABLE_BLOCK", "").split(",")
    block_file = os.environ.get("RESUMABLE_BLOCK_FILE", "")
    if request.node.nodeid in blockers and block_file:
        deadline = time.monotonic() + 60
        while os.path.exists(block_file) and time.monotonic() < deadline:
            time.sleep(0.01)
    yield
"""

SUITE_28 = """
import pytest

@pytest.mark.parametrize("i", range(28))
def test_n(i):
    assert i != 5, "five is not allowed"
"""


def node(i: int) -> str:
    return f"test_suite.py::test_n[{i}]"


@dataclass
class Suite:
    path: Path
    log: Path
    block_file: Path

    @property
    def journal(self) -> Path:
        return self.path / ".pytest_cache" / "d" / "resumable" / "journal.jsonl"

    def ran(self) -> list[str]:
        if not self.log.exists():
            return []
        return self.log.read_text().splitlines()

    def take_ran(self) -> list[str]:
        ran = self.ran()
        self.log.write_text("")
        return ran

    def records(self, kind: str | None = None) -> list[dict[str, object]]:
        out = []
        for line in self.journal.read_bytes().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if kind is None or rec.get("type") == kind:
                out.append(rec)
        return out


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PYTEST_RESUME_ID",
        "PYTEST_RESUME_JOURNAL",
        "PYTEST_ADDOPTS",
        "PYTEST_SHARD",
        "RESUMABLE_BLOCK",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Suite:
    log = pytester.path / "ran.log"
    block_file = pytester.path / "block"
    monkeypatch.setenv("RESUMABLE_LOG", str(log))
    monkeypatch.setenv("RESUMABLE_BLOCK_FILE", str(block_file))
    pytester.makeconftest(SUITE_CONFTEST)
    pytester.makeini("[pytest]\naddopts = -p no:randomly\n")
    return Suite(pytester.path, log, block_file)


def python_pytest(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args]


@dataclass
class Finished:
    returncode: int
    output: str


def interrupt(
    suite: Suite,
    args: Sequence[str],
    *,
    block_at: str | Sequence[str],
    sig: signal.Signals,
    wait_for: int | None = None,
    group: bool = False,
    timeout: float = 60,
) -> Finished:
    """Run pytest until ``block_at`` is running, then send ``sig`` from outside.

    ``wait_for``: instead wait until the side log has at least that many lines and has stopped
    growing (under xdist, which blocked tests run depends on scheduling). ``group``: signal the
    whole process group (what a terminal's Ctrl-C does), else only the pytest process.
    """
    blockers = [block_at] if isinstance(block_at, str) else list(block_at)
    suite.block_file.write_text("")
    env = {**os.environ, "RESUMABLE_BLOCK": ",".join(blockers)}
    proc = subprocess.Popen(
        python_pytest(*args),
        cwd=suite.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        seen, stable_since = -1, time.monotonic()
        while True:
            ran = suite.ran()
            if len(ran) != seen:
                seen, stable_since = len(ran), time.monotonic()
            if wait_for is None and all(b in ran for b in blockers):
                break
            if wait_for is not None and seen >= wait_for and time.monotonic() - stable_since > 0.4:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.communicate()[0].decode(errors="replace")
                raise AssertionError(f"pytest ended or hung before the blocker ran:\n{out}")
            time.sleep(0.01)
        time.sleep(0.05)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        out = proc.communicate(timeout=timeout)[0].decode(errors="replace")
        return Finished(proc.returncode, out)
    finally:
        suite.block_file.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            # reap anything left in the group (xdist workers of a killed controller)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def literal(text: str) -> str:
    """``text`` as an fnmatch pattern that matches only itself, ``*`` kept as a wildcard."""
    return text.replace("[", "\x00").replace("]", "[]]").replace("\x00", "[[]")


def cli(
    *args: str | os.PathLike[str], cwd: os.PathLike[str] | str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``pytest-resumable ARGS`` run as a user runs it, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_resumable", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def lock_holder(path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process that holds the journal lock until it is killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock, time\n"
            f"lock = filelock.FileLock({str(path) + '.lock'!r}); lock.acquire()\n"
            "print('held', flush=True)\ntime.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
