"""Exact campaign figures, from the database (docs/api.md §4.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.domain.campaign import AnsweredBy, Channel
from dialer.domain.states import ATTEMPT_LIVE, AttemptStatus, LeadStatus, StopReason
from dialer.store import inbound as inbound_store
from dialer.store import leads as lead_store
from dialer.store.models import Attempt, Campaign, Lead


@dataclass(slots=True)
class CallStats:
    dialed: int = 0
    received: int = 0
    answered: int = 0
    abandoned: int = 0
    delivered: int = 0  # agentless: answered by a person, the message played
    in_flight: int = 0
    avg_duration_seconds: float = 0.0
    abandon_rate: float = 0.0


@dataclass(slots=True)
class EmailStats:
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    replied: int = 0
    unsubscribed: int = 0
    in_flight: int = 0
    soft_bounced: int = 0
    clicked: int = 0


@dataclass(slots=True)
class CampaignStats:
    campaign_id: str
    state: str
    calls: CallStats = field(default_factory=CallStats)
    emails: EmailStats = field(default_factory=EmailStats)
    leads: dict[str, int] = field(default_factory=dict)


def _n(cond: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


async def campaign_stats(s: AsyncSession, c: Campaign) -> CampaignStats:
    live = tuple(ATTEMPT_LIVE)
    voice = (
        await s.execute(
            select(
                _n(Attempt.carrier_id.is_not(None)),
                _n(Attempt.rang.is_(True)),
                _n(Attempt.answered_at.is_not(None)),
                _n(Attempt.abandoned.is_(True)),
                _n(Attempt.status.in_(live)),
                # Talk time: calls connected to an agent (not machines, not abandoned).
                func.avg(case((Attempt.agent_id.is_not(None), Attempt.duration))),
                # The abandon rate's base: live answers, not agentless deliveries (§7.3).
                _n(
                    Attempt.answered_at.is_not(None)
                    & (Attempt.answered_by != AnsweredBy.MACHINE)
                    & Attempt.delivered.is_(False)
                ),
                _n(Attempt.delivered.is_(True)),
            ).where(Attempt.campaign_id == c.id, Attempt.channel == Channel.VOICE)
        )
    ).one()
    email = (
        await s.execute(
            select(
                # A bounce after the send was sent; a 5xx at send time (no Message-ID
                # stored) was not (docs/architecture.md §9.1).
                _n(
                    (Attempt.status == AttemptStatus.SENT)
                    | ((Attempt.status == AttemptStatus.BOUNCED) & Attempt.carrier_id.is_not(None))
                ),
                _n(Attempt.status == AttemptStatus.FAILED),
                _n(Attempt.status == AttemptStatus.BOUNCED),
                _n(Attempt.status.in_(live)),
            ).where(Attempt.campaign_id == c.id, Attempt.channel == Channel.EMAIL)
        )
    ).one()
    reasons = dict(
        (
            await s.execute(
                select(Lead.stop_reason, func.count())
                .where(
                    Lead.campaign_id == c.id,
                    Lead.stop_reason.in_((StopReason.REPLIED, StopReason.UNSUBSCRIBED)),
                )
                .group_by(Lead.stop_reason)
            )
        ).all()
    )
    listened = await inbound_store.email_figures(s, c.id)
    humans = int(voice[6])
    calls = CallStats(
        dialed=int(voice[0]),
        received=int(voice[1]),
        answered=int(voice[2]),
        abandoned=int(voice[3]),
        delivered=int(voice[7]),
        in_flight=int(voice[4]),
        avg_duration_seconds=round(float(voice[5] or 0.0), 3),
        abandon_rate=round(int(voice[3]) / humans, 4) if humans else 0.0,
    )
    emails = EmailStats(
        sent=int(email[0]),
        failed=int(email[1]),
        bounced=int(email[2]),
        replied=listened.replied,
        unsubscribed=int(reasons.get(StopReason.UNSUBSCRIBED, 0)),
        in_flight=int(email[3]),
        soft_bounced=listened.soft_bounced,
        clicked=listened.clicked,
    )
    counts = await lead_store.status_counts(await s.connection(), c.id)
    return CampaignStats(c.id, c.state, calls, emails, {k: counts.get(k, 0) for k in LeadStatus})
