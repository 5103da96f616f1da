"""The test helpers that wait: a process killed but not yet reaped is not alive."""

from __future__ import annotations

import os
import subprocess

from tests.polling import process_alive, until


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    try:
        # exited, and left unreaped: WNOWAIT looks without collecting the exit status
        until(lambda: os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT),
              what="the child to exit")  # fmt: skip
        assert os.path.exists(f"/proc/{child.pid}")  # still in the process table
        assert not process_alive(child.pid)
    finally:
        child.wait()
    assert not process_alive(child.pid)


def test_a_running_process_is_alive() -> None:
    assert process_alive(os.getpid())
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert process_alive(child.pid)
    finally:
        child.kill()
        child.wait()
