"""The lead lifecycle: every change of a lead's status goes through `transition`, which
consults the domain table (domain/states.py, `LEAD_MOVES`) and writes an Event.

The use cases (people: pause, resume, stop, skip, qualify) and the engine (dispatch, the
end of an attempt, a pause that ran out) both move leads through this module. A move the
table refuses raises `InvalidTransition`; the engine's moves log it instead, never silently.
The pure decisions (retry, next step, stop) are in domain/timeline.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dialer.domain.campaign import Step
from dialer.domain.states import (
    LEAD_OPEN,
    InvalidTransition,
    LeadAction,
    LeadStatus,
    StopReason,
    lead_transition,
)
from dialer.domain.timeline import CampaignClock, Outcome, Verdict, judge
from dialer.engine.control import campaign_clock
from dialer.store import events
from dialer.store.db import DbSession
from dialer.store.models import Attempt, Campaign, Lead

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    abandon_redial_seconds: float


def transition(
    session: DbSession,
    lead: Lead,
    action: LeadAction,
    now: float,
    *,
    actor: str = events.SYSTEM,
    reason: str | None = None,
) -> bool:
    """Apply `action` to the lead by the domain table and record it; False when it repeats
    or keeps the current status (nothing to record). Raises InvalidTransition when the table
    does not allow it."""
    current = LeadStatus(lead.status)
    to = lead_transition(current, action)
    if to is None or to is current:  # a repeat, or the next step of a lead in progress
        return False
    events.record(
        session,
        at=now,
        entity="lead",
        entity_id=str(lead.id),
        type="lead.state",
        campaign_id=lead.campaign_id,
        actor=actor,
        from_state=current,
        to_state=to,
        reason=reason,
    )
    lead.status = to
    lead.updated_at = now
    return True


def engine_transition(
    session: DbSession, lead: Lead, action: LeadAction, now: float, *, reason: str | None
) -> bool:
    """The engine's moves: one the table refuses is logged and skipped (the rest of the
    engine's unit of work, an attempt's final status say, must still be written)."""
    try:
        return transition(session, lead, action, now, reason=reason)
    except InvalidTransition as exc:
        log.warning(
            "lead.transition_refused",
            extra={"lead": lead.id, "campaign": lead.campaign_id, "error": str(exc)},
        )
        return False


def dispatched(session: DbSession, lead: Lead, attempt_id: int, now: float) -> None:
    """The claim wrote the lead's attempt row: the lead is in progress."""
    lead.active_attempt_id = attempt_id
    engine_transition(session, lead, LeadAction.DISPATCH, now, reason="dispatch")


def undispatched(
    session: DbSession, lead: Lead, attempt_id: int, prior: LeadStatus, now: float
) -> None:
    """The fence refused the hand-off: the attempt never happened, the lead is as before
    its claim (unless something else moved it meanwhile)."""
    if lead.active_attempt_id != attempt_id:
        return
    lead.active_attempt_id = None
    lead.lease_owner = lead.lease_until = None
    lead.seq -= 1
    if prior is LeadStatus.PENDING:
        engine_transition(session, lead, LeadAction.UNDISPATCH, now, reason="fenced")


def stop(
    session: DbSession,
    lead: Lead,
    why: StopReason,
    now: float,
    *,
    actor: str = events.SYSTEM,
    reason: str | None = None,
) -> None:
    """Stop the lead for good, keeping why (an engine stop that the table refuses is
    logged)."""
    if actor == events.SYSTEM:
        moved = engine_transition(session, lead, LeadAction.STOP, now, reason=reason or why)
    else:
        moved = transition(session, lead, LeadAction.STOP, now, actor=actor, reason=reason or why)
    if moved:
        lead.stop_reason = why


