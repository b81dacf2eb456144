"""events by campaign and type (the latest channel event of a campaign)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_campaign_type", "events", ["campaign_id", "type", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_events_campaign_type", table_name="events")
