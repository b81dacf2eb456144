"""Agents at run time: engagement with one campaign, reservation, release, wrap-up.

Assignment (campaign config `agent_ids`) is kept across pauses; engagement (`agents.
campaign_id`) is run-time state: an agent serves at most one campaign at a time. A campaign
that stops running releases its agents at once, except as many as it still has calls ringing
(held `reserved` so an answer is never abandoned because of the pause, docs/architecture.md §3.4);
agents
on a call are released after their wrap-up.

Every change of an agent's state goes through `move`, which consults the domain table
(domain/states.py: the engine's moves, or the agent's own), except a supervisor's override,
`force`, which consults the force table (AGENT_FORCE_TARGETS, docs/architecture.md §2.4).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from dialer.domain.campaign import CampaignSpec
from dialer.domain.states import (
    AGENT_FREE,
    ATTEMPT_RINGING,
    AgentState,
    CampaignState,
    InvalidTransition,
    agent_force,
    agent_transition,
)
from dialer.store import agents as agent_store
from dialer.store import attempts as attempt_store
from dialer.store import campaigns as campaign_store
from dialer.store import events
from dialer.store.db import DbSession
from dialer.store.models import Agent, Campaign

log = logging.getLogger(__name__)


def move(
    session: DbSession,
    agent: Agent,
    to: AgentState,
    now: float,
    why: str | None,
    *,
    actor: str = events.SYSTEM,
    engine: bool = True,
) -> bool:
    """Move the agent to `to` by the domain table and record it; False when it is there
    already. The engine's moves check the engine's table, and a refused one is logged and
    skipped; the agent's own (`engine=False`) check its table and raise InvalidTransition.
    """
    current = AgentState(agent.state)
    try:
        target = agent_transition(current, to, engine=engine)
    except InvalidTransition as exc:
        if not engine:
            raise
        log.warning("agent.transition_refused", extra={"agent": agent.id, "error": str(exc)})
        return False
    if target is not None:
        events.record(
            session,
            at=now,
            entity="agent",
            entity_id=agent.id,
            type="agent.state",
            campaign_id=agent.campaign_id,
            actor=actor,
            from_state=current,
            to_state=target,
            reason=why,
        )
        agent.state = target
        agent.state_since = now
    agent.version += 1
    return target is not None


async def engage(
    session: DbSession, campaign: Campaign, spec: CampaignSpec, now: float
) -> list[str]:
    """Engage the campaign's assigned agents that serve no other campaign."""
    if not spec.agent_ids:
        return []
    agents = await agent_store.engageable(session, spec.agent_ids)
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
    for agent in await agent_store.held(session, campaign.id):
        move(session, agent, AgentState.AVAILABLE, now, "campaign running")
    return [a.id for a in agents]


async def release(session: DbSession, campaign_id: str, now: float) -> list[str]:
    """Release the agents of a campaign that is not running; returns the released ids."""
    hold = await attempt_store.count_voice(session, campaign_id, ATTEMPT_RINGING)
    released: list[str] = []
    for agent in await agent_store.idle(session, campaign_id):
        if hold > 0 and agent.state in AGENT_FREE:
            hold -= 1
            move(session, agent, AgentState.RESERVED, now, "held for a ringing call")
            continue
        if agent.state == AgentState.RESERVED:
            move(session, agent, AgentState.AVAILABLE, now, "released")
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


async def take(session: DbSession, campaign_id: str, attempt_id: int, now: float) -> str | None:
    """Put a free agent of the campaign on an answered call; None if nobody is free. A
    preview call goes to the agent reserved for it (`dial_preview`, docs/architecture.md
    §3.4), if it still holds the call."""
    agent = await agent_store.on_call(session, attempt_id)
    if agent is None or agent.state != AgentState.RESERVED:
        agent = await agent_store.free_for_call(session, campaign_id)
    if agent is None:
        return None
    agent.attempt_id = attempt_id
    move(session, agent, AgentState.ON_CALL, now, "call bridged")
    return agent.id


async def call_ended(session: DbSession, attempt_id: int, wrap_up: float, now: float) -> None:
    await calls_ended(session, {attempt_id: wrap_up}, now)


async def calls_ended(session: DbSession, ended: Mapping[int, float], now: float) -> None:
    """The calls (attempt id -> its campaign's wrap-up) ended: their agents wrap up."""
    for agent in await agent_store.on_calls(session, ended):
        wrap_up = ended[agent.attempt_id] if agent.attempt_id is not None else 0.0
        agent.attempt_id = None
        if agent.state == AgentState.RESERVED:  # a preview call that was never answered
            move(session, agent, AgentState.AVAILABLE, now, "preview call ended")
        elif wrap_up > 0:
            agent.wrap_up_until = now + wrap_up
            move(session, agent, AgentState.WRAP_UP, now, "call ended")
        else:
            move(session, agent, AgentState.AVAILABLE, now, "call ended")


async def unreserve(session: DbSession, agent_id: str, attempt_id: int, now: float) -> None:
    """The preview call the agent was reserved for never happened: free the agent."""
    agent = await agent_store.get(session, agent_id, lock=True)
    if agent is None or agent.attempt_id != attempt_id:
        return
    agent.attempt_id = None
    move(session, agent, AgentState.AVAILABLE, now, "preview dial not placed")


async def end_wrap_ups(session: DbSession, now: float) -> list[str]:
    agents = await agent_store.wrap_ups_over(session, now)
    for agent in agents:
        agent.wrap_up_until = None
        move(session, agent, AgentState.AVAILABLE, now, "wrap-up over")
    return [a.id for a in agents]


async def force(
    session: DbSession,
    agent: Agent,
    to: AgentState,
    now: float,
    reason: str | None,
    *,
    actor: str,
) -> bool:
    """A supervisor's override (docs/architecture.md §2.4): move the agent to `to`
    (offline or available) from any state and end its engagement; False when there was
    nothing to change. Raises InvalidTransition for a target that is not a force target.

    The call the agent was on (or held for) is not touched: its attempt is the engine's
    to resolve, and as the agent no longer holds that attempt id, the end of that call
    (`call_ended`) finds no agent to move. The wrap-up is dropped. `offline` releases the
    agent from its campaign; `available` keeps it engaged only with a running campaign (it
    takes that campaign's next call), otherwise releases it, so that a paused or stopping
    campaign's release does not hold it `reserved` again.
    """
    current = AgentState(agent.state)
    target = agent_force(current, to)
    campaign_id = agent.campaign_id
    keep = False
    if campaign_id is not None and to is AgentState.AVAILABLE:
        c = await campaign_store.get(session, campaign_id)
        keep = c is not None and c.state == CampaignState.RUNNING
    release = campaign_id is not None and not keep
    if target is None and agent.attempt_id is None and agent.wrap_up_until is None and not release:
        return False
    events.record(
        session,
        at=now,
        entity="agent",
        entity_id=agent.id,
        type="agent.forced",
        campaign_id=campaign_id,
        actor=actor,
        from_state=current,
        to_state=to,
        reason=reason,
        data={
            "attempt_id": str(agent.attempt_id) if agent.attempt_id is not None else None,
            "wrap_up_until": agent.wrap_up_until,
            "released": release,
        },
    )
    log.info(
        "agent.forced",
        extra={"agent": agent.id, "from": str(current), "to": str(to), "actor": actor},
    )
    agent.attempt_id = None
    agent.wrap_up_until = None
    if release:
        agent.campaign_id = None
    if target is not None:
        agent.state = target
        agent.state_since = now
    agent.version += 1
    return True
