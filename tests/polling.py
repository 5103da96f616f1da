"""Waiting for something in a test: poll a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def until(condition: Callable[[], T], timeout: float = 60.0, what: str = "") -> T:
    """Return `condition()`'s first truthy value; AssertionError after `timeout` seconds.

    A deadline, not a speed check: generous, as CI runs the suite on two loaded cores and a
    passing test never waits it out."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.01)


def process_alive(pid: int) -> bool:
    """Whether a process runs: not gone, and not a zombie (dead, its exit status not yet
    collected by its parent, which for a step's grandchild may be an init that never does).
    The condition tests wait on after a kill."""
    try:
        os.kill(pid, 0)  # a zombie takes signals too
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's, alive
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # gone since
        return False
    except OSError:  # no /proc here: os.kill's answer
        return True
    state = stat.rpartition(")")[2].split()[0]  # after "pid (command)", which may hold ")"
    return state not in ("Z", "X")
