"""What the API sends and takes: pydantic models, one per resource (and the OpenAPI)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dialer.domain.campaign import CampaignSpec
from dialer.store.models import Agent, Attempt, Campaign, Event, Lead
from dialer.store.stats import CampaignStats
from dialer.usecases.agents import AgentFigures, Queue
from dialer.usecases.campaigns import (
    CampaignView,
    ChannelStatus,
    PauseResult,
    TerminateResult,
    WaitingFor,
)
from dialer.usecases.leads import Position


def iso(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- campaigns -------------------------------------------------------------------------------
class ChannelOut(Out):
    """A channel's status (docs/api.md §4.5)."""

    up: bool
    since: datetime | None = None
    error: str | None = None
    retry_at: datetime | None = None

    @classmethod
    def of(cls, st: ChannelStatus) -> ChannelOut:
        return cls(up=st.up, since=iso(st.since), error=st.error, retry_at=iso(st.retry_at))


class HoldingAgentOut(Out):
    id: str
    name: str
    state: str
    attempt_id: str | None


class WaitingForOut(Out):
    """What a stopping campaign waits for (docs/api.md §4.5)."""

    attempts: int
    by_status: dict[str, int]
    oldest_at: datetime | None
    oldest_age_seconds: float | None
    agents: list[HoldingAgentOut]
    expected_by: datetime | None

    @classmethod
    def of(cls, w: WaitingFor, now: float) -> WaitingForOut:
        return cls(
            attempts=w.attempts,
            by_status=w.by_status,
            oldest_at=iso(w.oldest_at),
            oldest_age_seconds=None if w.oldest_at is None else max(0.0, now - w.oldest_at),
            agents=[
                HoldingAgentOut(
                    id=a.id,
                    name=a.name,
                    state=a.state,
                    attempt_id=str(a.attempt_id) if a.attempt_id else None,
                )
                for a in w.agents
            ],
            expected_by=iso(w.expected_by),
        )


class CampaignOut(CampaignSpec):
    id: str
    state: str
    version: int
    created_at: datetime
    started_at: datetime | None
    paused_at: datetime | None
    ended_at: datetime | None
    scheduled_at: datetime | None = None
    archived: bool
    # GET one and the list only (null elsewhere, e.g. in live events): docs/api.md §4.5.
    channels: dict[str, ChannelOut] | None = None
    waiting_for: WaitingForOut | None = None

    @classmethod
    def of(cls, c: Campaign) -> CampaignOut:
        return cls.model_validate(
            {
                **c.config,
                "name": c.name,
                "id": c.id,
                "state": c.state,
                "version": c.version,
                "created_at": iso(c.created_at),
                "started_at": iso(c.started_at),
                "paused_at": iso(c.paused_at),
                "ended_at": iso(c.ended_at),
                "scheduled_at": iso(c.start_at),
                "archived": c.archived,
            }
        )

    @classmethod
    def of_view(cls, v: CampaignView, now: float) -> CampaignOut:
        out = cls.of(v.campaign)
        out.channels = {name: ChannelOut.of(st) for name, st in v.channels.items()}
        out.waiting_for = None if v.waiting_for is None else WaitingForOut.of(v.waiting_for, now)
        return out


class CampaignList(Out):
    items: list[CampaignOut]


class AtIn(In):
    at: AwareDatetime | None = None


class PauseIn(In):
    reason: str | None = Field(default=None, max_length=500)


class TerminateIn(In):
    confirm: str = Field(min_length=1, max_length=64)


