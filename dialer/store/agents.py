"""Agent queries: the registry, the engine's picks (engage, hold, bridge, release) and
the counts that pacing and the metrics read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.domain.states import AGENT_FREE, AgentState
from dialer.store.db import padded
from dialer.store.models import Agent, Attempt, Event


async def get(session: AsyncSession, agent_id: str, *, lock: bool = False) -> Agent | None:
    return await session.get(Agent, agent_id, with_for_update=lock or None)


async def all_agents(session: AsyncSession) -> list[Agent]:
    return list((await session.scalars(select(Agent).order_by(Agent.id))).all())


async def engageable(session: AsyncSession, agent_ids: Sequence[str]) -> list[Agent]:
    """Of these agents, those serving no campaign and ready to work (locked, skipping
    agents another worker holds)."""
    rows = await session.scalars(
        select(Agent)
        .where(
            Agent.id.in_(list(agent_ids)),
            Agent.campaign_id.is_(None),
            Agent.state.in_((AgentState.AVAILABLE, AgentState.BREAK)),
        )
        .with_for_update(skip_locked=True)
    )
    return list(rows.all())


async def held(session: AsyncSession, campaign_id: str) -> list[Agent]:
    """Agents of the campaign reserved without a call (held for ringing calls of a pause)."""
    rows = await session.scalars(
        select(Agent).where(
            Agent.campaign_id == campaign_id,
            Agent.state == AgentState.RESERVED,
            Agent.attempt_id.is_(None),
        )
    )
    return list(rows.all())


async def idle(session: AsyncSession, campaign_id: str) -> list[Agent]:
    """Agents of the campaign not on a call, reserved first, then longest in their state."""
    rows = await session.scalars(
        select(Agent)
        .where(
            Agent.campaign_id == campaign_id,
            Agent.attempt_id.is_(None),
            Agent.state.in_((*AGENT_FREE, AgentState.BREAK, AgentState.OFFLINE)),
        )
        .order_by(Agent.state.desc(), Agent.state_since, Agent.id)  # reserved first
    )
    return list(rows.all())


async def free_for_call(session: AsyncSession, campaign_id: str) -> Agent | None:
    """The free agent of the campaign that goes on the next answered call (locked)."""
    rows = await session.scalars(
        select(Agent)
        .where(
            Agent.campaign_id == campaign_id,
            Agent.state.in_(AGENT_FREE),
            Agent.attempt_id.is_(None),
        )
        .order_by(Agent.state.desc(), Agent.state_since, Agent.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return rows.first()


async def on_call(session: AsyncSession, attempt_id: int) -> Agent | None:
    return (await session.scalars(select(Agent).where(Agent.attempt_id == attempt_id))).first()


async def on_calls(session: AsyncSession, attempt_ids: Iterable[int]) -> list[Agent]:
    """The agents on any of these calls."""
    ids = sorted(set(attempt_ids))
    if not ids:
        return []
    return list(
        (await session.scalars(select(Agent).where(Agent.attempt_id.in_(padded(ids))))).all()
    )


async def wrap_ups_over(session: AsyncSession, now: float) -> list[Agent]:
    rows = await session.scalars(
        select(Agent).where(Agent.state == AgentState.WRAP_UP, Agent.wrap_up_until <= now)
    )
    return list(rows.all())


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


async def busy(session: AsyncSession, campaign_id: str) -> list[tuple[str, float | None]]:
    """(state, wrap_up_until) of the campaign's agents on a call or in wrap-up."""
    rows = await session.execute(
        select(Agent.state, Agent.wrap_up_until).where(
            Agent.campaign_id == campaign_id,
            Agent.state.in_((AgentState.ON_CALL, AgentState.WRAP_UP)),
        )
    )
    return [(state, until) for state, until in rows.all()]


async def holding(session: AsyncSession, campaign_id: str) -> list[Agent]:
    """Agents of the campaign held for its ringing calls or on one of its calls."""
    rows = await session.scalars(
        select(Agent)
        .where(
            Agent.campaign_id == campaign_id,
            Agent.state.in_((AgentState.RESERVED, AgentState.ON_CALL)),
        )
        .order_by(Agent.id)
    )
    return list(rows.all())


# -- per-agent figures (issue 14) ----------------------------------------------------------
async def handled_since(
    session: AsyncSession, since: float, agent_ids: Sequence[str]
) -> dict[str, tuple[int, float]]:
    """Per agent: the calls it was put on that were answered since `since`, and their
    talk seconds (of those that ended)."""
    if not agent_ids:
        return {}
    rows = await session.execute(
        select(Attempt.agent_id, func.count(), func.coalesce(func.sum(Attempt.duration), 0.0))
        .where(Attempt.agent_id.in_(list(agent_ids)), Attempt.answered_at >= since)
        .group_by(Attempt.agent_id)
    )
    return {str(agent_id): (int(n), float(talk or 0.0)) for agent_id, n, talk in rows.all()}


async def state_changes_since(
    session: AsyncSession, since: float, agent_ids: Sequence[str]
) -> list[tuple[str, float, str | None, str]]:
    """The agents' state changes since `since` in order: (agent, at, from, to)."""
    if not agent_ids:
        return []
    rows = await session.execute(
        select(Event.entity_id, Event.at, Event.from_state, Event.to_state)
        .where(
            Event.entity == "agent",
            Event.entity_id.in_(list(agent_ids)),
            Event.at >= since,
            Event.to_state.is_not(None),
            Event.type.in_(("agent.state", "agent.forced", "agent.created")),
        )
        .order_by(Event.id)
    )
    return [(str(a), float(at), f, str(t)) for a, at, f, t in rows.all()]
