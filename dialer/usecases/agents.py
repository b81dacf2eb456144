"""Agent use cases: registry, self-service states, and an agent's queue."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from dialer.agents import pool
from dialer.clock import Clock
from dialer.domain.campaign import Channel
from dialer.domain.pacing import PacingMode
from dialer.domain.states import (
    AGENT_FORCE_TARGETS,
    AGENT_SELF_STATES,
    AgentState,
    CampaignState,
    InvalidTransition,
)
from dialer.engine import control
from dialer.errors import Conflict, InvalidState, NotFound, ValidationFailed
from dialer.store import agents as agent_store
from dialer.store import events
from dialer.store import leads as lead_store
from dialer.store.db import Database
from dialer.store.models import Agent, Attempt, Campaign, Lead
from dialer.usecases.limits import text_problem
from dialer.usecases.ports import EngineControl

AGENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


DAY = 86400.0
# Logged in: working or ready to (a break and offline are not); busy: handling a call.
LOGGED_IN = frozenset(
    {AgentState.AVAILABLE, AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP}
)
BUSY = frozenset({AgentState.ON_CALL, AgentState.WRAP_UP})


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """An agent's day so far (since midnight UTC, docs/api.md §6)."""

    calls_handled: int = 0  # answered calls it was put on
    talk_seconds: float = 0.0  # their durations
    occupancy: float = 0.0  # time on a call or in wrap-up / time logged in (not on a break)


def occupancy(
    start_state: str, changes: list[tuple[float, str]], since: float, now: float
) -> float:
    """Busy time over logged-in time between `since` and `now`, from the state at `since`
    and the (time, new state) changes after it."""
    busy = logged_in = 0.0
    state, at = start_state, since
    for when, to in [*changes, (now, "")]:
        span = max(0.0, when - at)
        if state in LOGGED_IN:
            logged_in += span
        if state in BUSY:
            busy += span
        state, at = to, when
    return round(busy / logged_in, 4) if logged_in > 0 else 0.0


@dataclass(slots=True)
class Queue:
    agent: Agent
    campaign_id: str | None
    current: Attempt | None
    upcoming: list[Lead] = field(default_factory=list)
    preview: Lead | None = None  # preview mode: the lead the agent dials or skips next


# A lead an agent passes on in preview mode comes back after this delay (docs/api.md §6).
PREVIEW_SKIP_SECONDS = 600.0


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

    async def figures(self, agents: list[Agent]) -> dict[str, AgentFigures]:
        """Each agent's figures for today (since midnight UTC)."""
        now = self.clock.now()
        since = now - now % DAY
        ids = [a.id for a in agents]
        async with self.db.reader() as s:
            handled = await agent_store.handled_since(s, since, ids)
            changes = await agent_store.state_changes_since(s, since, ids)
        by_agent: dict[str, list[tuple[float, str | None, str]]] = {}
        for agent_id, at, from_state, to_state in changes:
            by_agent.setdefault(agent_id, []).append((at, from_state, to_state))
        out: dict[str, AgentFigures] = {}
        for a in agents:
            moves = by_agent.get(a.id, [])
            # The state at midnight: what the first change of the day left, or the current one.
            start = (moves[0][1] or "offline") if moves else a.state
            calls, talk = handled.get(a.id, (0, 0.0))
            out[a.id] = AgentFigures(
                calls_handled=calls,
                talk_seconds=round(talk, 1),
                occupancy=occupancy(start, [(at, to) for at, _, to in moves], since, now),
            )
        return out

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
            free = agent.state == AgentState.AVAILABLE and agent.attempt_id is None
            if steps and free and spec.pacing.mode is PacingMode.PREVIEW:
                now = self.clock.now()
                due_before = control.campaign_clock(c).now(now)
                q.preview = await lead_store.preview_lead(s, c.id, steps, due_before, now)
            return q

    async def dial(self, agent_id: str, lead_id: int | None, *, actor: str) -> Queue:
        """Preview mode (docs/architecture.md §3.4): the agent dials its previewed lead
        (or `lead_id`, one the claim could take now). The call goes through the engine's
        claim, attempt row and pause fence; the answer is bridged to this agent. 409 when
        the agent is not free, its campaign is not a running preview campaign, or the lead
        cannot be dialled now (taken by another agent, paused, not due)."""
        q = await self._preview_queue(agent_id)
        campaign_id = q.campaign_id
        assert campaign_id is not None  # _preview_queue checked it
        target = lead_id if lead_id is not None else _lead_id(q)
        placed = await self.engine.dial_preview(campaign_id, target, agent_id, actor=actor)
        if placed is None:
            state = await self._campaign_state(campaign_id)
            if state != CampaignState.RUNNING:
                raise InvalidState(f"campaign {campaign_id!r} is {state}", state)
            raise Conflict(
                f"lead {target} cannot be dialled now", {"lead_id": target, "agent": agent_id}
            )
        return await self.queue(agent_id)

    async def skip(self, agent_id: str, lead_id: int | None, *, actor: str) -> Queue:
        """Preview mode: the agent passes on its previewed lead (or `lead_id`), which goes
        back to the list and is offered again after PREVIEW_SKIP_SECONDS."""
        q = await self._preview_queue(agent_id)
        target = lead_id if lead_id is not None else _lead_id(q)
        now = self.clock.now()
        async with self.db.session() as s:
            lead = await lead_store.get(s, target, lock=True)
            c = await s.get(Campaign, q.campaign_id) if q.campaign_id else None
            if lead is None or c is None or lead.campaign_id != c.id:
                raise NotFound(f"no lead {target} in the agent's campaign", {"lead_id": target})
            steps = self.engine.spec(c).steps_of(Channel.VOICE)
            due_before = control.campaign_clock(c).now(now)
            offered = await lead_store.is_previewable(s, c.id, steps, due_before, now, target)
            if not offered:
                raise Conflict(
                    f"lead {target} is not up for preview", {"lead_id": target, "agent": agent_id}
                )
            lead.not_before = now + PREVIEW_SKIP_SECONDS
            lead.updated_at = now
            events.record(
                s,
                at=now,
                entity="lead",
                entity_id=str(lead.id),
                type="lead.preview_skipped",
                campaign_id=c.id,
                actor=actor,
                data={"agent_id": agent_id, "until": lead.not_before},
            )
        return await self.queue(agent_id)

    async def _preview_queue(self, agent_id: str) -> Queue:
        """The agent's queue, checked for a preview action: engaged with a running
        preview campaign, and free (409 otherwise)."""
        q = await self.queue(agent_id)
        if q.campaign_id is None:
            raise InvalidState("the agent serves no campaign", q.agent.state)
        async with self.db.reader() as s:
            c = await s.get(Campaign, q.campaign_id)
            if c is None or c.state != CampaignState.RUNNING:
                state = c.state if c else "deleted"
                raise InvalidState(f"campaign {q.campaign_id!r} is {state}", state)
            if self.engine.spec(c).pacing.mode is not PacingMode.PREVIEW:
                raise InvalidState(f"campaign {c.id!r} is not in preview mode", c.state)
        if q.agent.state != AgentState.AVAILABLE or q.agent.attempt_id is not None:
            raise InvalidState("the agent is not free to dial", q.agent.state)
        return q

    async def _campaign_state(self, campaign_id: str) -> str:
        async with self.db.reader() as s:
            c = await s.get(Campaign, campaign_id)
            return c.state if c else "deleted"


def _lead_id(q: Queue) -> int:
    if q.preview is None:
        raise Conflict("no lead to preview now", {"campaign_id": q.campaign_id})
    return q.preview.id