class AttemptOut(Out):
    id: str
    lead_id: str
    campaign_id: str
    step: int
    try_no: int
    channel: str
    status: str
    carrier_id: str | None
    answered_by: str | None
    agent_id: str | None
    abandoned: bool
    delivered: bool = False  # agentless: a person heard the campaign's message
    duration_seconds: float | None
    error: str | None
    created_at: datetime
    ended_at: datetime | None
    history: list[dict[str, Any]]

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(
            id=str(a.id),
            lead_id=str(a.lead_id),
            campaign_id=a.campaign_id,
            step=a.step,
            try_no=a.try_no,
            channel=a.channel,
            status=a.status,
            carrier_id=a.carrier_id,
            answered_by=a.answered_by,
            agent_id=a.agent_id,
            abandoned=a.abandoned,
            delivered=bool(a.delivered),
            duration_seconds=a.duration,
            error=a.error,
            created_at=iso(a.created_at) or datetime.now(UTC),
            ended_at=iso(a.ended_at),
            history=list(a.history or []),
        )


class PauseOut(Out):
    campaign: CampaignOut
    in_flight: list[AttemptOut]
    released_agents: list[str]

    @classmethod
    def of(cls, r: PauseResult) -> PauseOut:
        return cls(
            campaign=CampaignOut.of(r.campaign),
            in_flight=[AttemptOut.of(a) for a in r.in_flight],
            released_agents=r.released_agents,
        )


class TerminateOut(Out):
    campaign: CampaignOut
    in_flight: list[AttemptOut]
    released_agents: list[str]
    cancelled_calls: list[str]
    steps: list[dict[str, Any]]

    @classmethod
    def of(cls, r: TerminateResult) -> TerminateOut:
        return cls(
            campaign=CampaignOut.of(r.campaign),
            in_flight=[AttemptOut.of(a) for a in r.in_flight],
            released_agents=r.released_agents,
            cancelled_calls=r.cancelled_calls,
            steps=r.steps,
        )


class PauseAllOut(Out):
    paused: list[str]


class CallsOut(Out):
    dialed: int
    received: int
    answered: int
    abandoned: int
    delivered: int = 0  # agentless: answered by a person, the message played (not abandoned)
    in_flight: int
    avg_duration_seconds: float
    abandon_rate: float


class EmailsOut(Out):
    sent: int
    failed: int
    bounced: int
    replied: int
    unsubscribed: int
    in_flight: int
    soft_bounced: int  # a 4.x.x DSN came back (docs/architecture.md §9.1)
    clicked: int  # leads with a tracked link followed by a person


class LeadCounts(Out):
    pending: int
    in_progress: int
    paused: int
    completed: int
    stopped: int
    skipped: int
    # Of the paused, those paused longer than DIALER_STALE_PAUSE_DAYS (docs/api.md §4.3).
    stale: int = 0


class StatsOut(Out):
    campaign_id: str
    state: str
    calls: CallsOut
    emails: EmailsOut
    leads: LeadCounts

    @classmethod
    def of(cls, s: CampaignStats) -> StatsOut:
        return cls(
            campaign_id=s.campaign_id,
            state=s.state,
            calls=CallsOut.model_validate(s.calls, from_attributes=True),
            emails=EmailsOut.model_validate(s.emails, from_attributes=True),
            leads=LeadCounts.model_validate(s.leads),
        )


class EventOut(Out):
    id: str
    at: datetime
    campaign_id: str | None
    entity: str
    entity_id: str
    type: str
    actor: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls(
            id=str(e.id),
            at=iso(e.at) or datetime.now(UTC),
            campaign_id=e.campaign_id,
            entity=e.entity,
            entity_id=e.entity_id,
            type=e.type,
            actor=e.actor,
            from_state=e.from_state,
            to_state=e.to_state,
            reason=e.reason,
            data=dict(e.data or {}),
        )


class EventList(Out):
    items: list[EventOut]


