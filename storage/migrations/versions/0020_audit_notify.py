"""PostgreSQL: every statement that adds audit entries sends NOTIFY opsloop 'changes <its
schema>' (listeners in other schemas of the database ignore it), so a serving process
reads the change feed (orchestrator/changes.py) at once instead of at its next poll. A
trigger, not a statement the orchestrator sends: no round trip more on any path, and the
same for every writer (another release's CLI included). PostgreSQL sends one notice per
transaction however many entries it adds, at its commit. SQLite has no notices: its
processes poll.

Revision ID: 0020
Revises: 0018
"""

from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE OR REPLACE FUNCTION opsloop_audit_notify() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify('opsloop', 'changes ' || TG_TABLE_SCHEMA); RETURN NULL; "
        "END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_log_notify AFTER INSERT ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION opsloop_audit_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS audit_log_notify ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS opsloop_audit_notify()")
