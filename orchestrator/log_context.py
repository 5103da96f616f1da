"""Which run, step, interaction or schedule the current thread works on, for log lines.

The runtime binds ids where it knows them (a worker running a step, a decision, a
schedule's fire); a log formatter reads them back with `current()`. Context variables,
not thread-locals, so work handed to another thread carries nothing stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("run_id", "step_id", "interaction_id", "schedule_id")
_ids: ContextVar[dict[str, str]] = ContextVar("opsloop_log_ids", default={})  # noqa: B039


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Log lines written inside name these ids (and those bound around it)."""
    extra = {k: v for k, v in ids.items() if v is not None}
    token = _ids.set({**_ids.get(), **extra})
    try:
        yield
    finally:
        _ids.reset(token)


def current() -> dict[str, str]:
    """The ids bound in this context, e.g. {"run_id": "r-1", "step_id": "build"}."""
    return _ids.get()
