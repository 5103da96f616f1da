"""LISTEN/NOTIFY wake-ups (orchestrator/notices.py) on the real PostgreSQL."""

from __future__ import annotations

import threading
import uuid

import pytest

from orchestrator.notices import Listener, notify
from storage.engine import create_engine
from tests.polling import until


@pytest.mark.postgres
def test_a_notice_sent_before_the_listener_listens_is_acted_on_when_it_starts(
    pg_url: str,
) -> None:
    """A question opened by another process while this one was starting (before its LISTEN
    took effect) was announced to nobody and waited for the next poll; now a listener
    catches up once as soon as it listens."""
    engine = create_engine(pg_url)
    what = f"due-{uuid.uuid4().hex[:8]}"
    called = threading.Event()
    listener = Listener(engine, "me", {what: called.set})
    try:
        with engine.begin() as conn:
            notify(conn, what, sender="another-process")  # delivered before anyone listens
        listener.start()
        until(called.is_set, timeout=30, what="the handler of the notice sent before LISTEN")
    finally:
        listener.stop()
        engine.dispose()
