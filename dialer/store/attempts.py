"""Attempt queries: the row written before the hand-off, the engine's sweeps (live,
queued, stale, waiting for an agent) and the recent figures pacing reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dialer.domain.campaign import AnsweredBy, Channel
from dialer.domain.states import (
    ATTEMPT_LIVE,
    ATTEMPT_RINGING,
    ATTEMPT_UNANSWERED_END,
    AttemptStatus,
)
from dialer.store.db import padded
from dialer.store.models import Attempt, Lead

# A lead's lease must have run out for this share of a lease more before another worker
# takes its attempt over (`stale_live`): a worker whose event loop stalled for less than
# that still holds what it is handing off, and never meets a second copy of it
# (docs/architecture.md §15.2).
TAKEOVER_GRACE = 0.5


def values(
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
) -> dict[str, Any]:
    """The columns of a new attempt row (its history starts with its first status)."""
    return {
        "campaign_id": campaign_id,
        "lead_id": lead_id,
        "step": step,
        "try_no": try_no,
        "channel": channel,
        "idem_key": idem_key,
        "status": status,
        "error": error,
        "campaign_version": campaign_version,
        "worker_id": worker_id,
        "history": [{"status": status, "at": now}],
        "created_at": now,
        "updated_at": now,
    }


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
    """A new attempt row as an ORM object (the columns of `values`)."""
    return Attempt(
        **values(
            campaign_id=campaign_id,
            campaign_version=campaign_version,
            lead_id=lead_id,
            step=step,
            try_no=try_no,
            channel=channel,
            idem_key=idem_key,
            status=status,
            now=now,
            worker_id=worker_id,
            error=error,
        )
    )


async def insert_many(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert attempt rows (each from `values`) in one statement, without an ORM object each
    (a claim writes hundreds, docs/architecture.md §6.5); their ids, in order."""
    if not rows:
        return []
    stmt = insert(Attempt).returning(Attempt.id, sort_by_parameter_order=True)
    return list((await session.scalars(stmt, rows)).all())


async def get(session: AsyncSession, attempt_id: int, *, lock: bool = False) -> Attempt | None:
    return await session.get(Attempt, attempt_id, with_for_update=lock or None)


async def lock_many(session: AsyncSession, attempt_ids: Iterable[int]) -> dict[int, Attempt]:
    """Attempts by id, locked for the rest of the transaction in id order (batches that
    overlap wait on each other in line, never in a circle)."""
    ids = sorted(set(attempt_ids))
    if not ids:
        return {}
    rows = await session.scalars(
        select(Attempt).where(Attempt.id.in_(padded(ids))).order_by(Attempt.id).with_for_update()
    )
    return {a.id: a for a in rows.all()}


async def remove(session: AsyncSession, attempt_id: int) -> None:
    await remove_many(session, [attempt_id])


async def remove_many(session: AsyncSession, attempt_ids: Iterable[int]) -> None:
    ids = sorted(set(attempt_ids))
    if ids:
        await session.execute(delete(Attempt).where(Attempt.id.in_(ids)))


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


def queued_among(attempts: Iterable[Attempt]) -> list[tuple[int, str]]:
    """(attempt id, carrier id) of the voice calls among `attempts` still queued at the
    carrier (what a pause or terminate cancels, from its in-flight list)."""
    return [
        (a.id, a.carrier_id)
        for a in attempts
        if a.channel == Channel.VOICE and a.status == AttemptStatus.QUEUED and a.carrier_id
    ]


@dataclass(frozen=True, slots=True)
class Stale:
    """An open attempt the reconciler must resolve, with what it asks the carrier."""

    attempt_id: int
    idem_key: str
    channel: Channel
    status: AttemptStatus
    carrier_id: str | None
    created_at: float
    campaign_id: str
    step: int
    lead_id: int
    lead_status: str
    phone: str | None
    active: bool  # the lead's current attempt (not a late one the lead moved on from)


async def stale_live(
    conn: AsyncConnection,
    *,
    lapsed_before: float,
    orphan_before: float,
    ringing_before: float,
    talking_before: float,
    limit: int = 200,
) -> list[Stale]:
    """Open attempts nobody vouches for (docs/architecture.md §15.2): the lead's lease ran
    out before `lapsed_before` (its worker died or gave the call up); or the attempt is not
    its lead's current one and has not moved since `orphan_before`; or it has been ringing
    since `ringing_before` or talking since `talking_before` with no news (callbacks lost)."""
    active = Lead.active_attempt_id == Attempt.id
    return await _stale(
        conn,
        or_(
            active & Lead.lease_until.is_not(None) & (Lead.lease_until < lapsed_before),
            ~active & (Attempt.updated_at < orphan_before),
            Attempt.status.in_(tuple(ATTEMPT_RINGING)) & (Attempt.updated_at < ringing_before),
            (Attempt.status == AttemptStatus.IN_PROGRESS) & (Attempt.updated_at < talking_before),
        ),
        limit=limit,
    )


