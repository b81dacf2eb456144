"""Claim due leads of one campaign and hand their attempts to a channel.

Order of writes (docs/architecture.md §6.2): the claim leases leads and writes their attempt rows
in one
transaction; then, inside the fence section, the channel is called; then the carrier id is
stored. A crash between the row and the carrier id leaves a `created` attempt whose lease
expires; the reconciler asks the carrier about it before anything is dialled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from string import Formatter
from typing import Any

from dialer.agents import pool
from dialer.channels.base import ChannelError, DialRequest, EmailMessage
from dialer.domain.campaign import CampaignSpec, Channel, EmailStep, ResumePolicy, VoiceStep
from dialer.domain.contacts import mask_phone
from dialer.domain.links import find_links, rewrite_links
from dialer.domain.pacing import dials_to_place, email_batch
from dialer.domain.states import (
    ATTEMPT_DIALING,
    AgentState,
    AttemptStatus,
    CampaignState,
    LeadStatus,
    StopReason,
)
from dialer.domain.timeline import missed_during_pause
from dialer.domain.windows import campaign_open, next_allowed
from dialer.engine import attempts, leads
from dialer.engine.batch import GroupCommit
from dialer.engine.control import campaign_clock
from dialer.engine.deps import Deps
from dialer.engine.health import Change
from dialer.engine.outcomes import Final, Outcomes, Rows
from dialer.engine.stats_window import StatsWindow
from dialer.store import agents as agent_store
from dialer.store import attempts as attempt_store
from dialer.store import campaigns as campaign_store
from dialer.store import events
from dialer.store import inbound as inbound_store
from dialer.store import leads as lead_store
from dialer.store.db import DbSession
from dialer.store.models import Attempt, Campaign, Lead

log = logging.getLogger(__name__)
RESULT_CHUNK = 128  # hand-off results written together (sent, refused, fenced)


@dataclass(frozen=True, slots=True)
class Prepared:
    attempt_id: int
    idem_key: str
    campaign_id: str
    version: int
    lead_id: int
    prior_status: LeadStatus  # the lead's status before its claim
    channel: Channel
    step: int
    lead: dict[str, Any]


class Kind(Enum):
    """What became of a hand-off, as `Dispatcher._record` writes it."""

    QUEUED = "queued"  # a call the carrier took: store its carrier id
    FINAL = "final"  # sent, or refused by the channel: a final status
    ABORT = "abort"  # never happened (fenced, channel unreachable): remove the attempt
    EXPIRE = "expire"  # may have been placed: its lease runs out now, the reconciler asks


@dataclass(frozen=True, slots=True)
class Handed:
    p: Prepared
    kind: Kind
    carrier_id: str | None = None
    final: Final | None = None
    error: str | None = None  # why an abort or expiry happened (None: fenced)


class _Slot:
    """One of a channel's hand-off slots, held from before the fence check until the
    channel has answered (`release`, idempotent), not while the result is written."""

    def __init__(self, limit: asyncio.Semaphore) -> None:
        self._limit = limit
        self._held = False

    async def __aenter__(self) -> _Slot:
        await self._limit.acquire()
        self._held = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limit.release()


@dataclass(slots=True)
class _Lease:
    """A round's leases: renewed for the leads not written yet when the round runs long."""

    renewed: float
    open: set[int]
    held: set[int] | None = None  # None: every lead of the round, as claimed
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _written(write: Awaitable[None] | None, keeper: asyncio.Task[None]) -> None:
    """A round's last write, then its lease keeper stops."""
    try:
        if write is not None:
            await write
    finally:
        await _stopped(keeper)


def idem_key(campaign_id: str, lead_id: int, step: int, seq: int) -> str:
    return f"{campaign_id}:{lead_id}:{step}:{seq}"


