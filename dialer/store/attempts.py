"""Attempt queries: the row written before the hand-off, the engine's sweeps (live,
queued, stale, waiting for an agent) and the recent figures pacing reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Row, case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dialer.domain.campaign import AnsweredBy, Channel
from dialer.domain.states import ATTEMPT_LIVE, ATTEMPT_UNANSWERED_END, AttemptStatus
from dialer.store.models import Attempt, Lead


def new(
    *,
    campaign_id: str,
    campaign_version: int,
    lead_id: int,
    step: int,
    try_no: int,
    channel: Channel,
    idem_key: str,
    status: AttemptStatus,
    now: float,
    worker_id: str | None = None,
    error: str | None = None,
) -> Attempt:
    """A new attempt row (its history starts with its first status)."""
    return Attempt(
        campaign_id=campaign_id,
        lead_id=lead_id,
        step=step,
        try_no=try_no,
        channel=channel,
        idem_key=idem_key,
        status=status,
        error=error,
        campaign_version=campaign_version,
        worker_id=worker_id,
        history=[{"status": status, "at": now}],
        created_at=now,
        updated_at=now,
    )


async def get(session: AsyncSession, attempt_id: int, *, lock: bool = False) -> Attempt | None:
    return await session.get(Attempt, attempt_id, with_for_update=lock or None)


async def remove(session: AsyncSession, attempt_id: int) -> None:
    await session.execute(delete(Attempt).where(Attempt.id == attempt_id))


async def count_voice(
    session: AsyncSession, campaign_id: str, statuses: Iterable[AttemptStatus]
) -> int:
    """The campaign's voice attempts in one of these statuses."""
    n = await session.scalar(
        select(func.count())
        .select_from(Attempt)
        .where(
            Attempt.campaign_id == campaign_id,
            Attempt.channel == Channel.VOICE,
            Attempt.status.in_(tuple(statuses)),
        )
    )
    return int(n or 0)


async def has_live(conn: AsyncConnection, campaign_id: str) -> bool:
    """Whether any attempt of the campaign is still in flight (not final)."""
    row = await conn.execute(
        select(Attempt.id)
        .where(Attempt.campaign_id == campaign_id, Attempt.status.in_(tuple(ATTEMPT_LIVE)))
        .limit(1)
    )
    return row.first() is not None


async def queued_calls(conn: AsyncConnection, campaign_id: str) -> list[tuple[int, str]]:
    """(attempt id, carrier id) of the campaign's calls still queued at the carrier."""
    rows = await conn.execute(
        select(Attempt.id, Attempt.carrier_id).where(
            Attempt.campaign_id == campaign_id,
            Attempt.channel == Channel.VOICE,
            Attempt.status == AttemptStatus.QUEUED,
            Attempt.carrier_id.is_not(None),
        )
    )
    return [(attempt_id, carrier_id) for attempt_id, carrier_id in rows.all() if carrier_id]


@dataclass(frozen=True, slots=True)
class Stale:
    attempt_id: int
    idem_key: str
    channel: Channel
    campaign_id: str
    step: int
    lead_id: int
    lead_status: str


async def stale_created(conn: AsyncConnection, now: float, *, limit: int = 200) -> list[Stale]:
    """Attempts written but never confirmed by a channel whose lead's lease ran out (a
    worker died mid-dispatch)."""
    rows = await conn.execute(
        select(
            Attempt.id,
            Attempt.idem_key,
            Attempt.channel,
            Attempt.campaign_id,
            Attempt.step,
            Lead.id,
            Lead.status,
        )
        .join(Lead, Lead.active_attempt_id == Attempt.id)
        .where(
            Attempt.status == AttemptStatus.CREATED,
            Lead.lease_until.is_not(None),
            Lead.lease_until < now,
        )
        .limit(limit)
    )
    return [
        Stale(attempt_id, key, Channel(channel), campaign_id, step, lead_id, lead_status)
        for attempt_id, key, channel, campaign_id, step, lead_id, lead_status in rows.all()
    ]


async def waiting_for_agent(session: AsyncSession) -> list[Attempt]:
    """Calls answered by a person (or not known to be a machine) with no agent yet."""
    rows = await session.scalars(
        select(Attempt).where(
            Attempt.status == AttemptStatus.IN_PROGRESS,
            Attempt.agent_id.is_(None),
            Attempt.abandoned.is_(False),
            Attempt.answered_by != AnsweredBy.MACHINE,
            Attempt.channel == Channel.VOICE,
        )
    )
    return list(rows.all())


async def human_answers(session: AsyncSession, campaign_id: str, since: float) -> tuple[int, int]:
    """(answers by a person, of which abandoned) of the campaign's calls since `since`."""
    human = Attempt.answered_at.is_not(None) & (Attempt.answered_by != AnsweredBy.MACHINE)
    humans, abandoned = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((Attempt.abandoned.is_(True), 1), else_=0)), 0),
            ).where(
                Attempt.campaign_id == campaign_id,
                Attempt.channel == Channel.VOICE,
                human,
                Attempt.answered_at >= since,
            )
        )
    ).one()
    return int(humans), int(abandoned)


async def recent_resolved(
    session: AsyncSession, campaign_id: str, limit: int
) -> Sequence[Row[float | None, str | None, float, float | None, str | None]]:
    """The campaign's last `limit` resolved dials (answered, or ended without an answer),
    newest first: answered_at, answered_by, created_at, duration, agent_id."""
    rows = await session.execute(
        select(
            Attempt.answered_at,
            Attempt.answered_by,
            Attempt.created_at,
            Attempt.duration,
            Attempt.agent_id,
        )
        .where(
            Attempt.campaign_id == campaign_id,
            Attempt.channel == Channel.VOICE,
            or_(
                Attempt.answered_at.is_not(None),
                Attempt.status.in_(tuple(ATTEMPT_UNANSWERED_END)),
            ),
        )
        .order_by(Attempt.id.desc())
        .limit(limit)
    )
    return rows.all()