def advance(
    session: DbSession, lead: Lead, sequence: Sequence[Step], clock_now: float, now: float
) -> None:
    """Go on to the next step, or complete the lead after the last one."""
    lead.step += 1
    lead.tries = 0
    lead.seq = 0
    if lead.step >= len(sequence):
        if lead.status in LEAD_OPEN:
            engine_transition(session, lead, LeadAction.COMPLETE, now, reason="sequence done")
        return
    lead.due = clock_now + sequence[lead.step].delay_seconds


def after_attempt(
    session: DbSession,
    lead: Lead,
    attempt: Attempt,
    sequence: Sequence[Step],
    clock: CampaignClock,
    now: float,
    policy: Policy,
    *,
    retryable: bool = True,
) -> Verdict:
    """Write what a final attempt means for its lead; returns the verdict."""
    step = sequence[attempt.step] if attempt.step < len(sequence) else None
    max_attempts = step.max_attempts if step else 3
    retry_delay = step.retry_delay_seconds if step else 3600.0
    outcome = Outcome(
        status=attempt.status,  # type: ignore[arg-type]
        answered_by=attempt.answered_by,
        abandoned=attempt.abandoned,
        retryable=retryable,
    )
    if lead.active_attempt_id == attempt.id:
        lead.active_attempt_id = None
        lead.lease_owner = None
        lead.lease_until = None
    if attempt.step != lead.step:
        return Verdict.ADVANCE  # a stale report about a step already left behind
    tries = lead.tries if outcome.status == "canceled" else lead.tries + 1
    verdict = judge(outcome, tries, max_attempts)
    clock_now = clock.now(now)
    lead.tries = tries
    if verdict is Verdict.RETRY:
        lead.due = clock_now + retry_delay
        if attempt.abandoned:
            # Regulation: an abandoned party is not redialled for 72 h (configurable).
            lead.not_before = now + policy.abandon_redial_seconds
    elif verdict is Verdict.EXHAUSTED and getattr(step, "on_exhausted", "next") == "stop":
        # An email step's tries ran out on soft failures: the address never got this step,
        # so no follow-up goes to it (docs/architecture.md §9.1).
        stop(session, lead, StopReason.FAILED, now)
    elif verdict in (Verdict.ADVANCE, Verdict.EXHAUSTED):
        advance(session, lead, sequence, clock_now, now)
    elif verdict is Verdict.STOP:
        stop(session, lead, StopReason.BOUNCED, now)
    if lead.status == LeadStatus.PAUSED:
        lead.paused_remaining = max(0.0, lead.due - clock_now)
    lead.updated_at = now
    return verdict


def resume_lead(
    session: DbSession,
    lead: Lead,
    clock: CampaignClock,
    now: float,
    *,
    actor: str,
    reason: str | None = None,
) -> None:
    """A paused lead goes on at the same step with the delay it had left."""
    if not transition(session, lead, LeadAction.RESUME, now, actor=actor, reason=reason):
        return
    lead.due = clock.now(now) + max(0.0, lead.paused_remaining or 0.0)
    lead.paused_remaining = None
    lead.paused_until = None
    lead.pause_reason = None


def apply_lead_action(
    session: DbSession,
    lead: Lead,
    c: Campaign,
    action: LeadAction,
    now: float,
    *,
    actor: str,
    reason: str | None = None,
    until: float | None = None,
    stop_reason: StopReason = StopReason.MANUAL,
) -> None:
    """A person's action on a lead (pause, resume, stop, skip). Raises InvalidTransition
    when the lead's status does not allow it."""
    clock = campaign_clock(c)
    if action is LeadAction.RESUME:
        resume_lead(session, lead, clock, now, actor=actor, reason=reason)
    elif action is LeadAction.PAUSE:
        if transition(session, lead, action, now, actor=actor, reason=reason):
            # The remaining delay is kept in the campaign's clock: resume gives it back whole.
            lead.paused_remaining = max(0.0, lead.due - clock.now(now))
            lead.paused_until = until
            lead.pause_reason = reason
    elif action is LeadAction.STOP:
        stop(session, lead, stop_reason, now, actor=actor, reason=reason)
    else:
        transition(session, lead, action, now, actor=actor, reason=reason)