# -- leads -----------------------------------------------------------------------------------
class LeadOut(Out):
    id: str
    campaign_id: str
    phone: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    timezone: str | None
    custom: dict[str, Any]
    status: str
    step: int
    tries: int
    stop_reason: str | None
    pause_reason: str | None
    paused_until: datetime | None
    paused_at: datetime | None
    # Paused longer than DIALER_STALE_PAUSE_DAYS (docs/api.md §5).
    stale: bool
    created_at: datetime

    @classmethod
    def of(cls, lead: Lead, *, stale_before: float | None = None) -> LeadOut:
        """`stale_before`: leads paused at or before it are stale (None: none is)."""
        return cls(
            id=str(lead.id),
            campaign_id=lead.campaign_id,
            phone=lead.phone,
            email=lead.email,
            first_name=lead.first_name,
            last_name=lead.last_name,
            company=lead.company,
            timezone=lead.timezone,
            custom=dict(lead.custom or {}),
            status=lead.status,
            step=lead.step,
            tries=lead.tries,
            stop_reason=lead.stop_reason,
            pause_reason=lead.pause_reason,
            paused_until=iso(lead.paused_until),
            paused_at=iso(lead.paused_at),
            stale=(
                stale_before is not None
                and lead.status == "paused"
                and lead.paused_at is not None
                and lead.paused_at <= stale_before
            ),
            created_at=iso(lead.created_at) or datetime.now(UTC),
        )


class PositionOut(Out):
    step: int
    channel: str | None
    due_at: datetime | None  # null while the campaign or the lead is paused: the delay is frozen
    due_in_seconds: float | None

    @classmethod
    def of(cls, p: Position) -> PositionOut:
        return cls(
            step=p.step, channel=p.channel, due_at=iso(p.due_at), due_in_seconds=p.due_in_seconds
        )


class LeadDetail(LeadOut):
    position: PositionOut
    attempts: list[AttemptOut]


# -- agents ----------------------------------------------------------------------------------
class AgentOut(Out):
    id: str
    name: str
    state: str
    campaign_id: str | None
    attempt_id: str | None
    state_since: datetime
    wrap_up_until: datetime | None
    version: int
    # Today's figures (since midnight UTC), in the list (docs/api.md §6).
    calls_handled: int = 0
    talk_seconds: float = 0.0
    occupancy: float = 0.0

    @classmethod
    def of(cls, a: Agent, figures: AgentFigures | None = None) -> AgentOut:
        f = figures or AgentFigures()
        return cls(
            calls_handled=f.calls_handled,
            talk_seconds=f.talk_seconds,
            occupancy=f.occupancy,
            id=a.id,
            name=a.name,
            state=a.state,
            campaign_id=a.campaign_id,
            attempt_id=str(a.attempt_id) if a.attempt_id else None,
            state_since=iso(a.state_since) or datetime.now(UTC),
            wrap_up_until=iso(a.wrap_up_until),
            version=a.version,
        )


class AgentList(Out):
    items: list[AgentOut]


class QueueOut(Out):
    agent: AgentOut
    campaign_id: str | None
    current: AttemptOut | None
    upcoming: list[LeadOut]
    preview: LeadOut | None = Field(
        default=None,
        description="preview mode: the lead the agent dials (`/dial`) or passes (`/skip`) next",
    )

    @classmethod
    def of(cls, q: Queue) -> QueueOut:
        return cls(
            agent=AgentOut.of(q.agent),
            campaign_id=q.campaign_id,
            current=AttemptOut.of(q.current) if q.current else None,
            upcoming=[LeadOut.of(x) for x in q.upcoming],
            preview=LeadOut.of(q.preview) if q.preview else None,
        )


class ErrorBody(Out):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(Out):
    error: ErrorBody


Health = Literal["ok"]


# -- engine processes (docs/api.md §11.1) ----------------------------------------------------
class WorkerOut(Out):
    """A live engine process, as its heartbeat in the bus's registry describes it."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    campaigns: list[str] = Field(description="campaigns it dispatched for in its last round")

    @classmethod
    def of(cls, w: dict[str, Any]) -> WorkerOut:
        return cls(
            id=str(w["id"]),
            host=str(w["host"]),
            pid=int(w["pid"]),
            started_at=iso(float(w["started_at"])) or datetime.now(UTC),
            heartbeat_at=iso(float(w["heartbeat_at"])) or datetime.now(UTC),
            campaigns=[str(c) for c in w["campaigns"]],
        )


class WorkerList(Out):
    items: list[WorkerOut]
