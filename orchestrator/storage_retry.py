"""Database work that failed for a passing reason runs again: one small, fixed policy.

A dropped connection (a PostgreSQL restart or failover, a terminated backend)
makes the next statement raise OperationalError, after which SQLAlchemy
replaces the pool's connections; SQLite raises it when its file stays locked
past the busy timeout. Each orchestrator transaction is all or nothing and
changes statuses with conditional UPDATEs, so running a failed one again from
the top is safe: at worst the retry finds the change already made. Storage
itself retries nothing; the policy lives here, next to the code that knows
which transactions may run twice.

    for attempt in storage_attempts():
        with attempt, write_transaction(engine) as conn:
            ...

One case stays open: a COMMIT whose reply is lost looks like a failure, and
the retry's conditional UPDATE then matches nothing; restart recovery
(`orchestrator.recovery`) settles such a step.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
import tenacity

log = logging.getLogger(__name__)
T = TypeVar("T")


def transient(exc: BaseException) -> bool:
    """True for errors that a new connection or a moment's wait may cure."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):  # sqlite3 also reports syntax errors this way
        return any(word in str(exc.orig) for word in ("locked", "busy"))
    return True  # PostgreSQL: lost or refused connections, serialization failures, deadlocks


@dataclass(frozen=True)
class StorageRetry:
    """Up to `attempts` tries, waiting first_wait_s, then twice as long each time, up to max."""

    attempts: int = 5
    first_wait_s: float = 0.25
    max_wait_s: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_wait_s < 0 or self.max_wait_s < self.first_wait_s:
            raise ValueError(f"unusable storage retry policy: {self}")

    def after_first_failure(self) -> tenacity.Retrying:
        """Tries 2 to `attempts`; the first, cheap one runs outside tenacity."""
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts - 1),
            wait=tenacity.wait_exponential(multiplier=2 * self.first_wait_s, max=self.max_wait_s),
            retry=tenacity.retry_if_exception(transient),
            before_sleep=lambda state: _log_retry(state.outcome, state.attempt_number + 2),
            reraise=True,
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, tried again after transient errors."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not transient(exc) or self.attempts == 1:
                raise
            _log_retry(exc, 2)
        time.sleep(self.first_wait_s)
        return self.after_first_failure()(fn, *args, **kwargs)


STORAGE_RETRY = StorageRetry()


def storage_attempts(policy: StorageRetry = STORAGE_RETRY) -> Iterator[Any]:
    """Attempts for `with attempt, write_transaction(...)`; the last failure is re-raised.

    The first attempt costs next to nothing (the engine makes thousands of transactions);
    tenacity takes over only after a transient failure.
    """
    first = _FirstAttempt(policy.attempts > 1)
    yield first
    if first.failure is None:
        return
    _log_retry(first.failure, 2)
    time.sleep(policy.first_wait_s)
    yield from policy.after_first_failure()


class _FirstAttempt:
    def __init__(self, may_retry: bool) -> None:
        self.may_retry = may_retry
        self.failure: BaseException | None = None

    def __enter__(self) -> _FirstAttempt:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is not None and self.may_retry and transient(exc):
            self.failure = exc
            return True  # swallowed: the next attempt runs the block again
        return False


_retries = [0]  # how many storage calls this process retried; a metric
_retries_lock = threading.Lock()  # rare: only on a transient failure


def retries() -> int:
    """How many times this process retried a storage call (read at scrape time)."""
    return _retries[0]


def _log_retry(outcome: Any, attempt: int) -> None:
    with _retries_lock:
        _retries[0] += 1
    exc = outcome.exception() if isinstance(outcome, Future) else outcome
    first_line = str(exc).splitlines()[0] if exc else ""
    log.warning("database error, trying again (attempt %d): %s", attempt, first_line)
