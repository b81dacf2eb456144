"""Moving a lead along its sequence after an attempt ends (pure decisions in
domain/timeline.py; this module writes them)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.domain.states import LeadStatus, StopReason
from dialer.domain.timeline import CampaignClock, Outcome, Verdict, judge
from dialer.store import events
from dialer.store.models import Attempt, Lead


@dataclass(frozen=True, slots=True)
class Policy:
    abandon_redial_seconds: float


def set_status(
    session: AsyncSession,
    lead: Lead,
    to: LeadStatus,
    now: float,
    *,
    actor: str = events.SYSTEM,
    reason: str | None = None,
) -> None:
    if lead.status == to:
        return
    events.record(
        session,
        at=now,
        entity="lead",
        entity_id=str(lead.id),
        type="lead.state",
        campaign_id=lead.campaign_id,
        actor=actor,
        from_state=lead.status,
        to_state=to,
        reason=reason,
    )
    lead.status = to
    lead.updated_at = now


def advance(
    session: AsyncSession,
    lead: Lead,
    sequence: list[dict[str, object]],
    clock_now: float,
    now: float,
) -> None:
    """Go on to the next step, or complete the lead after the last one."""
    lead.step += 1
    lead.tries = 0
    lead.seq = 0
    if lead.step >= len(sequence):
        if lead.status in (LeadStatus.IN_PROGRESS, LeadStatus.PENDING, LeadStatus.PAUSED):
            set_status(session, lead, LeadStatus.COMPLETED, now, reason="sequence done")
        return
    delay = float(sequence[lead.step].get("delay_seconds", 0) or 0)  # type: ignore[arg-type]
    lead.due = clock_now + delay


def after_attempt(
    session: AsyncSession,
    lead: Lead,
    attempt: Attempt,
    sequence: list[dict[str, object]],
    clock: CampaignClock,
    now: float,
    policy: Policy,
    *,
    retryable: bool = True,
) -> Verdict:
    """Write what a final attempt means for its lead; returns the verdict."""
    step = sequence[attempt.step] if attempt.step < len(sequence) else {}
    max_attempts = int(step.get("max_attempts", 3) or 3)  # type: ignore[call-overload]
    retry_delay = float(step.get("retry_delay_seconds", 3600) or 0)  # type: ignore[arg-type]
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
    elif verdict in (Verdict.ADVANCE, Verdict.EXHAUSTED):
        advance(session, lead, sequence, clock_now, now)
    elif verdict is Verdict.STOP:
        lead.stop_reason = StopReason.BOUNCED
        set_status(session, lead, LeadStatus.STOPPED, now, reason=StopReason.BOUNCED)
    if lead.status == LeadStatus.PAUSED:
        lead.paused_remaining = max(0.0, lead.due - clock_now)
    lead.updated_at = now
    return verdict