class _SafeDict(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, lead: dict[str, Any]) -> str:
    """Fill `{first_name}`-style fields; unknown or malformed fields render empty."""
    values = _SafeDict({k: v for k, v in lead.items() if k != "custom" and v is not None})
    values.update({k: v for k, v in (lead.get("custom") or {}).items()})
    try:
        names = [f for _, f, _, _ in Formatter().parse(template) if f]
        return template.format_map(_SafeDict({n: values[n] for n in names}))
    except (ValueError, IndexError, KeyError, AttributeError):
        return template


class Dispatcher:
    def __init__(self, deps: Deps, outcomes: Outcomes) -> None:
        self.d = deps
        self.outcomes = outcomes
        self.stats = StatsWindow()
        self.in_hand: set[int] = set()  # attempts being handed to a channel right now
        tuning = deps.tuning
        self._slots = {
            Channel.VOICE: asyncio.Semaphore(tuning.voice_concurrency),
            Channel.EMAIL: asyncio.Semaphore(tuning.email_concurrency),
        }
        self._results: GroupCommit[Handed, None] = GroupCommit(self._record, name="hand-offs")
        # Carrier ids have a group of their own: a pause waits for them (they are written
        # inside the fence section), never for a chunk of email results ahead of them.
        self._carrier_ids: GroupCommit[Handed, None] = GroupCommit(self._record, name="carrier-ids")
        self.backlog = False  # the last round left due work behind (a full claim)
        self._writing: asyncio.Future[None] | None = None  # the last round's results

    async def run_campaign(self, c: Campaign, spec: CampaignSpec, now: float) -> int:
        """One dispatch round for a running campaign; returns attempts handed to channels."""
        if not self.in_touch(now):
            log.warning("dispatch.fenced_off_bus", extra={"campaign": c.id})
            return 0
        schedule = spec.schedule.to_domain() if spec.schedule else None
        if not campaign_open(schedule, datetime.fromtimestamp(now, UTC)):
            return 0
        prepared: list[Prepared] = []
        voice_steps = spec.steps_of(Channel.VOICE)
        email_steps = spec.steps_of(Channel.EMAIL)
        health = self.d.health
        # A held channel (its carrier unreachable) claims nothing; when its backoff ran out,
        # one probe goes (docs/architecture.md §15.3). Leads wait at their step meanwhile.
        voice_cap = health.allowance(Channel.VOICE, now)
        email_cap = health.allowance(Channel.EMAIL, now)
        async with self.d.db.session() as s:
            if voice_steps and voice_cap != 0:
                n = await self._voice_capacity(s, c, spec)
                if voice_cap is not None:
                    n = min(n, voice_cap)
                if n > 0:
                    # The calls-per-second limit of the carrier account, shared on the bus.
                    n = await self.d.bus.take(f"cps:{self.d.voice.name}", self._cps(spec), n)
                if n > 0:
                    claimed = await self._claim(s, c, spec, voice_steps, n, now)
                    if claimed and voice_cap is not None:
                        health.probing(Channel.VOICE)
                    prepared += claimed
            if email_steps and email_cap != 0:
                n = email_batch(self.d.tuning.email_batch, 0)
                if email_cap is not None:
                    n = min(n, email_cap)
                claimed = await self._claim(s, c, spec, email_steps, n, now)
                if claimed and email_cap is not None:
                    health.probing(Channel.EMAIL)
                prepared += claimed
        return await self._hand_off(prepared, spec, now)

    async def _hand_off(self, prepared: list[Prepared], spec: CampaignSpec, claimed: float) -> int:
        """Hand the round's attempts off concurrently, at most `handoff_concurrency` per
        channel at once; their results are written in batches (`_record`). A round that
        outlasts a third of the lease renews the leases of what is not written yet; a lead
        whose lease ran out meanwhile may have been taken over by another worker's
        reconciler, which hands its attempt off itself: this worker then leaves it alone
        (docs/architecture.md §6.5, §15.2)."""
        if not prepared:
            return 0
        lease = _Lease(claimed, {p.lead_id for p in prepared})
        unwritten: list[Handed] = []

        async def write(handed: list[Handed]) -> None:
            try:
                await self._results.put_many(handed)
            finally:
                for h in handed:
                    self.in_hand.discard(h.p.attempt_id)
                    lease.open.discard(h.p.lead_id)

        async def one(p: Prepared) -> int:
            async with _Slot(self._slots[p.channel]) as slot:
                if not await self._still_held(p, lease):
                    lease.open.discard(p.lead_id)
                    return 0
                sent, handed = await self._hand_one(p, spec, slot.release)
            if handed is None:  # a call: written inside its fence section
                lease.open.discard(p.lead_id)
                return sent
            unwritten.append(handed)
            if len(unwritten) >= RESULT_CHUNK:
                chunk = unwritten[:]
                unwritten.clear()
                await write(chunk)
            return sent

        keeper = asyncio.create_task(self._keep_leases(lease), name="dispatch-leases")
        try:
            done = await asyncio.gather(*(one(p) for p in prepared), return_exceptions=True)
        except BaseException:
            await _stopped(keeper)
            raise
        # The round's last results are written while the next round claims, its leases
        # held until then; the round before must be written first: one round behind at
        # most, and its failure is this tick's (docs/architecture.md §6.5).
        last = asyncio.ensure_future(_written(write(unwritten) if unwritten else None, keeper))
        previous, self._writing = self._writing, last
        if previous is not None:
            await previous
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome  # every hand-off has ended; the tick reports the failure
        return sum(n for n in done if isinstance(n, int))

    async def settle(self) -> None:
        """Wait for the results of the last round to be written; raise if they could not
        be (their leads stay leased until the reconciler takes them over, §15.2)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def _keep_leases(self, lease: _Lease) -> None:
        """While the round runs, renew the leases of its leads not written yet, every third
        of a lease: a hand-off in progress, or a sent mail waiting for its result to be
        written, is never taken over by another worker's reconciler (which would send it
        again). A renewal that fails (the database away) is tried at the next period."""
        period = self.d.tuning.lease_seconds / 3
        while True:
            await self.d.clock.sleep(period)
            try:
                await self._renew(lease, self.d.clock.now(), force=True)
            except Exception as exc:
                log.warning("dispatch.lease_renewal_failed", extra={"error": repr(exc)})

    async def _renew(self, lease: _Lease, now: float, *, force: bool = False) -> None:
        lease_s = self.d.tuning.lease_seconds
        if not force and now - lease.renewed <= lease_s / 3:
            return
        async with lease.lock:
            if not force and now - lease.renewed <= lease_s / 3:
                return
            if not lease.open:
                return
            async with self.d.db.session() as s:
                held = await lead_store.hold_claims(
                    await s.connection(),
                    self.d.tuning.worker_id,
                    sorted(lease.open),
                    now,
                    now + lease_s,
                )
            # A lead lost once stays lost (another worker may have taken it over).
            lease.held = held if lease.held is None else lease.held & held
            lease.renewed = now

    async def _still_held(self, p: Prepared, lease: _Lease) -> bool:
        await self._renew(lease, self.d.clock.now())
        if lease.held is not None and p.lead_id not in lease.held:
            log.warning(
                "dispatch.lease_lost", extra={"campaign": p.campaign_id, "attempt": p.attempt_id}
            )
            return False
        return True

    def in_touch(self, now: float) -> bool:
        """Out of touch with the control bus for half a lease, a pause may have been missed:
        dispatch nothing (fail closed) — before the registry (a whole lease) stops waiting
        for this worker (docs/architecture.md §4, §12.2)."""
        return now - self.d.bus.last_contact() <= self.d.tuning.lease_seconds / 2

    def _cps(self, spec: CampaignSpec) -> float:
        cap = self.d.tuning.account_calls_per_second
        rate = spec.pacing.calls_per_second
        return rate if cap is None else min(rate, cap)

    async def _voice_capacity(self, s: DbSession, c: Campaign, spec: CampaignSpec) -> int:
        live = await attempt_store.count_voice(s, c.id, ATTEMPT_DIALING)
        available = await agent_store.count_available(s, c.id)
        snapshot = await self.stats.pacing_input(
            s,
            c.id,
            spec,
            available_agents=available,
            live_calls=live,
            max_lines_per_agent=self.d.tuning.predictive_max_lines_per_agent,
            now=self.d.clock.now(),
        )
        return dials_to_place(snapshot)

    async def _claim(
        self,
        s: DbSession,
        c: Campaign,
        spec: CampaignSpec,
        steps: list[int],
        limit: int,
        now: float,
        *,
        lead_id: int | None = None,  # preview mode: exactly this lead (`dial_preview`)
    ) -> list[Prepared]:
        clock = campaign_clock(c)
        req = lead_store.ClaimRequest(
            campaign_id=c.id,
            version=c.version,
            worker_id=self.d.tuning.worker_id,
            steps=steps,
            limit=limit,
            now=now,
            due_before=clock.now(now),
            lease_until=now + self.d.tuning.lease_seconds,
            # Do-not-call binds calls only: an email step of the same lead still goes.
            check_dnc=any(Channel(spec.sequence[i].channel) is Channel.VOICE for i in steps),
            lead_id=lead_id,
        )
        rows = await lead_store.claim_leads(s, req)
        if lead_id is None and len(rows) >= limit:
            self.backlog = True
        if not rows:
            return []
        schedule = spec.schedule.to_domain() if spec.schedule else None
        at = datetime.fromtimestamp(now, UTC)
        opens_in: dict[str | None, datetime | None] = {}  # by lead time zone, this round
        fresh: list[tuple[Lead, LeadStatus, Channel, int, str]] = []
        rows_out: list[dict[str, Any]] = []
        for lead, dnc in rows:
            if dnc:
                # On the do-not-call list (docs/architecture.md §7.2): never dialled, stopped for
                # good.
                lead.lease_owner = lead.lease_until = None
                leads.stop(s, lead, StopReason.DNC, now)
                continue
            if self._skip_missed(s, c, spec, lead, now):
                continue
            channel = Channel(spec.sequence[lead.step].channel)
            if channel == Channel.VOICE:
                if lead.timezone not in opens_in:
                    opens_in[lead.timezone] = next_allowed(schedule, lead.timezone, at, voice=True)
                opens = opens_in[lead.timezone]
                # A datetime keeps microseconds: `now` round-trips with up to 1 µs of error,
                # which must not hold back a lead whose hours are open.
                if opens is None or opens.timestamp() > now + 1e-3:
                    # Outside the lead's calling hours: come back when they open.
                    lead.not_before = opens.timestamp() if opens else now + 86400
                    lead.lease_owner = lead.lease_until = None
                    continue
            prior = LeadStatus(lead.status)
            # The lead's next try at its current step (the idempotency key names it).
            seq = lead.seq + 1
            key = idem_key(c.id, lead.id, lead.step, seq)
            rows_out.append(
                attempt_store.values(
                    campaign_id=c.id,
                    campaign_version=c.version,
                    lead_id=lead.id,
                    step=lead.step,
                    try_no=seq,
                    channel=channel,
                    idem_key=key,
                    status=AttemptStatus.CREATED,
                    now=now,
                    worker_id=self.d.tuning.worker_id,
                )
            )
            fresh.append((lead, prior, channel, seq, key))
        # One multi-row INSERT of plain rows (no ORM object each); gives the attempt ids.
        ids = await attempt_store.insert_many(s, rows_out)
        out: list[Prepared] = []
        for (lead, prior, channel, seq, key), attempt_id in zip(fresh, ids, strict=True):
            lead.seq = seq  # one UPDATE of the leads at commit, not two
            leads.dispatched(s, lead, attempt_id, now)
            out.append(
                Prepared(
                    attempt_id=attempt_id,
                    idem_key=key,
                    campaign_id=c.id,
                    version=c.version,
                    lead_id=lead.id,
                    prior_status=prior,
                    channel=channel,
                    step=lead.step,
                    lead=contact(lead),
                )
            )
        if out and not c.dispatched:
            c.dispatched = True
            await campaign_store.mark_dispatched(s, c.id)
        return out

    def _skip_missed(
        self, s: DbSession, c: Campaign, spec: CampaignSpec, lead: Lead, now: float
    ) -> bool:
        """Under `deadline`, record follow-ups that fell due during the pause as skipped."""
        if spec.resume_policy is not ResumePolicy.DEADLINE:
            return False
        sequence = spec.sequence
        skipped = False
        while lead.step < len(sequence) and missed_during_pause(
            lead.due, lead.step, c.last_paused_at, c.last_resumed_at
        ):
            skip = _next_attempt(
                c, lead, Channel(sequence[lead.step].channel), AttemptStatus.SKIPPED, now
            )
            skip.error = "due while the campaign was paused (deadline policy)"
            s.add(skip)
            due = lead.due
            leads.advance(s, lead, sequence, due, now)  # the next delay counts from the missed due
            skipped = True
        if skipped:
            lead.lease_owner = lead.lease_until = None
        return skipped and (lead.step >= len(sequence) or lead.due > now)

    async def dial_preview(
        self, campaign_id: str, lead_id: int, agent_id: str, *, actor: str
    ) -> int | None:
        """Preview mode (docs/architecture.md §3.4): the agent clicked to dial this lead.

        One transaction claims exactly that lead (the claim's campaign fence: a campaign not
        running at the version read claims nothing), writes its attempt row and reserves
        the agent for it (`attempt_id`), so the answer is bridged to that agent
        (`pool.take`). The attempt then goes through `dispatch`, under the pause fence. The
        attempt id, or None when nothing was dialled (the lead was not claimable, the agent
        not free, or the fence refused the hand-off: the agent is free again)."""
        now = self.d.clock.now()
        if not self.in_touch(now):
            return None
        async with self.d.db.session() as s:
            c = await campaign_store.get(s, campaign_id)
            if c is None or c.state != CampaignState.RUNNING:
                return None
            agent = await agent_store.get(s, agent_id, lock=True)
            if (
                agent is None
                or agent.campaign_id != c.id
                or agent.state != AgentState.AVAILABLE
                or agent.attempt_id is not None
            ):
                return None
            spec = self.d.specs.of(c)
            self.d.fence.see(c.id, c.state, c.version)  # views only move forward
            voice_steps = spec.steps_of(Channel.VOICE)
            # The same `now` as the offer (`preview_lead`): what was offered can be claimed.
            claimed = await self._claim(s, c, spec, voice_steps, 1, now, lead_id=lead_id)
            if not claimed or claimed[0].channel is not Channel.VOICE:
                return None
            p = claimed[0]
            agent.attempt_id = p.attempt_id
            pool.move(s, agent, AgentState.RESERVED, now, "preview dial", actor=actor)
        await self.dispatch(p, spec)
        async with self.d.db.session() as s:
            if await attempt_store.get(s, p.attempt_id) is None:  # fenced or never placed
                await pool.unreserve(s, agent_id, p.attempt_id, now)
                return None
        return p.attempt_id

    async def dispatch(self, p: Prepared, spec: CampaignSpec) -> int:
        """Hand one attempt to its channel, if the fence still allows it, and write what
        became of it; returns 1 when it went to the channel."""
        sent, handed = await self._hand_one(p, spec)
        if handed is not None:
            try:
                await self._results.put(handed)
            finally:
                self.in_hand.discard(p.attempt_id)
        return sent

    async def _hand_one(
        self, p: Prepared, spec: CampaignSpec, answered: Callable[[], None] | None = None
    ) -> tuple[int, Handed | None]:
        """The hand-off itself: (1 when it went to the channel, what is left to write).
        The fence section covers the channel call and, for a call, the write of its
        carrier id: when a pause returns, every call it let through is `queued` in the
        database, where the pause finds it to cancel (docs/architecture.md §4). A result
        left to write keeps its attempt `in_hand` until the caller has written it.
        `answered` is called as soon as the channel has answered (the round's slot is
        free for the next hand-off while the carrier id is written)."""
        self.in_hand.add(p.attempt_id)
        try:
            async with self.d.fence.section(p.campaign_id, p.version) as allowed:
                if allowed and self.in_touch(self.d.clock.now()):
                    handed = await (
                        self._dial(p, spec) if p.channel == Channel.VOICE else self._send(p, spec)
                    )
                    if answered is not None:
                        answered()
                    if handed.kind is Kind.QUEUED:
                        await self._carrier_ids.put(handed)
                        self.in_hand.discard(p.attempt_id)
                        self._dialed(p)
                        return 1, None
                else:
                    handed = Handed(p, Kind.ABORT)
        except BaseException:
            self.in_hand.discard(p.attempt_id)
            raise
        if handed.kind is Kind.ABORT and handed.error is None:
            self.d.health.unprobe(p.channel)
            self.d.metrics.dispatch.labels(p.channel, "fenced").inc()
            return 0, handed
        return 1, handed

    async def _dial(self, p: Prepared, spec: CampaignSpec) -> Handed:
        step = spec.sequence[p.step]
        if not spec.caller_ids or not isinstance(step, VoiceStep):
            # validate_spec (usecases/campaigns.py) refuses a voice campaign without them.
            raise RuntimeError(f"campaign {p.campaign_id}: a voice step and no caller id")
        caller_ids = spec.caller_ids
        req = DialRequest(
            attempt_id=str(p.attempt_id),
            idempotency_key=p.idem_key,
            campaign_id=p.campaign_id,
            to=str(p.lead["phone"]),
            caller_id=caller_ids[p.attempt_id % len(caller_ids)],
            ring_timeout_seconds=step.ring_timeout_seconds,
        )
        try:
            carrier_id = await self.d.voice.dial(req)
        except ChannelError as exc:
            if exc.unavailable:
                return await self._unavailable(p, exc)
            await self.reachable(Channel.VOICE)  # it answered, with a refusal
            self.d.metrics.dispatch.labels(Channel.VOICE, "error").inc()
            return self._failed(p, str(exc), retryable=exc.retryable)
        await self.reachable(Channel.VOICE)
        return Handed(p, Kind.QUEUED, carrier_id=carrier_id)

    def _dialed(self, p: Prepared) -> None:
        self.d.metrics.dispatch.labels(Channel.VOICE, "ok").inc()
        self.d.metrics.calls_dialed.labels(p.campaign_id).inc()
        log.info(
            "attempt.dispatched",
            extra={
                "campaign": p.campaign_id,
                "attempt": p.attempt_id,
                "channel": Channel.VOICE,
                "to": mask_phone(str(p.lead["phone"])),
            },
        )

    async def _send(self, p: Prepared, spec: CampaignSpec) -> Handed:
        step = spec.sequence[p.step]
        if not isinstance(step, EmailStep):
            raise RuntimeError(f"campaign {p.campaign_id}: step {p.step} is not an email step")
        # Email that listens (docs/architecture.md §9.1): the mail's own signed Message-ID
        # and VERP token, and every link of the body tracked through /c/<token>.
        sender = spec.sender
        base = self.d.tuning.public_base_url.rstrip("/")
        from_ = sender.email if sender else "dialer@localhost"
        body = step.body
        urls = find_links(body)
        if urls:
            try:
                ids = await inbound_store.link_ids(
                    self.d.db, p.campaign_id, p.step, urls, self.d.clock.now()
                )
            except Exception as exc:  # the database is out: the mail goes, untracked
                log.warning("email.links_untracked", extra={"error": type(exc).__name__})
                ids = {}
            signer = self.d.links
            body = rewrite_links(
                body,
                lambda u: (
                    f"{base}/c/{signer.click_token(p.attempt_id, ids[u])}" if u in ids else None
                ),
            )
        msg = EmailMessage(
            attempt_id=str(p.attempt_id),
            idempotency_key=p.idem_key,
            campaign_id=p.campaign_id,
            to=str(p.lead["email"]),
            sender=from_,
            sender_name=sender.name if sender else "",
            subject=render(step.subject, p.lead),
            body=render(body, p.lead),
            unsubscribe_url=f"{base}/u/{self.d.links.unsubscribe_token(p.lead_id)}",
            message_id=self.d.links.message_id(
                p.attempt_id, from_.rpartition("@")[2] or "dialer.invalid"
            ),
            verp_token=self.d.links.verp_token(p.attempt_id),
        )
        try:
            message_id = await self.d.email.send(msg)
        except ChannelError as exc:
            if exc.unavailable:
                return await self._unavailable(p, exc)
            await self.reachable(Channel.EMAIL)
            self.d.metrics.dispatch.labels(Channel.EMAIL, "error").inc()
            self.d.metrics.emails_sent.labels(p.campaign_id, "failed").inc()
            if getattr(exc, "bounce", False):  # a 5xx refusal at send: a synchronous bounce
                final = Final(p.attempt_id, AttemptStatus.BOUNCED, error=str(exc), retryable=False)
                return Handed(p, Kind.FINAL, final=final)
            return self._failed(p, str(exc), retryable=exc.retryable)
        await self.reachable(Channel.EMAIL)
        self.d.metrics.dispatch.labels(Channel.EMAIL, "ok").inc()
        self.d.metrics.emails_sent.labels(p.campaign_id, "sent").inc()
        return Handed(p, Kind.FINAL, final=Final(p.attempt_id, AttemptStatus.SENT, message_id))

    @staticmethod
    def _failed(p: Prepared, error: str, *, retryable: bool) -> Handed:
        final = Final(p.attempt_id, AttemptStatus.FAILED, error=error, retryable=retryable)
        return Handed(p, Kind.FINAL, final=final)

    async def _record(self, handed: Sequence[Handed]) -> list[None]:
        """Write what became of many hand-offs in one transaction: carrier ids of calls,
        final statuses (sent, refused), attempts that never happened (fenced, carrier
        unreachable) and calls that may have been placed (their lease runs out now, for
        the reconciler). Attempts first, then leads, each in id order."""
        now = self.d.clock.now()
        queued = [h for h in handed if h.kind is Kind.QUEUED]
        finals = [h for h in handed if h.kind is Kind.FINAL]
        aborts = [h for h in handed if h.kind is Kind.ABORT]
        expired = [h for h in handed if h.kind is Kind.EXPIRE]
        async with self.d.db.session() as s:
            rows = await Rows.load(s, [h.p.attempt_id for h in queued + finals], leads=False)
            rows.leads = await lead_store.lock_many(
                s, [h.p.lead_id for h in handed if h.kind is not Kind.QUEUED]
            )
            for h in queued:
                attempt = rows.attempts.get(h.p.attempt_id)
                if attempt is not None:
                    attempt.carrier_id = attempt.carrier_id or h.carrier_id
                    attempts.set_status(attempt, AttemptStatus.QUEUED, now, now)
                    attempt.updated_at = now
            await self.outcomes.finish_rows(rows, [h.final for h in finals if h.final], now)
            if aborts:
                await attempt_store.remove_many(s, [h.p.attempt_id for h in aborts])
            for h in aborts:
                lead = rows.leads.get(h.p.lead_id)
                if lead is not None:
                    leads.undispatched(s, lead, h.p.attempt_id, h.p.prior_status, now)
            for h in expired:
                lead = rows.leads.get(h.p.lead_id)
                if lead is not None and lead.active_attempt_id == h.p.attempt_id:
                    lead.lease_until = now
        return [None] * len(handed)

    async def _unavailable(self, p: Prepared, exc: ChannelError) -> Handed:
        """The carrier or mail server could not be reached: an outage, not an outcome. The
        attempt uses no try and the lead stays at its step (docs/architecture.md §15.3).
        A call that may have reached the carrier stays `created` with its lease run out:
        the reconciler asks the carrier about it once it answers again."""
        self.d.metrics.dispatch.labels(p.channel, "unavailable").inc()
        log.warning(
            "dispatch.channel_unreachable",
            extra={"campaign": p.campaign_id, "channel": p.channel, "error": str(exc)},
        )
        await self.unreachable(p.channel, str(exc), self.d.clock.now())
        kind = Kind.EXPIRE if exc.maybe_placed and p.channel is Channel.VOICE else Kind.ABORT
        return Handed(p, kind, error=str(exc))

    async def unreachable(self, channel: Channel, error: str, now: float) -> None:
        """Count an outage of the channel; hold it after a few in a row."""
        if self.d.health.failed(channel, error, now) is Change.DOWN:
            self.d.metrics.channel_up.labels(channel).set(0)
            state = self.d.health.states[channel]
            log.warning("channel.unavailable", extra={"channel": channel, "error": error})
            await self._record_channel(
                channel,
                events.CHANNEL_UNAVAILABLE,
                {"channel": channel.value, "error": error, "retry_at": state.retry_at},
                now,
            )

    async def reachable(self, channel: Channel) -> None:
        """The channel answered: bring it back if it was held."""
        if self.d.health.succeeded(channel) is Change.UP:
            self.d.metrics.channel_up.labels(channel).set(1)
            log.info("channel.available", extra={"channel": channel})
            await self._record_channel(
                channel, events.CHANNEL_AVAILABLE, {"channel": channel.value}, None
            )

    async def _record_channel(
        self, channel: Channel, type: str, data: dict[str, Any], now: float | None
    ) -> None:
        """One audit event on every live campaign with a step on the channel."""
        at = self.d.clock.now() if now is None else now
        async with self.d.db.session() as s:
            live = await campaign_store.in_states(
                s, (CampaignState.RUNNING, CampaignState.PAUSED, CampaignState.STOPPING)
            )
            for c in live:
                if self.d.specs.of(c).steps_of(channel):
                    events.campaign_event(s, c, type, at=at, reason=data.get("error"), data=data)


def _next_attempt(
    c: Campaign,
    lead: Lead,
    channel: Channel,
    status: AttemptStatus,
    now: float,
    *,
    worker_id: str | None = None,
    count: bool = True,
) -> Attempt:
    """The lead's next try at its current step (the idempotency key names it). With
    `count=False` the caller sets `lead.seq` to the attempt's `try_no` itself."""
    seq = lead.seq + 1
    if count:
        lead.seq = seq
    return attempt_store.new(
        campaign_id=c.id,
        campaign_version=c.version,
        lead_id=lead.id,
        step=lead.step,
        try_no=seq,
        channel=channel,
        idem_key=idem_key(c.id, lead.id, lead.step, seq),
        status=status,
        now=now,
        worker_id=worker_id,
    )


def contact(lead: Lead) -> dict[str, Any]:
    """What a channel may render of a lead (names, contact, custom fields)."""
    return {
        "id": lead.id,
        "phone": lead.phone,
        "email": lead.email,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "company": lead.company,
        "timezone": lead.timezone,
        "custom": dict(lead.custom or {}),
    }
