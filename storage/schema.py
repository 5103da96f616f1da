"""Create and upgrade the schema with Alembic; `setup()` is safe to call twice, or at once
from several replicas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from storage.engine import write_transaction
from storage.errors import SchemaError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: replicas that start together take turns upgrading.
_PG_LOCK_KEY = 0x6F70736C6F6F70


if TYPE_CHECKING:  # Alembic is imported only to migrate: commands that read start without it
    from alembic.config import Config


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no opsloop schema."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def known_revisions() -> set[str]:
    """Every schema revision this release has a migration for."""
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def setup(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision` (default: this release's newest)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

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


_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:[\"'](\w+)[\"']|None)", re.M)


def head_revision_fast() -> str:
    """This release's newest revision, read from the migration files' `revision =` lines
    without importing Alembic (what `head_revision` says; tests/test_schema.py checks it)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for file in (MIGRATIONS / "versions").glob("*.py"):
        for key, value in _REVISION.findall(file.read_text()):
            (revisions if key == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else head_revision()


def check_schema(engine: Engine) -> None:
    """Refuse, saying what to run, unless the database's schema is this release's: for
    commands that must not migrate (only `db upgrade` and `serve` do)."""
    current, head = current_revision(engine), head_revision_fast()
    if current == head:
        return
    if current is None:
        raise SchemaError(
            "the database has no opsloop schema yet: `opsloop db upgrade` creates it (so does "
            "`opsloop run` on a new database)"
        )
    if current not in known_revisions():
        raise SchemaError(
            f"the database is at schema revision {current!r}, which this opsloop release "
            "does not know; it was upgraded by a newer release: run that release instead"
        )
    raise SchemaError(
        f"the database schema is at revision {current}, this release needs {head}: run "
        "`opsloop db upgrade` (or restart `opsloop serve`, which upgrades it)"
    )
