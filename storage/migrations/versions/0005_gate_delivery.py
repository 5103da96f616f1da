"""Gates say where they are posted, whom they escalate to, and which params may change.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("interaction") as batch:
        batch.add_column(sa.Column("notify", sa.String(16), nullable=False,
                                   server_default="thread"))  # fmt: skip
        batch.add_column(sa.Column("escalate_at", TS, nullable=True))
        batch.add_column(sa.Column("escalate_to", JSON, nullable=True))
        batch.add_column(sa.Column("escalated_at", TS, nullable=True))
        batch.add_column(sa.Column("editable_params", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interaction") as batch:
        for column in ("editable_params", "escalated_at", "escalate_to", "escalate_at", "notify"):
            batch.drop_column(column)
