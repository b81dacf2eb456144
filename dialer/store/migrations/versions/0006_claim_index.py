"""the claim's own index (issue 11): open leads without a live attempt, by campaign and step
in due order, so a claim reads about the rows it takes (docs/architecture.md §6.5)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The same text as dialer.store.models.OPEN_PREDICATE when this revision was written: a
# migration does not change with the code.
OPEN = "status IN ('pending', 'in_progress') AND active_attempt_id IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_leads_open_due",
        "leads",
        ["campaign_id", "step", "due", "id"],
        unique=False,
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("ix_leads_open_due", table_name="leads")
