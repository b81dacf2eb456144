"""lead and sequence management (issue 14): when a lead was paused (stale paused leads),
events by entity (per-agent figures), agentless answers delivered (attempts.delivered)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leads", sa.Column("paused_at", sa.Float(), nullable=True))
    op.create_index("ix_events_entity", "events", ["entity", "entity_id", "id"], unique=False)
    op.add_column(
        "attempts",
        sa.Column("delivered", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("delivered")
    op.drop_index("ix_events_entity", table_name="events")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("paused_at")
