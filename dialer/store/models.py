"""Tables. Times are epoch seconds (floats): the claim compares them arithmetically on both
SQLite and PostgreSQL, and the API turns them into ISO 8601 at the edge."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigId = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = metadata


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Campaign clock (docs/architecture.md §5): a lead is due when lead.due + clock_offset <= now.
    # freeze: clock_offset = running_since - active_seconds, so the clock stops while paused.
    # deadline: clock_offset = 0, lead.due is wall-clock time.
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    clock_offset: Mapped[float] = mapped_column(Float, default=0.0)
    running_since: Mapped[float | None] = mapped_column(Float)
    last_paused_at: Mapped[float | None] = mapped_column(Float)
    last_resumed_at: Mapped[float | None] = mapped_column(Float)
    start_at: Mapped[float | None] = mapped_column(Float)  # scheduled start or resume
    dispatched: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    paused_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


# Must read as the claim's own condition (store/leads.claimable, literal values) for the
# planner to prove the partial index applies.
OPEN_PREDICATE = "status IN ('pending', 'in_progress') AND active_attempt_id IS NULL"


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_claim", "campaign_id", "status", "due"),
        # The claim's own index (store/leads.claim): leads it may take, by step, in due order.
        # Leads done or with a live attempt drop out, so a claim reads about what it takes.
        Index(
            "ix_leads_open_due",
            "campaign_id",
            "step",
            "due",
            "id",
            postgresql_where=text(OPEN_PREDICATE),
            sqlite_where=text(OPEN_PREDICATE),
        ),
        Index("ix_leads_company", "campaign_id", "company"),
        Index("ix_leads_paused_until", "status", "paused_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    step: Mapped[int] = mapped_column(Integer, default=0)  # next step to run
    tries: Mapped[int] = mapped_column(Integer, default=0)  # tries used on that step
    # Attempts created for that step: the `try` of the idempotency key. A call we cancelled
    # ourselves (pause) gets a new key but uses no try.
    seq: Mapped[int] = mapped_column(Integer, default=0)
    due: Mapped[float] = mapped_column(Float, default=0.0)  # in the campaign's clock
    not_before: Mapped[float | None] = mapped_column(Float)  # wall clock (calling hours)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)
    active_attempt_id: Mapped[int | None] = mapped_column(BigId)
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    pause_reason: Mapped[str | None] = mapped_column(Text)
    paused_until: Mapped[float | None] = mapped_column(Float)
    paused_remaining: Mapped[float | None] = mapped_column(Float)
    # When a person or dialer paused the lead: stale after DIALER_STALE_PAUSE_DAYS
    # (docs/architecture.md §3.5).
    paused_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_campaign_status", "campaign_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    try_no: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(10))
    idem_key: Mapped[str] = mapped_column(String(120), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    carrier_id: Mapped[str | None] = mapped_column(String(255), index=True)
    answered_by: Mapped[str | None] = mapped_column(String(10))
    rang: Mapped[bool] = mapped_column(Boolean, default=False)
    answered_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    duration: Mapped[float | None] = mapped_column(Float)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False)
    # Agentless: a person answered and heard the campaign's message (never abandoned).
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    campaign_version: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    campaign_id: Mapped[str | None] = mapped_column(String(40), index=True)  # engaged with
    attempt_id: Mapped[int | None] = mapped_column(BigId)  # the call it is reserved for / on
    state_since: Mapped[float] = mapped_column(Float)
    wrap_up_until: Mapped[float | None] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[float] = mapped_column(Float)


class Event(Base):
    """Append-only audit trail and source of the live stream."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_campaign", "campaign_id", "id"),
        # The latest channel event of a campaign (its `channels`, docs/api.md §4.5).
        Index("ix_events_campaign_type", "campaign_id", "type", "id"),
        # An agent's (or a lead's) own history: per-agent figures read today's events.
        Index("ix_events_entity", "entity", "entity_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    campaign_id: Mapped[str | None] = mapped_column(String(40))
    entity: Mapped[str] = mapped_column(String(20))  # campaign / lead / agent / attempt
    entity_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(60))
    actor: Mapped[str] = mapped_column(String(100))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DoNotCall(Base):
    __tablename__ = "dnc"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    reason: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[float] = mapped_column(Float)


# --- Email that listens (docs/architecture.md §9.1) ---------------------------------------


class EmailLink(Base):
    """A link of a campaign's email step: `url` as written, `target` where it leads now
    (editable, also for mails already sent)."""

    __tablename__ = "email_links"
    __table_args__ = (Index("ix_email_links_key", "campaign_id", "step", "url_hash", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(40))
    step: Mapped[int] = mapped_column(Integer)
    url_hash: Mapped[str] = mapped_column(String(64))  # sha256 of url: the unique key
    url: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class EmailClick(Base):
    """One follow of a tracked link; `bot` when a link scanner made it."""

    __tablename__ = "email_clicks"
    __table_args__ = (
        Index("ix_email_clicks_link", "link_id", "lead_id"),
        Index("ix_email_clicks_campaign", "campaign_id", "lead_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    link_id: Mapped[int] = mapped_column(BigId)
    campaign_id: Mapped[str] = mapped_column(String(40))
    lead_id: Mapped[int] = mapped_column(BigId)
    attempt_id: Mapped[int] = mapped_column(BigId)
    bot: Mapped[bool] = mapped_column(Boolean, default=False)
    user_agent: Mapped[str | None] = mapped_column(String(300))
    at: Mapped[float] = mapped_column(Float)


class InboundMessage(Base):
    """A message that came back (webhook or IMAP): what it was and whom it matched.
    `key` (its Message-ID, else a hash of its bytes) makes a second delivery a no-op;
    an unmatched message keeps its bytes (`raw`)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_campaign", "campaign_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(10))  # webhook / imap
    kind: Mapped[str] = mapped_column(String(20))  # reply, auto_reply, bounce, ...
    campaign_id: Mapped[str | None] = mapped_column(String(40))
    lead_id: Mapped[int | None] = mapped_column(BigId)
    attempt_id: Mapped[int | None] = mapped_column(BigId)
    matched_by: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(20))  # a DSN's status code
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[float] = mapped_column(Float)
