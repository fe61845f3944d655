"""Process helpers shared by the tests that check a child dies with its parent (PR_SET_PDEATHSIG)."""

import os
import subprocess
import time
from pathlib import Path


def assert_dies_with_parent(parent: subprocess.Popen, pid_file: Path, what: str = "the child", *,
                            start_timeout: float = 60.0, death_timeout: float = 5.0) -> None:
    """Wait for ``parent``'s child to write its pid to ``pid_file``, SIGKILL the parent, and assert the child is
    gone within ``death_timeout`` seconds. A child that outlives its parent is killed here, then the test fails."""
    deadline = time.time() + start_timeout
    while not pid_file.is_file() or not pid_file.read_text():
        if time.time() >= deadline:
            parent.kill()
            parent.wait()
            raise AssertionError(f"{what} never started (no pid in {pid_file} after {start_timeout:.0f} s)")
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    deadline = time.time() + death_timeout
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, 9)
    raise AssertionError(f"{what} (pid {child}) outlived its parent by {death_timeout:.0f} s")
