"""The append-only audit trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dialer.store.models import Event

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
) -> Event:
    ev = Event(
        at=at,
        campaign_id=campaign_id,
        entity=entity,
        entity_id=entity_id,
        type=type,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        data=data or {},
    )
    session.add(ev)
    return ev


async def list_events(
    conn: AsyncConnection | AsyncSession,
    *,
    campaign_id: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[Event]:
    stmt = select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)
    if campaign_id is not None:
        stmt = stmt.where(Event.campaign_id == campaign_id)
    if isinstance(conn, AsyncSession):
        return list((await conn.scalars(stmt)).all())
    rows = await conn.execute(stmt)
    return [Event(**dict(r._mapping)) for r in rows.all()]
