"""Remote xdist workers over a real ssh: a private ``sshd`` on a loopback port, ``--tx ssh=...``.

The workers are started by sshd, not by the controller: they have their own working directory
(xdist rsyncs the suite there), their own rootdir and pytest cache, and only what comes over
the execnet channel. The run is killed, resumed, and must run exactly the tests without a
result; the journal must be written by the controller alone.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Suite, interrupt, python_pytest

HOST_ALIAS = "resumable-remote"

MODULE = """
import pytest

@pytest.mark.parametrize("i", range(16))
def test_r(i):
    assert i != 9, "nine fails"
"""

IDS = [f"test_remote.py::test_r[{i}]" for i in range(16)]
# the first four run through, every later one blocks: each worker stops at its first blocked
# test, so the first attempt always ends with 4 tests run through and 2 in flight (6 lines)
BLOCKERS = IDS[4:]

# Appended to the suite's conftest: every process (controller and workers) says who it is,
# and a worker that opens anything named like the journal fails loudly.
WHO_AM_I = """
import builtins, json, os

def _guard(real):
    def guarded(path, *args, **kwargs):
        if os.path.basename(str(path)).startswith("journal.jsonl"):
            raise AssertionError(f"worker {os.getpid()} opened the journal: {path}")
        return real(path, *args, **kwargs)
    return guarded

def pytest_configure(config):
    worker = hasattr(config, "workerinput")
    with open(os.environ["RESUMABLE_PIDS"], "a") as f:
        f.write(json.dumps({
            "pid": os.getpid(),
            "worker": worker,
            "ssh": os.environ.get("SSH_CONNECTION"),
            "cwd": os.getcwd(),
        }) + "\\n")
    if worker:
        os.open = _guard(os.open)
        builtins.open = _guard(builtins.open)
