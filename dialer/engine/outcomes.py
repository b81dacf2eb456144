"""What happens after the hand-off: carrier callbacks, email results, abandons.

Callbacks arrive late, unordered and twice. They are applied in batches (group commit,
engine/batch.py), one transaction per batch that locks its attempts: status only moves
forward, a duplicate changes nothing, and counters move only when a flag (rang, answered,
abandoned) flips, so Prometheus agrees with the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dialer.agents import pool
from dialer.channels.base import CallEvent, ChannelError
from dialer.domain.campaign import AnsweredBy, CampaignSpec, Channel
from dialer.domain.pacing import PacingMode
from dialer.domain.states import ATTEMPT_ANSWERED, ATTEMPT_FINAL, AttemptStatus
from dialer.engine import attempts
from dialer.engine.batch import GroupCommit
from dialer.engine.control import campaign_clock
from dialer.engine.deps import Deps
from dialer.engine.leads import Policy, after_attempt
from dialer.store import attempts as attempt_store
from dialer.store import campaigns as campaign_store
from dialer.store import leads as lead_store
from dialer.store.db import DbSession
from dialer.store.models import Attempt, Campaign, Lead

log = logging.getLogger(__name__)

_NOT_KNOWN = (None, AnsweredBy.UNKNOWN)
_ALREADY = "\x00already"  # a call that had its agent before (no agent id looks like this)
_DELIVERED = "\x00delivered"  # agentless: the call gets the campaign's message, no agent


def agentless_message(spec: CampaignSpec) -> str:
    """What a person who answers an agentless campaign's call hears: the campaign's
    `custom.message`, or a line naming the campaign (docs/api.md §4.1)."""
    message = spec.custom.get("message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    return f"This is a message from {spec.name}. Goodbye."


@dataclass(slots=True)
class _Flips:
    rang: bool = False
    answered: bool = False
    final: bool = False
    duration: float | None = None
    answered_by: str = AnsweredBy.UNKNOWN
    live_answer: bool = False  # first news that a person or machine picked up
    late_machine: bool = False  # a live call found to be a machine after it was answered


@dataclass(frozen=True, slots=True)
class Final:
    """A final status known to us without a carrier report (email sent, dial refused)."""

    attempt_id: int
    status: AttemptStatus
    carrier_id: str | None = None
    error: str | None = None
    retryable: bool = True


def _late_verdict(a: Attempt, ev: CallEvent, flips: _Flips) -> None:
    """Who answered, known after the answer (async AMD): a live call found to be a machine
    gets the abandon message, unless it is an agentless delivery (its message is playing;
    it stops counting as delivered to a person)."""
    if a.answered_at is None or a.answered_by not in _NOT_KNOWN:
        return
    if ev.answered_by in _NOT_KNOWN:
        return
    a.answered_by = ev.answered_by
    machine = ev.answered_by == AnsweredBy.MACHINE
    flips.late_machine = (
        machine and a.status == AttemptStatus.IN_PROGRESS and not a.abandoned and not a.delivered
    )
    if machine:
        a.delivered = False


class Rows:
    """What one transaction of outcomes works on: attempts, then their leads, each locked in
    id order (two batches never wait on each other in a circle), campaigns read once, and
    the voice calls that ended (their agents are moved on in one statement)."""

    def __init__(self, s: DbSession) -> None:
        self.s = s
        self.attempts: dict[int, Attempt] = {}
        self.leads: dict[int, Lead] = {}
        self.campaigns: dict[str, Campaign | None] = {}
        self.calls_ended: dict[int, float] = {}  # attempt id -> its campaign's wrap-up

    @classmethod
    async def load(cls, s: DbSession, attempt_ids: Iterable[int], *, leads: bool) -> Rows:
        """Lock the attempts, and with `leads` their leads too (whoever closes an attempt
        writes its lead)."""
        rows = cls(s)
        rows.attempts = await attempt_store.lock_many(s, attempt_ids)
        if leads:
            rows.leads = await lead_store.lock_many(s, {a.lead_id for a in rows.attempts.values()})
        return rows

    async def campaign(self, campaign_id: str) -> Campaign | None:
        if campaign_id not in self.campaigns:
            self.campaigns[campaign_id] = await campaign_store.get(self.s, campaign_id)
        return self.campaigns[campaign_id]

    async def lead(self, lead_id: int) -> Lead | None:
        if lead_id not in self.leads:
            found = await lead_store.get(self.s, lead_id, lock=True)
            if found is None:
                return None
            self.leads[lead_id] = found
        return self.leads[lead_id]

    async def flush(self, now: float) -> None:
        await pool.calls_ended(self.s, self.calls_ended, now)
        self.calls_ended = {}


class Outcomes:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        # Carrier reports arrive in bursts (a whole round's calls ring at once): one
        # transaction per burst, not per report (docs/architecture.md §6.5).
        self._events: GroupCommit[CallEvent, tuple[_Flips, str | None]] = GroupCommit(
            self._apply_events, name="call-events"
        )
        self._connects: GroupCommit[tuple[int, str], str | None] = GroupCommit(
            self._connect_many, name="connects"
        )
        self._messages: dict[str, str] = {}  # agentless campaign id -> its message

    async def on_call_event(self, ev: CallEvent) -> None:
        """The voice channel's sink. Returns once the report is written; raises when it
        could not be (its sender retries)."""
        try:
            attempt_id = int(ev.attempt_id)
        except ValueError:
            log.warning("call event for an unknown attempt id", extra={"carrier_id": ev.carrier_id})
            return
        flips, campaign_id = await self._events.put(ev)
        if campaign_id is None:
            return
        self._count(campaign_id, flips)
        if flips.live_answer:
            await self._answered(attempt_id, campaign_id, ev.carrier_id, flips.answered_by)
        elif flips.late_machine:  # async AMD: the message plays at the beep, then hang up
            await self._hangup(ev.carrier_id, self.d.tuning.abandon_message)

    async def _apply_events(self, events: Sequence[CallEvent]) -> list[tuple[_Flips, str | None]]:
        now = self.d.clock.now()
        ids = [int(ev.attempt_id) for ev in events]
        final = any(AttemptStatus(ev.status) in ATTEMPT_FINAL for ev in events)
        async with self.d.db.session() as s:
            rows = await Rows.load(s, ids, leads=final)
            out = [await self._apply(rows, i, ev, now) for i, ev in zip(ids, events, strict=True)]
            await rows.flush(now)
        return out

    async def _apply(
        self, rows: Rows, attempt_id: int, ev: CallEvent, now: float
    ) -> tuple[_Flips, str | None]:
        flips = _Flips()
        a = rows.attempts.get(attempt_id)
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
            _late_verdict(a, ev, flips)
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
            await self._close(rows, a, now, retryable=True)
        return flips, a.campaign_id

    def _count(self, campaign_id: str, f: _Flips) -> None:
        m = self.d.metrics
        if f.rang:
            m.calls_received.labels(campaign_id).inc()
        if f.answered:
            m.calls_answered.labels(campaign_id, f.answered_by).inc()
        if f.final and f.duration is not None:
            m.call_duration.labels(campaign_id).observe(f.duration)

    async def _close(self, rows: Rows, a: Attempt, now: float, *, retryable: bool) -> None:
        """The attempt is final: move its lead on, and end its agent's call."""
        c = await rows.campaign(a.campaign_id)
        lead = await rows.lead(a.lead_id)
        if c is None or lead is None:
            return
        spec = self.d.specs.of(c)
        after_attempt(
            rows.s,
            lead,
            a,
            spec.sequence,
            campaign_clock(c),
            now,
            Policy(self.d.tuning.abandon_redial_seconds),
            retryable=retryable,
        )
        if a.channel == Channel.VOICE:
            rows.calls_ended[a.id] = spec.wrap_up_seconds

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
        async with self.d.db.session() as s:
            await self.finish_in(s, [Final(attempt_id, status, carrier_id, error, retryable)])

    async def finish_in(self, s: DbSession, finals: Sequence[Final]) -> None:
        """Write final statuses in the caller's transaction."""
        if not finals:
            return
        rows = await Rows.load(s, [f.attempt_id for f in finals], leads=True)
        await self.finish_rows(rows, finals, self.d.clock.now())

    async def finish_rows(self, rows: Rows, finals: Sequence[Final], now: float) -> None:
        """Write final statuses of attempts `rows` holds (a batch of hand-offs)."""
        for f in finals:
            a = rows.attempts.get(f.attempt_id)
            if a is None or not attempts.set_status(a, f.status, now, now):
                continue
            a.carrier_id = a.carrier_id or f.carrier_id
            a.error = f.error
            a.ended_at = now
            await self._close(rows, a, now, retryable=f.retryable)
        await rows.flush(now)

    async def _answered(
        self, attempt_id: int, campaign_id: str, carrier_id: str, answered_by: str
    ) -> None:
        if answered_by == AnsweredBy.MACHINE:
            await self._hangup(carrier_id, self.d.tuning.abandon_message)
            return
        await self.connect(attempt_id, campaign_id, carrier_id)

    async def connect(self, attempt_id: int, campaign_id: str, carrier_id: str) -> bool:
        """Bridge an answered call to a free agent of its campaign, if there is one;
        True when the call has an agent (now or before)."""
        taken = await self._connects.put((attempt_id, campaign_id))
        if taken is _DELIVERED:  # agentless: the message plays, then the call ends
            message = self._messages.get(campaign_id, "")
            await self._hangup(carrier_id, message)
            return True
        if taken is None or taken is _ALREADY:
            return taken is _ALREADY
        try:
            await self.d.voice.bridge(carrier_id, taken)
        except ChannelError as exc:
            log.warning("bridge failed", extra={"attempt": attempt_id, "error": str(exc)})
        return True

    async def _connect_many(self, calls: Sequence[tuple[int, str]]) -> list[str | None]:
        """Put free agents on answered calls, in one transaction; per call the agent taken,
        `_ALREADY` when it had one, None when it has none. A campaign found with nobody free
        is not asked again within the batch. An agentless campaign's call is marked
        `delivered` instead (`_DELIVERED`): it plays the campaign's message and is never
        abandoned (docs/architecture.md §7.3)."""
        now = self.d.clock.now()
        out: list[str | None] = []
        full: set[str] = set()
        agentless: dict[str, bool] = {}
        async with self.d.db.session() as s:
            rows = await attempt_store.lock_many(s, [attempt_id for attempt_id, _ in calls])
            for attempt_id, campaign_id in calls:
                a = rows.get(attempt_id)
                if a is not None and a.agent_id is not None:
                    out.append(_ALREADY)
                    continue
                if a is not None and a.delivered:  # asked again: its message plays again
                    if campaign_id not in agentless:
                        agentless[campaign_id] = await self._agentless(s, campaign_id)
                    out.append(_DELIVERED)
                    continue
                if a is None or a.abandoned or a.status != AttemptStatus.IN_PROGRESS:
                    out.append(None)
                    continue
                if campaign_id not in agentless:
                    agentless[campaign_id] = await self._agentless(s, campaign_id)
                if agentless[campaign_id]:
                    # A person: the message plays. Not known yet (async AMD): wait for
                    # the verdict, at most the grace (`check_abandons` delivers then).
                    if a.answered_by in _NOT_KNOWN:
                        out.append(None)
                        continue
                    a.delivered = True
                    out.append(_DELIVERED)
                    continue
                agent_id = (
                    None
                    if campaign_id in full
                    else await pool.take(s, campaign_id, attempt_id, now)
                )
                if agent_id is None:
                    full.add(campaign_id)
                else:
                    a.agent_id = agent_id
                out.append(agent_id)
        return out

    async def _agentless(self, s: DbSession, campaign_id: str) -> bool:
        """Whether the campaign dials agentless (its message is kept for `connect`)."""
        c = await campaign_store.get(s, campaign_id)
        if c is None:
            return False
        spec = self.d.specs.of(c)
        if spec.pacing.mode is not PacingMode.AGENTLESS:
            return False
        self._messages[campaign_id] = agentless_message(spec)
        return True

    async def check_abandons(self, now: float) -> int:
        """A person answered, no agent within the grace: abandoned (docs/architecture.md §7.3)."""
        grace = self.d.tuning.answer_grace_seconds
        async with self.d.db.session() as s:
            waiting = await attempt_store.waiting_for_agent(s)
            pending = [(a.id, a.campaign_id, a.carrier_id or "", a.answered_at) for a in waiting]
        if not pending:
            return 0
        connected = await asyncio.gather(
            *(
                self.connect(attempt_id, cid, carrier_id)
                for attempt_id, cid, carrier_id, _ in pending
            )
        )
        over = [
            (attempt_id, campaign_id, carrier_id)
            for (attempt_id, campaign_id, carrier_id, answered_at), ok in zip(
                pending, connected, strict=True
            )
            if not ok and answered_at is not None and now - answered_at >= grace
        ]
        if not over:
            return 0
        abandoned: list[tuple[str, str]] = []
        delivered: list[tuple[str, str]] = []
        async with self.d.db.session() as s:
            rows = await attempt_store.lock_many(s, [attempt_id for attempt_id, _, _ in over])
            agentless: dict[str, bool] = {}
            for attempt_id, campaign_id, carrier_id in over:
                a = rows.get(attempt_id)
                if a is None or a.agent_id is not None or a.abandoned or a.delivered:
                    continue
                if a.status != AttemptStatus.IN_PROGRESS:
                    continue
                if campaign_id not in agentless:
                    agentless[campaign_id] = await self._agentless(s, campaign_id)
                if agentless[campaign_id]:  # no verdict within the grace: taken for a person
                    a.delivered = True
                    delivered.append((campaign_id, carrier_id))
                    continue
                a.abandoned = True
                abandoned.append((campaign_id, carrier_id))
        await asyncio.gather(
            *(
                self._hangup(carrier_id, self._messages.get(campaign_id, ""))
                for campaign_id, carrier_id in delivered
            )
        )
        for campaign_id, _ in abandoned:
            self.d.metrics.calls_abandoned.labels(campaign_id).inc()
        await asyncio.gather(
            *(
                self._hangup(carrier_id, self.d.tuning.abandon_message)
                for _, carrier_id in abandoned
            )
        )
        return len(abandoned)

    async def _hangup(self, carrier_id: str, message: str) -> None:
        try:
            await self.d.voice.hangup(carrier_id, message=message)
        except ChannelError as exc:
            log.warning("hangup failed", extra={"error": str(exc)})
