"""Create and upgrade the schema with Alembic; `setup()` is safe to call twice, or at once
from several replicas."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from storage.engine import write_transaction
from storage.errors import SchemaError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: replicas that start together take turns upgrading.
_PG_LOCK_KEY = 0x6F70736C6F6F70


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no opsloop schema."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def known_revisions() -> set[str]:
    """Every schema revision this release has a migration for."""
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def setup(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision` (default: this release's newest)."""
    known = known_revisions()
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in known:
            raise SchemaError(
                f"the database is at schema revision {current!r}, which this opsloop release "
                "does not know; it was upgraded by a newer release: run that release instead"
            )
        command.upgrade(alembic_config(conn), revision)
