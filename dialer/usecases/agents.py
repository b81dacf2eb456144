"""Agent use cases: registry, self-service states, and an agent's queue."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from dialer.agents import pool
from dialer.clock import Clock
from dialer.domain.campaign import Channel
from dialer.domain.states import (
    AGENT_FORCE_TARGETS,
    AGENT_SELF_STATES,
    AgentState,
    CampaignState,
    InvalidTransition,
)
from dialer.errors import Conflict, InvalidState, NotFound, ValidationFailed
from dialer.store import agents as agent_store
from dialer.store import events
from dialer.store import leads as lead_store
from dialer.store.db import Database
from dialer.store.models import Agent, Attempt, Campaign, Lead
from dialer.usecases.limits import text_problem
from dialer.usecases.ports import EngineControl

AGENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(slots=True)
class Queue:
    agent: Agent
    campaign_id: str | None
    current: Attempt | None
    upcoming: list[Lead] = field(default_factory=list)


class AgentOps:
    def __init__(self, db: Database, clock: Clock, engine: EngineControl) -> None:
        self.db = db
        self.clock = clock
        self.engine = engine

    async def create(
        self, name: str, *, agent_id: str | None = None, state: AgentState = AgentState.OFFLINE
    ) -> Agent:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationFailed(
                "bad name", [{"field": "name", "message": "1 to 200 characters"}]
            )
        problem = text_problem(name, single_line=True)
        if problem:
            raise ValidationFailed("bad name", [{"field": "name", "message": problem}])
        agent_id = agent_id or "a_" + secrets.token_hex(5)
        if not AGENT_ID.match(agent_id):
            raise ValidationFailed(
                "bad id", [{"field": "id", "message": "letters, digits, _ . - (at most 64)"}]
            )
        now = self.clock.now()
        async with self.db.session() as s:
            if await agent_store.get(s, agent_id) is not None:
                raise Conflict(f"agent {agent_id!r} exists", {"id": agent_id})
            agent = Agent(
                id=agent_id, name=name, state=state, version=1, state_since=now, created_at=now
            )
            s.add(agent)
            events.record(
                s, at=now, entity="agent", entity_id=agent_id, type="agent.created", to_state=state
            )
        return agent

    async def get(self, agent_id: str) -> Agent:
        async with self.db.reader() as s:
            agent = await agent_store.get(s, agent_id)
            if agent is None:
                raise NotFound(f"no agent {agent_id!r}", {"id": agent_id})
            return agent

    async def all(self) -> list[Agent]:
        async with self.db.reader() as s:
            return await agent_store.all_agents(s)

    async def set_state(
        self,
        agent_id: str,
        state: str,
        *,
        actor: str,
        force: bool = False,
        reason: str | None = None,
    ) -> Agent:
        """available / offline / break, asked by the agent or a supervisor; `available`
        also ends a wrap-up early. `force` (a supervisor's override, the caller checks the
        role) moves the agent to offline or available from any state and ends its
        engagement (docs/architecture.md §2.4, `pool.force`); `reason` goes to the audit."""
        to: AgentState | None
        try:
            to = AgentState(state)
        except ValueError:
            to = None
        if force and to not in AGENT_FORCE_TARGETS:
            raise ValidationFailed(
                "bad state",
                [{"field": "state", "message": "a forced move is to available or offline"}],
            )
        if to not in AGENT_SELF_STATES:
            raise ValidationFailed(
                "bad state", [{"field": "state", "message": "available, offline or break"}]
            )
        now = self.clock.now()
        async with self.db.session() as s:
            agent = await agent_store.get(s, agent_id, lock=True)
            if agent is None:
                raise NotFound(f"no agent {agent_id!r}", {"id": agent_id})
            if force:
                try:
                    await pool.force(s, agent, to, now, reason, actor=actor)
                except InvalidTransition as exc:  # not reached: `to` was checked above
                    raise InvalidState(str(exc), agent.state) from None
                return agent
            current = AgentState(agent.state)
            if current is AgentState.RESERVED and to is not AgentState.AVAILABLE:
                raise InvalidState("the agent is held for a ringing call", current)
            if current is to:
                return agent
            try:
                pool.move(s, agent, to, now, reason, actor=actor, engine=False)
            except InvalidTransition as exc:
                raise InvalidState(str(exc), current) from None
            agent.wrap_up_until = None
            if to is AgentState.OFFLINE and agent.campaign_id is not None:
                agent.campaign_id = None  # an offline agent serves no campaign
        return agent

    async def queue(self, agent_id: str, *, limit: int = 10) -> Queue:
        """The agent's current call and the campaign's next leads (empty when the campaign
        is not running: a paused campaign's work is gone from the agent's view)."""
        async with self.db.reader() as s:
            agent = await agent_store.get(s, agent_id)
            if agent is None:
                raise NotFound(f"no agent {agent_id!r}", {"id": agent_id})
            current = await s.get(Attempt, agent.attempt_id) if agent.attempt_id else None
            q = Queue(agent, agent.campaign_id, current)
            if agent.campaign_id is None:
                return q
            c = await s.get(Campaign, agent.campaign_id)
            if c is None or c.state != CampaignState.RUNNING:
                return q
            spec = self.engine.spec(c)
            steps = spec.steps_of(Channel.VOICE)
            if steps:
                q.upcoming = await lead_store.next_up(s, c.id, steps, limit)
            return q
