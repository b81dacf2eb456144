"""Campaign queries: the campaigns table, and the attempts the use cases and the API read."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.domain.campaign import Channel
from dialer.domain.states import ATTEMPT_LIVE, AttemptStatus
from dialer.store.models import Attempt, Campaign


async def list_campaigns(
    session: AsyncSession, *, state: str | None = None, archived: bool | None = False
) -> list[Campaign]:
    """Campaigns in creation order, filtered by state and archived flag (None: any)."""
    stmt = select(Campaign).order_by(Campaign.created_at, Campaign.id)
    if state is not None:
        stmt = stmt.where(Campaign.state == state)
    if archived is not None:
        stmt = stmt.where(Campaign.archived.is_(archived))
    return list((await session.scalars(stmt)).all())


async def in_flight(session: AsyncSession, campaign_id: str) -> list[Attempt]:
    """Attempts handed to a channel and not final (a `created` attempt is not handed over)."""
    rows = await session.scalars(
        select(Attempt)
        .where(
            Attempt.campaign_id == campaign_id,
            Attempt.status.in_(tuple(ATTEMPT_LIVE - {AttemptStatus.CREATED})),
        )
        .order_by(Attempt.id)
    )
    return list(rows.all())


async def voice_attempt(session: AsyncSession, attempt_id: int) -> Attempt | None:
    """A voice attempt by id (what a carrier's callback names), or None."""
    return await session.scalar(
        select(Attempt).where(Attempt.id == attempt_id, Attempt.channel == Channel.VOICE)
    )


# -- the engine's campaign queries ---------------------------------------------------------


async def get(session: AsyncSession, campaign_id: str, *, lock: bool = False) -> Campaign | None:
    """The campaign; with `lock`, its row is locked for the rest of the transaction.

    The lock is PostgreSQL's `FOR NO KEY UPDATE`: it serialises changes of the campaign, but
    does not wait for the transactions that merely reference the row (every attempt row's
    foreign key takes a key-share lock on its campaign). With `FOR UPDATE` a pause waited for
    every dispatch round in flight to commit (docs/architecture.md §4, §6.5)."""
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    return (await session.scalars(stmt)).first()


async def in_states(
    session: AsyncSession, states: Iterable[str], ids: Iterable[str] = ()
) -> list[Campaign]:
    """Campaigns in any of `states`, and those named in `ids` whatever their state."""
    wanted = [Campaign.state.in_(tuple(states))]
    if ids := tuple(ids):
        wanted.append(Campaign.id.in_(ids))
    rows = await session.scalars(select(Campaign).where(or_(*wanted)))
    return list(rows.all())


async def due_to_start(session: AsyncSession, now: float) -> list[tuple[str, str]]:
    """(id, state) of the campaigns whose scheduled start or resume time has come."""
    rows = await session.execute(
        select(Campaign.id, Campaign.state).where(
            Campaign.start_at.is_not(None), Campaign.start_at <= now
        )
    )
    return [(cid, state) for cid, state in rows.all()]


async def mark_dispatched(session: AsyncSession, campaign_id: str) -> None:
    """The campaign handed work to a channel: terminating it now stops, never cancels."""
    await session.execute(
        update(Campaign).where(Campaign.id == campaign_id).values(dispatched=True)
    )
