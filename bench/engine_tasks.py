"""Python tasks that bench/engine.py's workflows run (`python: engine_tasks:<function>`).

bench/engine.py puts bench/ on sys.path, so the module imports as `engine_tasks`.
Each task returns `{"at": time.monotonic()}` taken as it starts, so the bench can
tell when a step began from the step's outputs, with no clock skew: the steps
run in the bench's own process.
"""

from __future__ import annotations

import time


def _nap(seconds: float) -> dict[str, float]:
    at = time.monotonic()
    time.sleep(seconds)
    return {"at": at}


def sleep_1000ms() -> dict[str, float]:
    """An I/O-like step: waits 1 s without using the CPU."""
    return _nap(1.0)


def sleep_200ms() -> dict[str, float]:
    return _nap(0.2)


def sleep_200ms_ctx(ctx: object) -> dict[str, float]:
    """As sleep_200ms, but it takes `ctx`: it could ask a person, so the engine runs it
    as its own LangGraph thread."""
    return _nap(0.2)


def sleep_100ms() -> dict[str, float]:
    return _nap(0.1)


def noop() -> dict[str, float]:
    """A near-empty step: what is left of its wall time is the engine's."""
    return {"at": time.monotonic()}