async def _stale(conn: AsyncConnection, which: ColumnElement[bool], *, limit: int) -> list[Stale]:
    """Open attempts matching `which`, with what the reconciler asks the carrier."""
    rows = await conn.execute(
        select(
            Attempt.id,
            Attempt.idem_key,
            Attempt.channel,
            Attempt.status,
            Attempt.carrier_id,
            Attempt.created_at,
            Attempt.campaign_id,
            Attempt.step,
            Lead.id,
            Lead.status,
            Lead.phone,
            Lead.active_attempt_id == Attempt.id,
        )
        .join(Lead, Lead.id == Attempt.lead_id)
        .where(Attempt.status.in_(tuple(ATTEMPT_LIVE)), which)
        .order_by(Attempt.id)
        .limit(limit)
    )
    return [
        Stale(
            attempt_id=r[0],
            idem_key=r[1],
            channel=Channel(r[2]),
            status=AttemptStatus(r[3]),
            carrier_id=r[4],
            created_at=r[5],
            campaign_id=r[6],
            step=r[7],
            lead_id=r[8],
            lead_status=r[9],
            phone=r[10],
            active=bool(r[11]),
        )
        for r in rows.all()
    ]


async def live_by_ids(conn: AsyncConnection, ids: Sequence[int]) -> list[Stale]:
    """The open attempts among `ids` (news about them was lost), with what the
    reconciler asks the carrier."""
    if not ids:
        return []
    return await _stale(conn, Attempt.id.in_(tuple(ids)), limit=len(ids))


async def other_calls(conn: AsyncConnection, lead_id: int, attempt_id: int) -> frozenset[str]:
    """Carrier ids of the lead's other attempts (never taken for this one's call)."""
    rows = await conn.execute(
        select(Attempt.carrier_id).where(
            Attempt.lead_id == lead_id, Attempt.id != attempt_id, Attempt.carrier_id.is_not(None)
        )
    )
    return frozenset(c for (c,) in rows.all() if c)


async def adopt(
    session: AsyncSession, attempt_id: int, worker_id: str, now: float, lease_until: float
) -> None:
    """This worker vouches for a live attempt the carrier still has: its lead's lease is
    renewed in this worker's name and the attempt counts as fresh news."""
    await session.execute(
        update(Attempt).where(Attempt.id == attempt_id).values(worker_id=worker_id, updated_at=now)
    )
    await session.execute(
        update(Lead)
        .where(Lead.active_attempt_id == attempt_id)
        .values(lease_owner=worker_id, lease_until=lease_until)
    )


async def renew_leases(
    conn: AsyncConnection, worker_id: str, now: float, lease_until: float, renew_before: float
) -> int:
    """Extend the leases of the leads whose call this worker has with the carrier (handed
    off, not final), when they run out before `renew_before`. A worker that dies stops
    renewing: its calls' leases run out and the reconciler takes them."""
    mine = select(Attempt.id).where(
        Attempt.worker_id == worker_id,
        Attempt.status.in_(tuple(ATTEMPT_LIVE - {AttemptStatus.CREATED})),
    )
    result = await conn.execute(
        update(Lead)
        .where(
            Lead.lease_owner == worker_id,
            Lead.lease_until < renew_before,
            Lead.active_attempt_id.in_(mine),
        )
        .values(lease_until=lease_until)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def waiting_for_agent(session: AsyncSession) -> list[Attempt]:
    """Calls answered by a person (or not known to be a machine) with no agent yet."""
    rows = await session.scalars(
        select(Attempt).where(
            Attempt.status == AttemptStatus.IN_PROGRESS,
            Attempt.agent_id.is_(None),
            Attempt.abandoned.is_(False),
            Attempt.delivered.is_(False),
            Attempt.answered_by != AnsweredBy.MACHINE,
            Attempt.channel == Channel.VOICE,
        )
    )
    return list(rows.all())


async def human_answers(session: AsyncSession, campaign_id: str, since: float) -> tuple[int, int]:
    """(answers by a person, of which abandoned) of the campaign's calls since `since`;
    an agentless delivery (the message played) is neither (docs/architecture.md §7.3)."""
    human = (
        Attempt.answered_at.is_not(None)
        & (Attempt.answered_by != AnsweredBy.MACHINE)
        & Attempt.delivered.is_(False)
    )
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


# -- stopping campaign: what it waits for
# (docs/api.md §4.5, `waiting_for`)
@dataclass(frozen=True, slots=True)
class LiveGroup:
    """The campaign's live attempts of one (status, step, channel)."""

    status: str
    step: int
    channel: str
    count: int
    oldest_at: float  # the earliest created_at
    # The latest time the reconciler may leave one of them alone: its lead's lease and the
    # takeover grace while the lead holds one for it, else its last change plus the lease
    # (docs/architecture.md §15.2).
    stale_by: float


async def live_groups(
    session: AsyncSession, campaign_id: str, lease_seconds: float
) -> list[LiveGroup]:
    """The campaign's attempts not final yet, counted by status, step and channel (one
    query over the campaign's attempts, each lead read by its key)."""
    lease = case(
        (Lead.active_attempt_id == Attempt.id, Lead.lease_until + lease_seconds * TAKEOVER_GRACE),
        else_=None,
    )
    rows = await session.execute(
        select(
            Attempt.status,
            Attempt.step,
            Attempt.channel,
            func.count(),
            func.min(Attempt.created_at),
            func.max(func.coalesce(lease, Attempt.updated_at + lease_seconds)),
        )
        .select_from(Attempt)
        .outerjoin(Lead, Lead.id == Attempt.lead_id)
        .where(Attempt.campaign_id == campaign_id, Attempt.status.in_(tuple(ATTEMPT_LIVE)))
        .group_by(Attempt.status, Attempt.step, Attempt.channel)
    )
    return [
        LiveGroup(status, int(step), channel, int(n), float(oldest), float(stale))
        for status, step, channel, n, oldest, stale in rows.all()
    ]


# -- preview mode: the lead an agent sees, and its claim (docs/architecture.md §3.4) ---------
