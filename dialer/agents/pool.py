"""Agents at run time: engagement with one campaign, reservation, release, wrap-up.

Assignment (campaign config `agent_ids`) is kept across pauses; engagement (`agents.
campaign_id`) is run-time state: an agent serves at most one campaign at a time. A campaign
that stops running releases its agents at once, except as many as it still has calls ringing
(held `reserved` so an answer is never abandoned because of the pause, DESIGN.md §3.3); agents
on a call are released after their wrap-up.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.domain.states import AgentState, AttemptStatus
from dialer.store import events
from dialer.store.models import Agent, Attempt, Campaign

FREE = (AgentState.AVAILABLE, AgentState.RESERVED)
# Calls that may still be answered and then need an agent.
UNANSWERED = (AttemptStatus.QUEUED, AttemptStatus.INITIATED, AttemptStatus.RINGING)


def _set_state(session: AsyncSession, agent: Agent, to: AgentState, now: float, why: str) -> None:
    if agent.state != to:
        events.record(
            session,
            at=now,
            entity="agent",
            entity_id=agent.id,
            type="agent.state",
            campaign_id=agent.campaign_id,
            from_state=agent.state,
            to_state=to,
            reason=why,
        )
        agent.state = to
        agent.state_since = now
    agent.version += 1


async def engage(session: AsyncSession, campaign: Campaign, now: float) -> list[str]:
    """Engage the campaign's assigned agents that serve no other campaign."""
    ids = list(campaign.config.get("agent_ids") or [])
    if not ids:
        return []
    agents = (
        await session.scalars(
            select(Agent)
            .where(
                Agent.id.in_(ids),
                Agent.campaign_id.is_(None),
                Agent.state.in_((AgentState.AVAILABLE, AgentState.BREAK)),
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    for agent in agents:
        agent.campaign_id = campaign.id
        agent.version += 1
        events.record(
            session,
            at=now,
            entity="agent",
            entity_id=agent.id,
            type="agent.engaged",
            campaign_id=campaign.id,
            from_state=agent.state,
            to_state=agent.state,
        )
    # Agents held for ringing calls of a pause go back to work on resume.
    held = (
        await session.scalars(
            select(Agent).where(
                Agent.campaign_id == campaign.id,
                Agent.state == AgentState.RESERVED,
                Agent.attempt_id.is_(None),
            )
        )
    ).all()
    for agent in held:
        _set_state(session, agent, AgentState.AVAILABLE, now, "campaign running")
    return [a.id for a in agents]


async def release(session: AsyncSession, campaign_id: str, now: float) -> list[str]:
    """Release the agents of a campaign that is not running; returns the released ids."""
    unanswered = await session.scalar(
        select(func.count())
        .select_from(Attempt)
        .where(
            Attempt.campaign_id == campaign_id,
            Attempt.channel == "voice",
            Attempt.status.in_(UNANSWERED),
        )
    )
    hold = int(unanswered or 0)
    idle = (
        await session.scalars(
            select(Agent)
            .where(
                Agent.campaign_id == campaign_id,
                Agent.attempt_id.is_(None),
                Agent.state.in_((*FREE, AgentState.BREAK, AgentState.OFFLINE)),
            )
            .order_by(Agent.state.desc(), Agent.state_since, Agent.id)  # reserved first
        )
    ).all()
    released: list[str] = []
    for agent in idle:
        if hold > 0 and agent.state in FREE:
            hold -= 1
            _set_state(session, agent, AgentState.RESERVED, now, "held for a ringing call")
            continue
        if agent.state == AgentState.RESERVED:
            _set_state(session, agent, AgentState.AVAILABLE, now, "released")
        events.record(
            session,
            at=now,
            entity="agent",
            entity_id=agent.id,
            type="agent.released",
            campaign_id=campaign_id,
            from_state=agent.state,
            to_state=agent.state,
        )
        agent.campaign_id = None
        agent.version += 1
        released.append(agent.id)
    return released


async def take(session: AsyncSession, campaign_id: str, attempt_id: int, now: float) -> str | None:
    """Put a free agent of the campaign on an answered call; None if nobody is free."""
    agent = (
        await session.scalars(
            select(Agent)
            .where(
                Agent.campaign_id == campaign_id,
                Agent.state.in_(FREE),
                Agent.attempt_id.is_(None),
            )
            .order_by(Agent.state.desc(), Agent.state_since, Agent.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).first()
    if agent is None:
        return None
    agent.attempt_id = attempt_id
    _set_state(session, agent, AgentState.ON_CALL, now, "call bridged")
    return agent.id


async def call_ended(session: AsyncSession, attempt_id: int, wrap_up: float, now: float) -> None:
    agent = (await session.scalars(select(Agent).where(Agent.attempt_id == attempt_id))).first()
    if agent is None:
        return
    agent.attempt_id = None
    if wrap_up > 0:
        agent.wrap_up_until = now + wrap_up
        _set_state(session, agent, AgentState.WRAP_UP, now, "call ended")
    else:
        _set_state(session, agent, AgentState.AVAILABLE, now, "call ended")


async def end_wrap_ups(session: AsyncSession, now: float) -> list[str]:
    agents = (
        await session.scalars(
            select(Agent).where(Agent.state == AgentState.WRAP_UP, Agent.wrap_up_until <= now)
        )
    ).all()
    for agent in agents:
        agent.wrap_up_until = None
        _set_state(session, agent, AgentState.AVAILABLE, now, "wrap-up over")
    return [a.id for a in agents]


async def count_available(session: AsyncSession, campaign_id: str) -> int:
    n = await session.scalar(
        select(func.count())
        .select_from(Agent)
        .where(
            Agent.campaign_id == campaign_id,
            Agent.state == AgentState.AVAILABLE,
            Agent.attempt_id.is_(None),
        )
    )
    return int(n or 0)


async def counts_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Agent.state, func.count()).group_by(Agent.state))
    return {state: int(n) for state, n in rows.all()}


async def engaged_campaigns(session: AsyncSession) -> set[str]:
    rows = await session.execute(
        select(Agent.campaign_id).where(Agent.campaign_id.is_not(None)).distinct()
    )
    return {c for (c,) in rows.all() if c}
