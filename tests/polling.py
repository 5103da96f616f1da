"""Waiting for something in a test: poll a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(condition: Callable[[], T], timeout: float = 20.0, what: str = "") -> T:
    """Return `condition()`'s first truthy value; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.01)


def process_alive(pid: int) -> bool:
    """Whether a process (not yet reaped) exists: the condition tests wait on after a kill."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
