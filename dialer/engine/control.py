"""Campaign state changes, shared by the service (people) and the engine (schedules,
completion, drain). Each accepted change bumps the version and writes an Event, in the same
transaction as the change itself."""

from __future__ import annotations

from dataclasses import dataclass

from dialer.domain.campaign import CampaignSpec, ResumePolicy
from dialer.domain.states import (
    CampaignAction,
    CampaignState,
    InvalidTransition,
    campaign_transition,
)
from dialer.domain.timeline import CampaignClock, clock_on_halt, clock_on_run
from dialer.errors import InvalidState, NotFound
from dialer.store import campaigns as campaign_store
from dialer.store import events
from dialer.store.db import DbSession
from dialer.store.models import Campaign


def campaign_clock(c: Campaign) -> CampaignClock:
    return CampaignClock(
        policy=ResumePolicy(c.config.get("resume_policy", ResumePolicy.FREEZE)),
        running=c.state == CampaignState.RUNNING,
        active_seconds=c.active_seconds,
        clock_offset=c.clock_offset,
        running_since=c.running_since,
    )


class SpecCache:
    """Campaign configs parsed once per (campaign, version): a config changes only with a
    new version."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, int], CampaignSpec] = {}

    def of(self, c: Campaign) -> CampaignSpec:
        key = (c.id, c.version)
        spec = self._specs.get(key)
        if spec is None:
            spec = CampaignSpec.model_validate(c.config)
            self._specs = {k: v for k, v in self._specs.items() if k[0] != c.id}
            self._specs[key] = spec
        return spec


async def load(session: DbSession, campaign_id: str, *, lock: bool = False) -> Campaign:
    campaign = await campaign_store.get(session, campaign_id, lock=lock)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id!r}", {"id": campaign_id})
    return campaign


@dataclass(frozen=True, slots=True)
class Change:
    campaign: Campaign
    from_state: CampaignState
    changed: bool


def _run(c: Campaign, now: float) -> None:
    change = clock_on_run(campaign_clock(c), now)
    c.active_seconds, c.clock_offset, c.running_since = (
        change.active_seconds,
        change.clock_offset,
        change.running_since,
    )


def _halt(c: Campaign, now: float) -> None:
    change = clock_on_halt(campaign_clock(c), now)
    c.active_seconds, c.clock_offset, c.running_since = (
        change.active_seconds,
        change.clock_offset,
        change.running_since,
    )


async def transition(
    session: DbSession,
    campaign_id: str,
    action: CampaignAction,
    now: float,
    *,
    actor: str,
    reason: str | None = None,
    at: float | None = None,
) -> Change:
    """Apply one campaign action. `at` (start/resume) schedules it instead."""
    c = await load(session, campaign_id, lock=True)
    current = CampaignState(c.state)
    if at is not None and at > now and action in (CampaignAction.START, CampaignAction.RESUME):
        return _schedule(session, c, action, now, at, actor=actor, reason=reason)
    try:
        target = campaign_transition(current, action, dispatched=c.dispatched)
    except InvalidTransition as exc:
        raise InvalidState(str(exc), current) from None
    if target is None:
        return Change(c, current, False)
    if target is CampaignState.RUNNING:
        _run(c, now)
        if c.started_at is None:
            c.started_at = now
        if current is CampaignState.PAUSED:
            c.last_resumed_at = now
        c.start_at = None
    elif current is CampaignState.RUNNING:
        _halt(c, now)
    if target is CampaignState.PAUSED:
        c.paused_at = now
        c.last_paused_at = now
        c.last_resumed_at = None
    if target in (CampaignState.CANCELLED, CampaignState.STOPPED, CampaignState.COMPLETED):
        c.ended_at = now
        c.start_at = None
    if target is CampaignState.STOPPING:
        c.start_at = None
    c.state = target
    c.version += 1
    c.updated_at = now
    events.campaign_event(
        session,
        c,
        "campaign.state",
        at=now,
        actor=actor,
        from_state=current,
        reason=reason,
        data={"action": str(action)},
    )
    return Change(c, current, True)


def _schedule(
    session: DbSession,
    c: Campaign,
    action: CampaignAction,
    now: float,
    at: float,
    *,
    actor: str,
    reason: str | None,
) -> Change:
    current = CampaignState(c.state)
    if action is CampaignAction.START:
        try:
            target = campaign_transition(current, CampaignAction.SCHEDULE) or current
        except InvalidTransition as exc:
            raise InvalidState(str(exc), current) from None
    else:
        if current is not CampaignState.PAUSED:
            raise InvalidState(f"cannot schedule a resume of a campaign that is {current}", current)
        target = current
    c.state = target
    c.start_at = at
    c.version += 1
    c.updated_at = now
    events.campaign_event(
        session,
        c,
        "campaign.scheduled",
        at=now,
        actor=actor,
        from_state=current,
        reason=reason,
        data={"action": str(action), "at": at},
    )
    return Change(c, current, True)
