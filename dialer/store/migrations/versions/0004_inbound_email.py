"""inbound email: messages, clicks, links (issue 13)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "email_links",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("url_hash", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_links"),
    )
    op.create_index(
        "ix_email_links_key", "email_links", ["campaign_id", "step", "url_hash"], unique=True
    )
    op.create_table(
        "email_clicks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("link_id", BigId, nullable=False),
        sa.Column("campaign_id", sa.String(40), nullable=False),
        sa.Column("lead_id", BigId, nullable=False),
        sa.Column("attempt_id", BigId, nullable=False),
        sa.Column("bot", sa.Boolean(), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_clicks"),
    )
    op.create_index("ix_email_clicks_link", "email_clicks", ["link_id", "lead_id"])
    op.create_index("ix_email_clicks_campaign", "email_clicks", ["campaign_id", "lead_id"])
    op.create_table(
        "inbound_messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("campaign_id", sa.String(40), nullable=True),
        sa.Column("lead_id", BigId, nullable=True),
        sa.Column("attempt_id", BigId, nullable=True),
        sa.Column("matched_by", sa.String(20), nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("sender", sa.String(320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_messages"),
        sa.UniqueConstraint("key", name="uq_inbound_messages_key"),
    )
    op.create_index("ix_inbound_messages_campaign", "inbound_messages", ["campaign_id", "kind"])
    # Our own Message-IDs (`<a<id>.<mac>@<sender domain>>`) are stored as the carrier id.
    with op.batch_alter_table("attempts") as batch:
        batch.alter_column("carrier_id", existing_type=sa.String(64), type_=sa.String(255))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.alter_column("carrier_id", existing_type=sa.String(255), type_=sa.String(64))
    op.drop_index("ix_inbound_messages_campaign", table_name="inbound_messages")
    op.drop_table("inbound_messages")
    op.drop_index("ix_email_clicks_campaign", table_name="email_clicks")
    op.drop_index("ix_email_clicks_link", table_name="email_clicks")
    op.drop_table("email_clicks")
    op.drop_index("ix_email_links_key", table_name="email_links")
    op.drop_table("email_links")
