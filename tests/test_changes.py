"""The audit log read as a feed of changes: each entry once, late commits not skipped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from orchestrator import runs
from orchestrator.changes import ChangeFeed
from storage.engine import create_engine
from storage.schema import setup
from storage.types import utcnow


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url)
    setup(engine)
    yield engine
    engine.dispose()


def note(conn, action: str, iid: str) -> None:
    runs.audit(conn, "U0X", action, now=utcnow(), interaction_id=iid)


def test_each_entry_is_returned_once_and_old_ones_are_skipped(engine: Engine) -> None:
    with engine.begin() as conn:
        note(conn, "interaction.opened", "before")
    feed = ChangeFeed(engine)
    feed.start_at_end()
    assert feed.poll() == []
    with engine.begin() as conn:
        note(conn, "interaction.opened", "a")
        note(conn, "interaction.answered", "a")
    assert [(c.action, c.interaction_id) for c in feed.poll()] == [
        ("interaction.opened", "a"), ("interaction.answered", "a")]  # fmt: skip
    assert feed.poll() == []


@pytest.mark.postgres
def test_an_entry_committed_after_a_later_one_is_still_returned(pg_engine: Engine) -> None:
    """On PostgreSQL ids are taken before the commit: a slow transaction's entry appears
    after a quicker one's with a larger id, and must not be stepped over."""
    feed = ChangeFeed(pg_engine)
    feed.start_at_end()
    slow = pg_engine.connect()
    slow_tx = slow.begin()
    note(slow, "interaction.opened", "slow")  # takes the smaller id, not committed yet
    with pg_engine.begin() as conn:
        note(conn, "interaction.opened", "quick")
    assert [c.interaction_id for c in feed.poll()] == ["quick"]
    slow_tx.commit()
    slow.close()
    assert [c.interaction_id for c in feed.poll()] == ["slow"]
    assert feed.poll() == []


@pytest.mark.postgres
def test_a_late_entry_is_returned_once_while_an_earlier_one_is_still_missing(
    pg_engine: Engine,
) -> None:
    """Two slow transactions: the second commits, the first has not yet. The second's entry
    is returned when it shows up, and not again at each poll until the first commits."""
    feed = ChangeFeed(pg_engine)
    feed.start_at_end()
    first, second = pg_engine.connect(), pg_engine.connect()
    try:
        first_tx, second_tx = first.begin(), second.begin()
        note(first, "interaction.opened", "first")  # the smallest id, committed last
        note(second, "interaction.opened", "second")
        with pg_engine.begin() as conn:
            note(conn, "interaction.opened", "quick")
        assert [c.interaction_id for c in feed.poll()] == ["quick"]
        second_tx.commit()
        assert [c.interaction_id for c in feed.poll()] == ["second"]
        assert feed.poll() == []  # "second" again, at every poll for GAP_S, before the fix
        first_tx.commit()
        assert [c.interaction_id for c in feed.poll()] == ["first"]
        assert feed.poll() == []
    finally:
        first.close()  # an open transaction would block the schema's drop
        second.close()
