"""What happens after the hand-off: carrier callbacks, email results, abandons.

Callbacks arrive late, unordered and twice. Each is applied in one transaction that locks
the attempt: status only moves forward, a duplicate changes nothing, and counters move only
when a flag (rang, answered, abandoned) flips, so Prometheus agrees with the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dialer.agents import pool
from dialer.channels.base import CallEvent, ChannelError
from dialer.domain.campaign import AnsweredBy, Channel
from dialer.domain.states import ATTEMPT_ANSWERED, ATTEMPT_FINAL, AttemptStatus
from dialer.engine import attempts
from dialer.engine.control import campaign_clock
from dialer.engine.deps import Deps
from dialer.engine.leads import Policy, after_attempt
from dialer.store import attempts as attempt_store
from dialer.store import campaigns as campaign_store
from dialer.store import leads as lead_store
from dialer.store.db import DbSession
from dialer.store.models import Attempt

log = logging.getLogger(__name__)

_NOT_KNOWN = (None, AnsweredBy.UNKNOWN)


@dataclass(slots=True)
class _Flips:
    rang: bool = False
    answered: bool = False
    final: bool = False
    duration: float | None = None
    answered_by: str = AnsweredBy.UNKNOWN
    live_answer: bool = False  # first news that a person or machine picked up
    late_machine: bool = False  # a live call found to be a machine after it was answered


class Outcomes:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    async def on_call_event(self, ev: CallEvent) -> None:
        """The voice channel's sink."""
        try:
            attempt_id = int(ev.attempt_id)
        except ValueError:
            log.warning("call event for an unknown attempt id", extra={"carrier_id": ev.carrier_id})
            return
        flips, campaign_id = await self._apply(attempt_id, ev)
        if campaign_id is None:
            return
        self._count(campaign_id, flips)
        if flips.live_answer:
            await self._answered(attempt_id, campaign_id, ev.carrier_id, flips.answered_by)
        elif flips.late_machine:  # async AMD: the message plays at the beep, then hang up
            await self._hangup(ev.carrier_id, self.d.tuning.abandon_message)

    async def _apply(self, attempt_id: int, ev: CallEvent) -> tuple[_Flips, str | None]:
        flips = _Flips()
        now = self.d.clock.now()
        async with self.d.db.session() as s:
            a = await attempt_store.get(s, attempt_id, lock=True)
            if a is None:
                return flips, None
            if a.carrier_id is None and ev.carrier_id:
                a.carrier_id = ev.carrier_id
            new = AttemptStatus(ev.status)
            if not attempts.set_status(a, new, ev.at, now):
                # Duplicate or late: the status stays, but facts still count. A `ringing`
                # that arrives after `busy` still means the call rang, and async AMD (Twilio)
                # says who answered after the answer, on a call the engine may have bridged.
                if new is AttemptStatus.RINGING and not a.rang:
                    a.rang = flips.rang = True
                refines = a.answered_at is not None and a.answered_by in _NOT_KNOWN
                if refines and ev.answered_by not in _NOT_KNOWN:
                    a.answered_by = ev.answered_by
                    flips.late_machine = (
                        ev.answered_by == AnsweredBy.MACHINE
                        and a.status == AttemptStatus.IN_PROGRESS
                        and not a.abandoned
                    )
                return flips, a.campaign_id
            if ev.error:
                a.error = ev.error
            if (new is AttemptStatus.RINGING or new in ATTEMPT_ANSWERED) and not a.rang:
                a.rang = flips.rang = True
            if new in ATTEMPT_ANSWERED and a.answered_at is None:
                # Twilio's `completed` means the call was answered, even if the
                # `in-progress` report never came or comes later.
                talk = ev.duration_seconds or 0.0
                a.answered_at = ev.at - talk if new is AttemptStatus.COMPLETED else ev.at
                a.answered_by = ev.answered_by or a.answered_by or AnsweredBy.UNKNOWN
                flips.answered = True
                flips.live_answer = new is AttemptStatus.IN_PROGRESS
            elif ev.answered_by and a.answered_by in _NOT_KNOWN:
                a.answered_by = ev.answered_by
            flips.answered_by = a.answered_by or AnsweredBy.UNKNOWN
            if new in ATTEMPT_FINAL:
                log.info(
                    "attempt.ended",
                    extra={
                        "campaign": a.campaign_id,
                        "attempt": a.id,
                        "status": str(new),
                        "answered_by": a.answered_by,
                    },
                )
                a.ended_at = ev.at
                if a.answered_at is not None:
                    a.duration = ev.duration_seconds or 0.0
                    if a.agent_id is not None:  # talk time: only calls connected to an agent
                        flips.duration = a.duration
                flips.final = True
                await self._close(s, a, now, retryable=True)
            return flips, a.campaign_id

    def _count(self, campaign_id: str, f: _Flips) -> None:
        m = self.d.metrics
        if f.rang:
            m.calls_received.labels(campaign_id).inc()
        if f.answered:
            m.calls_answered.labels(campaign_id, f.answered_by).inc()
        if f.final and f.duration is not None:
            m.call_duration.labels(campaign_id).observe(f.duration)

    async def _close(self, s: DbSession, a: Attempt, now: float, *, retryable: bool) -> None:
        """The attempt is final: move its lead on, and end its agent's call."""
        c = await campaign_store.get(s, a.campaign_id)
        lead = await lead_store.get(s, a.lead_id, lock=True)
        if c is None or lead is None:
            return
        spec = self.d.specs.of(c)
        after_attempt(
            s,
            lead,
            a,
            spec.sequence,
            campaign_clock(c),
            now,
            Policy(self.d.tuning.abandon_redial_seconds),
            retryable=retryable,
        )
        if a.channel == Channel.VOICE:
            await pool.call_ended(s, a.id, spec.wrap_up_seconds, now)

    async def finish(
        self,
        attempt_id: int,
        status: AttemptStatus,
        *,
        carrier_id: str | None = None,
        error: str | None = None,
        retryable: bool = True,
    ) -> None:
        """A final status known to us without a carrier report (email sent, dial refused)."""
        now = self.d.clock.now()
        async with self.d.db.session() as s:
            a = await attempt_store.get(s, attempt_id, lock=True)
            if a is None or not attempts.set_status(a, status, now, now):
                return
            a.carrier_id = a.carrier_id or carrier_id
            a.error = error
            a.ended_at = now
            await self._close(s, a, now, retryable=retryable)

    async def _answered(
        self, attempt_id: int, campaign_id: str, carrier_id: str, answered_by: str
    ) -> None:
        if answered_by == AnsweredBy.MACHINE:
            await self._hangup(carrier_id, self.d.tuning.abandon_message)
            return
        await self.connect(attempt_id, campaign_id, carrier_id)

    async def connect(self, attempt_id: int, campaign_id: str, carrier_id: str) -> bool:
        """Bridge an answered call to a free agent of its campaign, if there is one."""
        now = self.d.clock.now()
        async with self.d.db.session() as s:
            a = await attempt_store.get(s, attempt_id, lock=True)
            if a is None or a.agent_id is not None or a.abandoned:
                return a is not None and a.agent_id is not None
            if a.status != AttemptStatus.IN_PROGRESS:
                return False
            agent_id = await pool.take(s, campaign_id, attempt_id, now)
            if agent_id is None:
                return False
            a.agent_id = agent_id
        try:
            await self.d.voice.bridge(carrier_id, agent_id)
        except ChannelError as exc:
            log.warning("bridge failed", extra={"attempt": attempt_id, "error": str(exc)})
        return True

    async def check_abandons(self, now: float) -> int:
        """A person answered, no agent within the grace: abandoned (docs/architecture.md §7.3)."""
        grace = self.d.tuning.answer_grace_seconds
        async with self.d.db.session() as s:
            waiting = await attempt_store.waiting_for_agent(s)
            pending = [(a.id, a.campaign_id, a.carrier_id or "", a.answered_at) for a in waiting]
        abandoned = 0
        for attempt_id, campaign_id, carrier_id, answered_at in pending:
            if await self.connect(attempt_id, campaign_id, carrier_id):
                continue
            if answered_at is None or now - answered_at < grace:
                continue
            async with self.d.db.session() as s:
                a = await attempt_store.get(s, attempt_id, lock=True)
                if a is None or a.agent_id is not None or a.abandoned:
                    continue
                if a.status != AttemptStatus.IN_PROGRESS:
                    continue
                a.abandoned = True
            abandoned += 1
            self.d.metrics.calls_abandoned.labels(campaign_id).inc()
            await self._hangup(carrier_id, self.d.tuning.abandon_message)
        return abandoned

    async def _hangup(self, carrier_id: str, message: str) -> None:
        try:
            await self.d.voice.hangup(carrier_id, message=message)
        except ChannelError as exc:
            log.warning("hangup failed", extra={"error": str(exc)})
