"""Reports' roll-up of closed days (`report_day`), and the triggers that keep it exact.

A row holds one UTC day's counts of one table (`part`: runs, steps or gates) as JSON,
written by a report the first time it needs that day. Whenever a row of that table
whose day it is gets inserted, deleted, or has a column the counts read changed (a run
finishing days later, a late answer, a retry, a pruned run), a trigger in the same
transaction deletes the day's roll-up, so a roll-up present in a snapshot always equals
a count of the rows in that snapshot; the next report counts that day again.

SQLite rebuilds a table to alter it (batch mode copies it) and drops its triggers with
the old table: a later migration that rebuilds workflow_run, step_run or interaction on
SQLite must create these triggers again (`create_triggers` below; tests/test_report_rollup.py
checks they exist at head).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# table: (part, the column that puts a row in a day, the columns a part's counts read)
WATCHED = {
    "workflow_run": ("runs", "created_at",
                     ["created_at", "workflow", "status", "started_at", "finished_at"]),
    "step_run": ("steps", "run_created_at",
                 ["run_created_at", "workflow", "step_id", "status", "started_at", "finished_at",
                  "error", "run_id"]),
    "interaction": ("gates", "created_at",
                    ["created_at", "workflow", "purpose", "status", "answered_by",
                     "answered_at"]),
}  # fmt: skip


def _drop_day(dialect: str, part: str, row: str, column: str) -> str:
    day = (f"date({row}.{column})" if dialect == "sqlite"
           else f"to_char({row}.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')")  # fmt: skip
    return f"DELETE FROM report_day WHERE part = '{part}' AND day = {day};"


def create_triggers(dialect: str) -> None:
    """The triggers that delete a day's roll-up when a row of that day changes."""
    for table, (part, column, read) in WATCHED.items():
        old, new = _drop_day(dialect, part, "OLD", column), _drop_day(dialect, part, "NEW", column)
        cols = ", ".join(read)
        if dialect == "sqlite":
            for event, body in (("INSERT", new), ("DELETE", old), (f"UPDATE OF {cols}", old + new)):
                name = f"report_day_{table}_{event.split()[0].lower()}"
                op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} "
                           f"FOR EACH ROW BEGIN {body} END")  # fmt: skip
            continue
        op.execute(
            f"CREATE FUNCTION report_day_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF TG_OP <> 'INSERT' THEN {old} END IF; "
            f"IF TG_OP <> 'DELETE' THEN {new} END IF; RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER report_day_{table} AFTER INSERT OR DELETE OR UPDATE OF {cols} "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION report_day_{table}()"
        )


def drop_triggers(dialect: str) -> None:
    for table in WATCHED:
        if dialect == "sqlite":
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS report_day_{table}_{event}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS report_day_{table} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS report_day_{table}()")


def upgrade() -> None:
    op.create_table(
        "report_day",
        sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
        sa.Column("part", sa.String(8), primary_key=True),  # runs | steps | gates
        sa.Column("figures", sa.Text, nullable=False),  # JSON: orchestrator/reports/rollup.py
    )
    create_triggers(op.get_bind().dialect.name)


def downgrade() -> None:
    drop_triggers(op.get_bind().dialect.name)
    op.drop_table("report_day")
