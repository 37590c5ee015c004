"""An interrupted, then resumed, ``pytest -n 2`` run of examples/suite (``tox -e demo``).

It runs the commands a user would type, in a scratch copy of the suite, and shows their output:
1. ``pytest -n 2`` — interrupted with Ctrl-C (SIGINT) about halfway through;
2. ``pytest -n 2 --resume`` — runs only the tests that have no result yet and reports the
   whole run (the carried failure keeps the exit status 1);
3. ``pytest-resumable status`` — the runs in the journal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def banner(text: str) -> None:
    print(f"\n\033[1m$ {text}\033[0m", flush=True)


def results_in(journal: Path) -> int:
    if not journal.exists():
        return 0
    count = 0
    for line in journal.read_bytes().splitlines():
        try:
            count += json.loads(line).get("type") == "result"
        except ValueError:
            pass
    return count


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="resumable-demo-"))
    try:
        shutil.copytree(HERE / "suite", work / "tests")
        (work / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
        journal = work / ".pytest_cache" / "d" / "resumable" / "journal.jsonl"
        env = {**os.environ, "PY_COLORS": "1"}
        # Run the commands as in a user's shell: tox's TOX_ENV_DIR would move pytest's cache
        # (and so the journal) into .tox/, and none of these should leak in either.
        for name in ("PYTEST_ADDOPTS", "TOX_ENV_DIR", "PYTEST_RESUME_ID", "PYTEST_RESUME_JOURNAL"):
            env.pop(name, None)
        pytest = [sys.executable, "-m", "pytest"]

        banner("pytest -n 2      # interrupted with Ctrl-C about halfway through")
        proc = subprocess.Popen([*pytest, "-n", "2"], cwd=work, env=env)
        deadline = time.monotonic() + 120
        while results_in(journal) < 262 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        first = proc.wait()
        print(f"(exit status {first}: interrupted)")

        banner("pytest -n 2 --resume")
        second = subprocess.run([*pytest, "-n", "2", "--resume"], cwd=work, env=env).returncode
        print(f"(exit status {second}: the run is complete, and red because two tests failed)")

        banner("pytest-resumable status")
        status = subprocess.run(
            [sys.executable, "-m", "pytest_resumable", "status"], cwd=work, env=env
        ).returncode
        ok = first == 2 and second == 1 and status == 0
        print("\ndemo " + ("finished as expected" if ok else "did NOT behave as expected"))
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
