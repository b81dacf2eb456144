"""Use cases: what supervisors, scripts and the CLI ask of dialer (docs/architecture.md §3).

The API's handlers are thin calls into this class; so are the CLI and the tests.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from dialer.agents import pool
from dialer.clock import Clock
from dialer.domain.campaign import CampaignPatch, CampaignSpec, Channel, EmailStep, VoiceStep
from dialer.domain.contacts import ContactError, normalize_phone
from dialer.domain.links import LinkSigner
from dialer.domain.states import CAMPAIGN_EDITABLE, CampaignAction, CampaignState
from dialer.engine import control
from dialer.engine.stats_window import PacingStatus, pacing_status
from dialer.errors import (
    InvalidState,
    NotFound,
    ValidationFailed,
    VersionMismatch,
    field_errors,
    invalid,
)
from dialer.metrics.registry import Metrics
from dialer.store import agents as agent_store
from dialer.store import attempts as attempt_store
from dialer.store import campaigns as campaign_store
from dialer.store import events
from dialer.store import leads as lead_store
from dialer.store.db import Database, DbSession
from dialer.store.models import Agent, Attempt, Campaign, Event
from dialer.store.stats import CampaignStats, campaign_stats
from dialer.usecases import limits
from dialer.usecases.agents import AgentOps
from dialer.usecases.dnc import DncOps
from dialer.usecases.leads import LeadOps
from dialer.usecases.limits import UNSUBSCRIBE_TOKEN, ZONE_NAME, text_problem
from dialer.usecases.ports import EngineControl

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PauseResult:
    campaign: Campaign
    in_flight: list[Attempt]
    released_agents: list[str]
    changed: bool = True


@dataclass(frozen=True, slots=True)
class TerminateResult:
    campaign: Campaign
    in_flight: list[Attempt]
    released_agents: list[str]
    cancelled_calls: list[str]
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """A campaign's channel as the engine last reported it (docs/api.md §4.5)."""

    up: bool
    since: float | None = None  # the report's time; None: never reported down
    error: str | None = None
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class WaitingFor:
    """What a `stopping` campaign still waits for before it is `stopped` (docs/api.md §4.5)."""

    attempts: int
    by_status: dict[str, int]
    oldest_at: float | None
    agents: list[Agent]
    # When the reconciler resolves the last of them, if no callback does it first
    # (docs/architecture.md §6.3): the latest stale time plus the voice step's ring timeout.
    expected_by: float | None


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign with what its page shows beside it: channel status, and for a stopping
    campaign what it waits for."""

    campaign: Campaign
    channels: dict[str, ChannelStatus]
    waiting_for: WaitingFor | None = None


def channel_statuses(spec: CampaignSpec, latest: dict[str, Event]) -> dict[str, ChannelStatus]:
    """Each channel of the campaign (and any the engine reported on): up unless its latest
    report is `campaign.channel_unavailable`."""
    names = {str(step.channel) for step in spec.sequence} | set(latest)
    out: dict[str, ChannelStatus] = {}
    for name in sorted(names):
        ev = latest.get(name)
        if ev is None:
            out[name] = ChannelStatus(up=True)
        elif ev.type == events.CHANNEL_UNAVAILABLE:
            retry_at = ev.data.get("retry_at")
            error = ev.data.get("error")
            out[name] = ChannelStatus(
                up=False,
                since=ev.at,
                error=str(error) if error is not None else None,
                retry_at=float(retry_at) if isinstance(retry_at, int | float) else None,
            )
        else:
            out[name] = ChannelStatus(up=True, since=ev.at)
    return out


_OFFSET = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)\s*$")


def _pre_check(data: dict[str, Any]) -> list[dict[str, Any]]:
    """What the model cannot refuse by itself, checked on the raw input first: a very long
    zone name makes zoneinfo raise OSError, and a window time with an offset (or a number,
    read as UTC) makes the start/end comparison raise TypeError (neither is the ValueError
    pydantic reports)."""
    schedule = data.get("schedule")
    if not isinstance(schedule, dict):
        return []
    errors: list[dict[str, Any]] = []
    zone = schedule.get("timezone")
    if isinstance(zone, str) and (len(zone) > limits.MAX_ZONE or not ZONE_NAME.fullmatch(zone)):
        errors.append({"field": "schedule.timezone", "message": f"unknown time zone {zone[:80]!r}"})
    windows = schedule.get("windows")
    for i, window in enumerate(windows if isinstance(windows, list) else []):
        for end in ("start", "end"):
            value = window.get(end) if isinstance(window, dict) else None
            # A number is read as seconds since midnight UTC: an aware time too.
            if isinstance(value, int | float) or (isinstance(value, str) and _OFFSET.search(value)):
                errors.append(
                    {
                        "field": f"schedule.windows.{i}.{end}",
                        "message": "a local time (HH:MM) without an offset",
                    }
                )
    return errors


def _bounds(spec: CampaignSpec) -> list[dict[str, Any]]:
    """The limits the model does not state (docs/api.md §4.1): delays, counts, lengths and
    text a database and a mail header take."""
    errors: list[dict[str, Any]] = []

    def check(name: str, problem: str | None) -> None:
        if problem:
            errors.append({"field": name, "message": problem})

    check("name", text_problem(spec.name, single_line=True, max_length=200))
    for i, step in enumerate(spec.sequence):
        for attr in ("delay_seconds", "retry_delay_seconds"):
            if getattr(step, attr) > limits.MAX_DELAY_SECONDS:
                check(f"sequence.{i}.{attr}", f"at most {limits.MAX_DELAY_SECONDS:.0f} seconds")
        if isinstance(step, EmailStep):
            check(f"sequence.{i}.subject", text_problem(step.subject, single_line=True))
            check(f"sequence.{i}.body", text_problem(step.body, max_length=limits.MAX_EMAIL_BODY))
    if spec.schedule is not None and len(spec.schedule.windows) > limits.MAX_WINDOWS:
        check("schedule.windows", f"at most {limits.MAX_WINDOWS} windows")
    if len(spec.caller_ids) > limits.MAX_CALLER_IDS:
        check("caller_ids", f"at most {limits.MAX_CALLER_IDS} numbers")
    if spec.sender is not None:
        check(
            "sender.name",
            text_problem(spec.sender.name, single_line=True, max_length=limits.MAX_SENDER_NAME),
        )
    if len(spec.agent_ids) > limits.MAX_AGENT_IDS:
        check("agent_ids", f"at most {limits.MAX_AGENT_IDS} agents")
    else:
        for i, agent_id in enumerate(spec.agent_ids):
            if not limits.is_id(agent_id):
                check(f"agent_ids.{i}", "not an agent id")
    check("custom", limits.custom_problem(spec.custom))
    return errors


def validate_spec(data: dict[str, Any]) -> CampaignSpec:
    if errors := _pre_check(data):
        raise ValidationFailed("invalid campaign", errors)
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("invalid campaign", field_errors(exc)) from None
    errors = _bounds(spec)
    caller_ids: list[str] = []
    for i, raw in enumerate(spec.caller_ids[: limits.MAX_CALLER_IDS]):
        try:
            caller_ids.append(normalize_phone(raw[:64]))
        except ContactError as exc:
            errors.append({"field": f"caller_ids.{i}", "message": exc.message})
    if spec.has_voice and not spec.caller_ids:
        errors.append({"field": "caller_ids", "message": "a voice step needs a caller id"})
    if spec.has_email and spec.sender is None:
        errors.append({"field": "sender", "message": "an email step needs a sender"})
    if errors:
        raise ValidationFailed("invalid campaign", errors)
    return spec.model_copy(update={"caller_ids": caller_ids})


async def unknown_agents(s: DbSession, agent_ids: list[str]) -> list[dict[str, Any]]:
    """A field error for each agent id that names no agent (422, not a campaign that waits
    for agents who will never come)."""
    errors: list[dict[str, Any]] = []
    for i, agent_id in enumerate(agent_ids):
        if agent_id not in agent_ids[:i] and await agent_store.get(s, agent_id) is None:
            errors.append({"field": f"agent_ids.{i}", "message": f"no agent {agent_id!r}"})
    return errors


def _schedule_problem(at: float | None, now: float) -> None:
    if at is not None and at > now + limits.MAX_SCHEDULE_SECONDS:
        raise invalid(
            "at",
            f"at most {limits.MAX_SCHEDULE_SECONDS / 86400:.0f} days ahead",
            summary="at is too far ahead",
        )


def lead_of_unsubscribe_token(links: LinkSigner, token: str) -> int | None:
    """The lead a signed unsubscribe token names, or None. The token must have the shape the
    signer makes (ASCII digits, a dot, 32 hex digits) before it is decoded: '²' passes
    isdigit() and then fails int(), and compare_digest refuses non-ASCII text."""
    if not UNSUBSCRIBE_TOKEN.fullmatch(token):
        return None
    return links.lead_of_unsubscribe_token(token)


class Service:
    def __init__(
        self,
        db: Database,
        engine: EngineControl,
        clock: Clock,
        metrics: Metrics,
        links: LinkSigner,
        *,
        lease_seconds: float = 60.0,
        stale_pause_days: float = 30.0,
    ) -> None:
        self.db = db
        # The engine's lease (DIALER_LEASE_SECONDS): when the reconciler takes over an
        # attempt nobody reports on (docs/architecture.md §6.3), read by `view`.
        self.lease_seconds = lease_seconds
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.links = links
        self.leads = LeadOps(db, clock, engine.spec)
        self.leads.stale_pause_days = stale_pause_days
        self.dnc = DncOps(db, clock)
        self.agents = AgentOps(db, clock, engine)

    # -- configuration ---------------------------------------------------------------------
    async def create_campaign(self, data: dict[str, Any], *, actor: str) -> Campaign:
        spec = validate_spec(data)
        now = self.clock.now()
        c = Campaign(
            id="c_" + secrets.token_hex(6),
            name=spec.name,
            state=CampaignState.DRAFT,
            version=1,
            config=spec.model_dump(mode="json"),
            archived=False,
            active_seconds=0.0,
            clock_offset=0.0,
            dispatched=False,
            created_at=now,
            updated_at=now,
        )
        async with self.db.session() as s:
            if errors := await unknown_agents(s, spec.agent_ids):
                raise ValidationFailed("invalid campaign", errors)
            s.add(c)
            events.record(
                s,
                at=now,
                entity="campaign",
                entity_id=c.id,
                campaign_id=c.id,
                type="campaign.created",
                actor=actor,
                to_state=c.state,
                data={"version": c.version},
            )
        self.metrics.set_campaign_state(c.id, c.state)
        return c

    async def update_campaign(
        self, campaign_id: str, data: dict[str, Any], *, actor: str, if_version: int | None = None
    ) -> Campaign:
        if errors := _pre_check(data):
            raise ValidationFailed("invalid campaign change", errors)
        try:
            patch = CampaignPatch.model_validate(data)
        except ValidationError as exc:
            raise ValidationFailed("invalid campaign change", field_errors(exc)) from None
        now = self.clock.now()
        async with self.db.session() as s:
            c = await control.load(s, campaign_id, lock=True)
            if if_version is not None and if_version != c.version:
                raise VersionMismatch(if_version, c.version)
            if c.state not in CAMPAIGN_EDITABLE:
                raise InvalidState(f"cannot change a campaign that is {c.state}", c.state)
            changes = patch.model_dump(mode="json", exclude_unset=True)
            if (
                "resume_policy" in changes
                and c.started_at is not None
                and changes["resume_policy"] != c.config.get("resume_policy")
            ):
                raise invalid(
                    "resume_policy",
                    "fixed once started",
                    summary="the resume policy is fixed once a campaign has started",
                )
            old_spec = CampaignSpec.model_validate(c.config)
            spec = validate_spec({**c.config, **changes})
            if "agent_ids" in changes and (errors := await unknown_agents(s, spec.agent_ids)):
                raise ValidationFailed("invalid campaign change", errors)
            c.config = spec.model_dump(mode="json")
            # Leads follow a sequence or sender change (docs/architecture.md §3.5).
            moved = await self.leads.on_config_change(s, c, old_spec, spec, now)
            c.name = spec.name
            c.version += 1
            c.updated_at = now
            events.campaign_event(
                s,
                c,
                "campaign.updated",
                at=now,
                actor=actor,
                data={"fields": sorted(changes), **({"leads": moved} if moved else {})},
            )
        await self.engine.announce(c)
        return c

    async def get_campaign(self, campaign_id: str) -> Campaign:
        async with self.db.reader() as s:
            return await control.load(s, campaign_id)

    async def list_campaigns(
        self, *, state: str | None = None, archived: bool | None = False
    ) -> list[Campaign]:
        async with self.db.reader() as s:
            return await campaign_store.list_campaigns(s, state=state, archived=archived)

    async def view(self, campaign_id: str) -> CampaignView:
        """The campaign with its channels and, when stopping, what it waits for (one
        read snapshot)."""
        async with self.db.reader() as s:
            c = await control.load(s, campaign_id)
            latest = await events.latest_channel_events(s, [c.id])
            waiting = await self._waiting_for(s, c) if c.state == CampaignState.STOPPING else None
        spec = self.engine.spec(c)
        return CampaignView(c, channel_statuses(spec, latest.get(c.id, {})), waiting)

    async def list_views(
        self, *, state: str | None = None, archived: bool | None = False
    ) -> list[CampaignView]:
        """The list with each campaign's channels (one more query for all of them);
        `waiting_for` is the detail's (GET one)."""
        async with self.db.reader() as s:
            items = await campaign_store.list_campaigns(s, state=state, archived=archived)
            latest = await events.latest_channel_events(s, [c.id for c in items])
        return [
            CampaignView(c, channel_statuses(self.engine.spec(c), latest.get(c.id, {})))
            for c in items
        ]

    async def _waiting_for(self, s: DbSession, c: Campaign) -> WaitingFor:
        groups = await attempt_store.live_groups(s, c.id, self.lease_seconds)
        agents = await agent_store.holding(s, c.id)
        spec = self.engine.spec(c)
        by_status: dict[str, int] = {}
        expected: float | None = None
        for g in groups:
            by_status[g.status] = by_status.get(g.status, 0) + g.count
            step = spec.sequence[g.step] if 0 <= g.step < len(spec.sequence) else None
            ring = step.ring_timeout_seconds if isinstance(step, VoiceStep) else 0
            if g.channel != Channel.VOICE:
                ring = 0
            end = g.stale_by + ring
            expected = end if expected is None else max(expected, end)
        return WaitingFor(
            attempts=sum(by_status.values()),
            by_status=dict(sorted(by_status.items())),
            oldest_at=min((g.oldest_at for g in groups), default=None),
            agents=agents,
            expected_by=expected,
        )

    # -- control ---------------------------------------------------------------------------
    async def start(self, campaign_id: str, *, actor: str, at: float | None = None) -> Campaign:
        _schedule_problem(at, self.clock.now())
        change = await self._transition(campaign_id, CampaignAction.START, actor=actor, at=at)
        return change.campaign

    async def resume(self, campaign_id: str, *, actor: str, at: float | None = None) -> Campaign:
        _schedule_problem(at, self.clock.now())
        change = await self._transition(campaign_id, CampaignAction.RESUME, actor=actor, at=at)
        return change.campaign

    async def pause(
        self, campaign_id: str, *, actor: str, reason: str | None = None
    ) -> PauseResult:
        """running -> paused. When this returns, no new attempt of the campaign reaches a
        channel; the result lists what was in flight then and the agents released."""
        started = time.perf_counter()
        change = await self._transition(
            campaign_id, CampaignAction.PAUSE, actor=actor, reason=reason
        )
        if change.changed:
            self.metrics.pause_duration.observe(time.perf_counter() - started)
        # One transaction after the fence: what is in flight, then the agents released,
        # while the calls of it still queued at the carrier are cancelled side by side
        # (docs/architecture.md §4). Each statement of a pause waits its turn in an event
        # loop the engine keeps busy: fewer of them answer sooner.
        cancelling: asyncio.Future[list[str]] | None = None
        try:
            async with self.db.session() as s:
                in_flight = await campaign_store.in_flight(s, campaign_id)
                queued = attempt_store.queued_among(in_flight)
                cancelling = asyncio.ensure_future(self.engine.cancel_calls(queued))
                released = await pool.release(s, campaign_id, self.clock.now())
        finally:
            if cancelling is not None:  # after the commit: no row stays locked meanwhile
                await cancelling
        return PauseResult(change.campaign, in_flight, released, change.changed)

    async def terminate(self, campaign_id: str, *, confirm: str, actor: str) -> TerminateResult:
        """Cancel (never dispatched) or stop (through `stopping`): irreversible."""
        if confirm != campaign_id:
            raise invalid(
                "confirm",
                "must equal the campaign id",
                summary="confirm must repeat the campaign id",
            )
        change = await self._transition(campaign_id, CampaignAction.TERMINATE, actor=actor)
        c = change.campaign
        steps: list[dict[str, Any]] = []
        in_flight = await self.in_flight(campaign_id)
        cancelled: list[str] = []
        released: list[str] = []
        if change.changed and c.state == CampaignState.STOPPING:
            steps.append(await self._step(c, "terminate.claims_stopped", actor, {}))
            cancelled = await self.engine.cancel_calls(attempt_store.queued_among(in_flight))
            steps.append(
                await self._step(c, "terminate.queued_cancelled", actor, {"calls": cancelled})
            )
            async with self.db.session() as s:
                released = await pool.release(s, campaign_id, self.clock.now())
            steps.append(
                await self._step(c, "terminate.agents_released", actor, {"agents": released})
            )
            steps.append(
                await self._step(
                    c,
                    "terminate.in_flight",
                    actor,
                    {"attempts": [str(a.id) for a in in_flight]},
                )
            )
            await self.engine.drain(campaign_id)
            c = await self.get_campaign(campaign_id)
        return TerminateResult(c, in_flight, released, cancelled, steps)

    async def archive(self, campaign_id: str, *, actor: str) -> Campaign:
        c = await self.get_campaign(campaign_id)
        if c.state == CampaignState.RUNNING:
            await self.pause(campaign_id, actor=actor, reason="archived")
        now = self.clock.now()
        async with self.db.session() as s:
            c = await control.load(s, campaign_id, lock=True)
            if not c.archived:
                c.archived = True
                c.updated_at = now
                events.campaign_event(s, c, "campaign.archived", at=now, actor=actor)
        return c

    async def unarchive(self, campaign_id: str, *, actor: str) -> Campaign:
        """Back in the lists; it may be resumed or started again."""
        now = self.clock.now()
        async with self.db.session() as s:
            c = await control.load(s, campaign_id, lock=True)
            if c.archived:
                c.archived = False
                c.updated_at = now
                events.campaign_event(s, c, "campaign.unarchived", at=now, actor=actor)
        return c

    async def pause_all(self, *, actor: str, reason: str | None = None) -> list[str]:
        running = await self.list_campaigns(state=CampaignState.RUNNING, archived=None)
        # A scheduled campaign too: its start is dropped (docs/architecture.md §3.5).
        running += await self.list_campaigns(state=CampaignState.SCHEDULED, archived=None)
        paused: list[str] = []
        for c in running:
            try:
                result = await self.pause(c.id, actor=actor, reason=reason or "pause all")
            except InvalidState:
                continue  # it completed or was terminated meanwhile
            if result.changed:
                paused.append(c.id)
        return paused

    def unsubscribe_lead(self, token: str) -> int | None:
        """The lead a signed unsubscribe token names, or None."""
        return lead_of_unsubscribe_token(self.links, token)

    async def unsubscribe(self, token: str) -> list[int]:
        """RFC 8058 one-click unsubscribe: honoured at once for every open lead with that
        address, in every campaign. Returns the leads stopped (empty when already done)."""
        lead_id = self.unsubscribe_lead(token)
        if lead_id is None:
            raise NotFound("unknown unsubscribe link")
        lead, _ = await self.leads.get(lead_id)
        if not lead.email:
            return []
        return await self.leads.stop_address(lead.email, actor="recipient")

    # -- figures ---------------------------------------------------------------------------
    async def stats(self, campaign_id: str) -> CampaignStats:
        async with self.db.reader() as s:
            c = await control.load(s, campaign_id)
            out = await campaign_stats(s, c)
            out.leads["stale"] = await lead_store.count_stale(s, c.id, self.leads.stale_before())
            return out

    async def pacing(self, campaign_id: str, *, max_lines_per_agent: float) -> PacingStatus:
        """The pacer's view now: the rolling abandon rate against the cap and the dial level
        (docs/architecture.md §8)."""
        async with self.db.reader() as s:
            c = await control.load(s, campaign_id)
            return await pacing_status(
                s,
                c.id,
                self.engine.spec(c),
                now=self.clock.now(),
                max_lines_per_agent=max_lines_per_agent,
            )

    async def events(
        self, campaign_id: str, *, after_id: int = 0, limit: int = 1000, entity: str | None = None
    ) -> list[Event]:
        async with self.db.reader() as s:
            await control.load(s, campaign_id)
            return await events.list_events(
                s, campaign_id=campaign_id, after_id=after_id, limit=limit, entity=entity
            )

    async def in_flight(self, campaign_id: str) -> list[Attempt]:
        """Attempts handed to a channel and not final. A `created` attempt is not in
        flight: after the fence it is one that will never be handed over (it is deleted)."""
        async with self.db.reader() as s:
            return await campaign_store.in_flight(s, campaign_id)

    # -- helpers ---------------------------------------------------------------------------
    async def _transition(
        self,
        campaign_id: str,
        action: CampaignAction,
        *,
        actor: str,
        reason: str | None = None,
        at: float | None = None,
    ) -> control.Change:
        now = self.clock.now()
        async with self.db.session() as s:
            if action in (CampaignAction.START, CampaignAction.RESUME):
                # Archived: hidden from the lists, so it runs only once unarchived.
                c = await control.load(s, campaign_id, lock=True)
                if c.archived:
                    raise InvalidState(
                        f"cannot {action} an archived campaign: unarchive it first", c.state
                    )
            change = await control.transition(
                s, campaign_id, action, now, actor=actor, reason=reason, at=at
            )
            if change.changed and change.from_state is CampaignState.SCHEDULED:
                change.campaign.start_at = None  # paused: the scheduled start is dropped
        repeat_pause = (
            action is CampaignAction.PAUSE
            and not change.changed
            and change.campaign.state == CampaignState.PAUSED
        )
        if change.changed or repeat_pause:
            # A repeated pause publishes again: when it answers, every engine has seen the
            # pause, even if the first one's fan-out failed (BusUnavailable, a 503).
            await self.engine.announce(change.campaign)
        if change.changed:
            c = change.campaign
            log.info(
                "campaign.state",
                extra={
                    "campaign": c.id,
                    "from": str(change.from_state),
                    "to": c.state,
                    "version": c.version,
                    "actor": actor,
                },
            )
        return change

    async def _step(
        self, c: Campaign, type_: str, actor: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        now = self.clock.now()
        async with self.db.session() as s:
            events.campaign_event(s, c, type_, at=now, actor=actor, data=data)
        return {"step": type_, "at": now, **data}
