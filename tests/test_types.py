"""storage.types.UtcDateTime on the real databases: aware UTC in and out, naive refused,
and rows written before it (by plain DateTime(timezone=True)) still read back right."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine

from storage.models import AuditEntry
from storage.types import UtcDateTime

AUDIT: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
INDIA = timezone(timedelta(hours=5, minutes=30))
NEW_YORK_WINTER = timezone(timedelta(hours=-5))
# The column type every timestamp had before UtcDateTime: what older releases wrote with.
OLD_INSERT = sa.text(
    "INSERT INTO audit_log (at, actor, action, detail) VALUES (:at, :actor, 'old', '{}')"
).bindparams(sa.bindparam("at", type_=sa.DateTime(timezone=True)))


def _write(engine: Engine, actor: str, *moments: datetime) -> None:
    rows = [{"at": m, "actor": actor, "action": "test", "detail": {}} for m in moments]
    with engine.begin() as conn:
        conn.execute(sa.insert(AUDIT), rows)


def _read(engine: Engine, actor: str) -> list[datetime]:
    with engine.connect() as conn:
        stmt = sa.select(AUDIT.c.at).where(AUDIT.c.actor == actor).order_by(AUDIT.c.id)
        return list(conn.execute(stmt).scalars())


def test_a_time_in_another_zone_reads_back_aware_utc_and_equal(engine: Engine) -> None:
    actor = f"u-{uuid.uuid4().hex[:8]}"
    written = datetime(2030, 1, 7, 14, 30, 15, 123456, tzinfo=INDIA)
    _write(engine, actor, written)
    (read,) = _read(engine, actor)
    assert read.tzinfo is UTC
    assert read == written
    assert (read.hour, read.minute, read.microsecond) == (9, 0, 123456)


def test_where_and_order_by_compare_instants_not_wall_clocks(engine: Engine) -> None:
    actor = f"u-{uuid.uuid4().hex[:8]}"
    # Wall clocks say 10:00 > 07:00 > 03:00; the instants are 04:30Z < 07:00Z < 08:00Z.
    early = datetime(2030, 1, 7, 10, 0, tzinfo=INDIA)
    middle = datetime(2030, 1, 7, 7, 0, tzinfo=UTC)
    late = datetime(2030, 1, 7, 3, 0, tzinfo=NEW_YORK_WINTER)
    _write(engine, actor, late, early, middle)
    bound = datetime(2030, 1, 7, 12, 30, tzinfo=INDIA)  # 07:00Z, given in a third form
    with engine.connect() as conn:
        mine = AUDIT.c.actor == actor
        before = conn.execute(sa.select(AUDIT.c.at).where(mine, AUDIT.c.at < bound)).scalars()
        from_bound = conn.execute(
            sa.select(AUDIT.c.at).where(mine, AUDIT.c.at >= bound).order_by(AUDIT.c.at)
        ).scalars()
        ordered = conn.execute(sa.select(AUDIT.c.at).where(mine).order_by(AUDIT.c.at)).scalars()
        equal = conn.execute(sa.select(sa.func.count()).where(mine, AUDIT.c.at == bound))
        assert list(before) == [early]
        assert list(from_bound) == [middle, late]
        assert list(ordered) == [early, middle, late]
        assert equal.scalar_one() == 1


def test_naive_input_is_refused_with_a_message(engine: Engine) -> None:
    actor = f"u-{uuid.uuid4().hex[:8]}"
    naive = datetime(2030, 1, 7, 9, 0)
    with pytest.raises(sa.exc.StatementError, match="naive datetime 2030-01-07T09:00:00") as e:
        _write(engine, actor, naive)
    assert isinstance(e.value.orig, ValueError)
    assert _read(engine, actor) == []
    _write(engine, actor, naive.replace(tzinfo=UTC))
    with engine.connect() as conn, pytest.raises(sa.exc.StatementError, match="time zone"):
        conn.execute(sa.select(AUDIT.c.id).where(AUDIT.c.at < naive))


def test_rows_written_by_the_old_column_type_read_back_aware(engine: Engine) -> None:
    actor = f"u-{uuid.uuid4().hex[:8]}"
    moment = datetime(2030, 1, 7, 9, 0, 0, 250000, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(OLD_INSERT, {"at": moment, "actor": actor})
    _write(engine, actor, moment.astimezone(INDIA))
    old, new = _read(engine, actor)
    assert old.tzinfo is UTC and new.tzinfo is UTC
    assert old == new == moment


def test_the_stored_form_is_what_the_old_column_type_wrote(engine: Engine) -> None:
    """No migration: on SQLite both write the same naive UTC text, on PostgreSQL the column
    stays timestamptz."""
    actor = f"u-{uuid.uuid4().hex[:8]}"
    moment = datetime(2030, 1, 7, 9, 0, 0, 250000, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(OLD_INSERT, {"at": moment, "actor": actor})
    _write(engine, actor, moment.astimezone(NEW_YORK_WINTER))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = "SELECT at, typeof(at) FROM audit_log WHERE actor = :a ORDER BY id"
            stored = conn.execute(sa.text(query), {"a": actor}).all()
            assert [tuple(r) for r in stored] == [("2030-01-07 09:00:00.250000", "text")] * 2
        else:
            query = (
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'audit_log' "
                "AND column_name = 'at'"
            )
            assert conn.execute(sa.text(query)).scalar_one() == "timestamp with time zone"
            stored = conn.execute(
                sa.text("SELECT at = :m FROM audit_log WHERE actor = :a"), {"m": moment, "a": actor}
            ).scalars()
            assert list(stored) == [True, True]


class _Stamp(datetime):
    """A datetime subclass (what a time-faking library hands out)."""


@settings(max_examples=400, deadline=None)
@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                 timezones=st.sampled_from([UTC, INDIA, NEW_YORK_WINTER]) | st.none()),
    st.booleans(),
)  # fmt: skip
def test_sqlite_binds_a_timestamp_as_sqlalchemy_would(moment: datetime, subclass: bool) -> None:
    """UtcDateTime's shortcut for an aware UTC datetime on SQLite writes the text that
    SQLAlchemy's own processing (process_bind_param, then SQLite's DATETIME) writes, and
    anything else takes that processing: the same text, the same errors."""
    dialect = sqlite.dialect()
    kind = UtcDateTime().dialect_impl(dialect)
    fast = kind.bind_processor(dialect)
    long_way = sa.types.TypeDecorator.bind_processor(kind, dialect)
    assert fast is not None and long_way is not None
    assert "UtcDateTime.bind_processor" in fast.__qualname__  # the shortcut is in use
    if subclass:
        moment = _Stamp.combine(moment.date(), moment.timetz())
    for value in (moment, moment.astimezone(UTC) if moment.tzinfo else moment):
        if value.tzinfo is None:
            with pytest.raises(ValueError, match="naive datetime"):
                fast(value)
        else:
            assert fast(value) == long_way(value)
    assert fast(None) is None
    with pytest.raises(TypeError, match="takes a datetime"):
        fast("2030-01-07 09:00:00")
