"""The append-only audit trail.

`record` does not build an ORM object per event: a round of the engine records hundreds
(`lead.state` per lead claimed and per lead finished), and the unit of work's bookkeeping per
object cost more than the insert. Events wait in the session's `info` and are written in one
multi-row `INSERT`, in the order they were recorded, before the session's next flush, before
its next ORM statement (so a query of the same transaction sees them) and before it commits;
a rollback drops them (docs/architecture.md §6.5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from dialer.store.models import Agent, Campaign, Event, Lead

SYSTEM = "system"


def record(
    session: AsyncSession,
    *,
    at: float,
    entity: str,
    entity_id: str,
    type: str,
    actor: str = SYSTEM,
    campaign_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Add an event to the session's transaction (written before it flushes or commits)."""
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
    pending.append(
        {
            "at": at,
            "campaign_id": campaign_id,
            "entity": entity,
            "entity_id": entity_id,
            "type": type,
            "actor": actor,
            "from_state": from_state,
            "to_state": to_state,
            "reason": reason,
            "data": data or {},
        }
    )


_PENDING = "dialer.pending_events"
_INSERT = insert(Event)


def _write_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.connection().execute(_INSERT, pending)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    _write_pending(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _write_pending(session)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    _write_pending(state.session)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: SessionTransaction) -> None:
    session.info.pop(_PENDING, None)


def campaign_event(
    session: AsyncSession,
    campaign: Campaign,
    type: str,
    *,
    at: float,
    actor: str = SYSTEM,
    from_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """An event about a campaign, stamped with its current state and version."""
    record(
        session,
        at=at,
        entity="campaign",
        entity_id=campaign.id,
        campaign_id=campaign.id,
        type=type,
        actor=actor,
        from_state=campaign.state if from_state is None else from_state,
        to_state=campaign.state,
        reason=reason,
        data={"version": campaign.version, **(data or {})},
    )


async def list_events(
    conn: AsyncConnection | AsyncSession,
    *,
    campaign_id: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
    entity: str | None = None,
) -> list[Event]:
    stmt = select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)
    if campaign_id is not None:
        stmt = stmt.where(Event.campaign_id == campaign_id)
    if entity is not None:
        stmt = stmt.where(Event.entity == entity)
    if isinstance(conn, AsyncSession):
        return list((await conn.scalars(stmt)).all())
    rows = await conn.execute(stmt)
    return [Event(**dict(r._mapping)) for r in rows.all()]


async def last_id(session: AsyncSession) -> int:
    """The highest event id (0 when there is none)."""
    return int((await session.scalar(select(func.max(Event.id)))) or 0)


async def subjects(
    session: AsyncSession,
    campaign_ids: Iterable[str],
    agent_ids: Iterable[str],
    lead_ids: Iterable[int],
) -> tuple[dict[str, Campaign], dict[str, Agent], dict[str, Lead]]:
    """The campaigns, agents and leads that events are about, by id (as text), read in
    three queries of the session's snapshot."""
    cids, aids, lids = set(campaign_ids), set(agent_ids), set(lead_ids)
    camps = {c.id: c for c in await session.scalars(select(Campaign).where(Campaign.id.in_(cids)))}
    agents = {a.id: a for a in await session.scalars(select(Agent).where(Agent.id.in_(aids)))}
    leads = {str(x.id): x for x in await session.scalars(select(Lead).where(Lead.id.in_(lids)))}
    return camps, agents, leads


# -- channel status of a campaign (docs/api.md §4, `channels`)
CHANNEL_UNAVAILABLE = "campaign.channel_unavailable"
CHANNEL_AVAILABLE = "campaign.channel_available"


async def latest_channel_events(
    session: AsyncSession, campaign_ids: Iterable[str]
) -> dict[str, dict[str, Event]]:
    """campaign id -> channel -> the latest `campaign.channel_(un)available` event of that
    channel (the engine records one at each change, so there are few of them)."""
    ids = list(set(campaign_ids))
    out: dict[str, dict[str, Event]] = {}
    if not ids:
        return out
    rows = await session.scalars(
        select(Event)
        .where(
            Event.campaign_id.in_(ids),
            Event.type.in_((CHANNEL_UNAVAILABLE, CHANNEL_AVAILABLE)),
        )
        .order_by(Event.id)
    )
    for ev in rows.all():
        channel = (ev.data or {}).get("channel")
        if isinstance(channel, str) and ev.campaign_id is not None:
            out.setdefault(ev.campaign_id, {})[channel] = ev  # later rows win
    return out