"""


@dataclass
class Sshd:
    config: Path  # the client's ssh_config, for execnet's ``ssh_config=`` spec key
    port: int
    log: Path


def _find(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((f for f in fallbacks if os.access(f, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    sshd_bin = _find("sshd", "/usr/sbin/sshd", "/usr/local/sbin/sshd")
    ssh_bin = _find("ssh")
    keygen = _find("ssh-keygen")
    if not (sshd_bin and ssh_bin and keygen):
        pytest.skip(
            "OpenSSH not found (need sshd, ssh and ssh-keygen; .ci/run installs openssh-server)"
        )
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "resumable-test", "-f", str(d / key)],
            check=True,
            capture_output=True,
        )
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    (d / "known_hosts").write_text(f"{HOST_ALIAS} {(d / 'host_key.pub').read_text()}")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        # sshd started as root needs its privilege-separation directory; a packaged sshd gets
        # it from its service unit, which never ran here (e.g. in a container)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = d / "sshd.log"
    proc = None
    port = 0
    for _ in range(3):  # the free port may be taken between probing it and sshd binding it
        port = _free_port()
        (d / "sshd_config").write_text(
            f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / "host_key"}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
UseDNS no
AcceptEnv RESUMABLE_*
LogLevel VERBOSE
"""
        )
        log.write_text("")
        proc = subprocess.Popen(
            [sshd_bin, "-D", "-f", str(d / "sshd_config"), "-E", str(log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while proc.poll() is None and not _listening(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None and _listening(port):
            break
        proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        pytest.skip(f"sshd could not be started: {log.read_text().strip()[-500:]}")
    config = d / "ssh_config"
    config.write_text(
        f"""\
Host {HOST_ALIAS}
    HostName 127.0.0.1
    Port {port}
    User {getpass.getuser()}
    IdentityFile {d / "client_key"}
    IdentitiesOnly yes
    HostKeyAlias {HOST_ALIAS}
    UserKnownHostsFile {d / "known_hosts"}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    SendEnv RESUMABLE_*
    LogLevel ERROR
"""
    )
    try:
        # the server and the client configuration work: fail here, not inside xdist
        probe = subprocess.run(
            [ssh_bin, "-F", str(config), HOST_ALIAS, "echo", "$SSH_CONNECTION"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        why = f"ssh to the test sshd failed: {probe.stderr}\nsshd log:\n{log.read_text()}"
        assert probe.returncode == 0, why
        assert probe.stdout.strip(), why
        yield Sshd(config, port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _who(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited; only its parent (sshd's session process) has not reaped it yet
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    """Wait for the processes to end; kill (and return) those still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_ssh_workers_resume_exactly_and_never_touch_the_journal(
    sshd: Sshd, suite: Suite, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = pytester.path / "pids.jsonl"
    monkeypatch.setenv("RESUMABLE_PIDS", str(pids))
    pytester.makeconftest(pytester.path.joinpath("conftest.py").read_text() + WHO_AM_I)
    pytester.makepyfile(test_remote=MODULE)
    remote = pytester.path.parent / f"{pytester.path.name}-remote"  # outside the rsynced dir
    for n in (1, 2):
        (remote / f"w{n}").mkdir(parents=True)  # execnet's chdir does not create it
    txs = [
        f"ssh={HOST_ALIAS}//ssh_config={sshd.config}//python={sys.executable}"
        f"//chdir={remote / f'w{n}'}"
        for n in (1, 2)
    ]
    # the suite directory is both the rsync root and the argument, so on each worker the
    # rootdir is its copy of the suite and node ids are the controller's
    args = [
        *(a for tx in txs for a in ("--tx", tx)),
        "--dist",
        "load",
        "--rsyncdir",
        str(suite.path),
        str(suite.path),
    ]

    # SIGKILL to the controller's process group (a killed CI job): the controller and its ssh
    # clients die at once. The remote workers are sshd's children, not in that group: they
    # notice the lost connection and end by themselves; wait for that, so that none of them
    # writes to the side log after this point
    first = interrupt(suite, args, block_at=BLOCKERS, sig=signal.SIGKILL, group=True, wait_for=6)
    workers_1 = [w for w in _who(pids) if w["worker"]]
    assert len(workers_1) == 2, (first.output, _who(pids))
    lingering = _wait_gone([int(w["pid"]) for w in workers_1])
    ran_first = suite.take_ran()
    recorded = [str(r["test"]) for r in suite.records("result")]
    assert len(recorded) == len(set(recorded))
    assert 1 <= len(recorded) <= 4, (recorded, first.output)
    in_flight = set(ran_first) - set(recorded)
    assert 1 <= len(in_flight) <= 2, (ran_first, recorded)

    resumed = subprocess.run(
        python_pytest("--resume", *args),
        cwd=suite.path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = resumed.stdout + resumed.stderr
    assert "INTERNALERROR" not in out, out
    ran_second = suite.take_ran()
    # exactly the tests without a result, each once
    assert Counter(ran_second) == Counter(t for t in IDS if t not in recorded), out
    assert set(ran_first) | set(ran_second) == set(IDS)
    assert Counter(str(r["test"]) for r in suite.records("result")) == Counter(IDS)
    assert resumed.returncode == 1, out  # test_r[9] fails, whichever attempt ran it
    assert "complete after 2 attempts (15 passed, 1 failed)" in out, out

    # Who wrote the journal: every attempt record names the controller of its attempt, which
    # ran here; every worker ran over ssh, in its own directory, and none opened the journal
    who = _who(pids)
    controllers = [w for w in who if not w["worker"]]
    workers = [w for w in who if w["worker"]]
    assert len(controllers) == 2, who
    assert all(c["ssh"] is None for c in controllers), who
    assert len(workers) == 4, who
    for w in workers:
        assert w["ssh"], f"worker {w['pid']} did not run over ssh: {w}"
        assert str(w["cwd"]).startswith(str(remote)), w
    attempts = suite.records("attempt")
    assert [a["pid"] for a in attempts] == [c["pid"] for c in controllers]
    assert not {a["pid"] for a in attempts} & {w["pid"] for w in workers}
    # a worker that had used its own default journal would have left it in its rootdir
    assert not [p for p in remote.rglob("*") if p.name.startswith("journal.jsonl")]
    assert list(remote.glob("w*/*/test_remote.py")), "the suite was not rsynced to the workers"
    assert not lingering, (
        f"remote workers still alive 15 s after the controller was killed: {lingering}"
    )
    _wait_gone([int(w["pid"]) for w in workers])
