"""Nothing stuck, nothing twice: every open attempt nobody vouches for is resolved by asking
the carrier (docs/architecture.md §15.2).

A worker vouches for the calls it handed to the carrier by renewing their leads' leases.
When a lease runs out (the worker died), or a call has had no news for longer than it can
ring or talk (its callbacks were lost), the reconciler asks the carrier for the call's fate:
- known: the carrier's latest status is applied through the normal path (figures, agents,
  next step) and, if the call is still live, this worker vouches for it from now on;
- never placed (the carrier's record is complete and holds no such call): an attempt still
  `created` is handed off again under the same idempotency key, the same try;
- unknown (the record died with the process, or it is ambiguous): the attempt is `failed`
  with the reason `lost`. A call whose fate is unknown is never dialled again.
While the carrier cannot be reached, nothing is decided: the attempt waits.
"""

from __future__ import annotations

import logging

from dialer.channels.base import CallEvent, CallFate, CallQuery, ChannelError, FateKind
from dialer.domain.campaign import Channel, VoiceStep
from dialer.domain.states import ATTEMPT_FINAL, AttemptStatus, LeadStatus
from dialer.engine import control
from dialer.engine.deps import Deps
from dialer.engine.dispatch import Dispatcher, Prepared, contact
from dialer.engine.outcomes import Outcomes
from dialer.store import attempts as attempt_store
from dialer.store import leads as lead_store

log = logging.getLogger(__name__)

MAX_RING_SECONDS = 120.0  # the longest ring timeout a voice step may have (domain/campaign.py)
QUEUE_SLACK_SECONDS = 60.0  # a call may wait at the carrier (its calls-per-second) first
TALK_CHECK_SECONDS = 900.0  # a live call with no news for this long is checked on
LOST = "lost"
MAX_DEFERRED = 100_000


class Reconciler:
    def __init__(self, deps: Deps, outcomes: Outcomes, dispatcher: Dispatcher) -> None:
        self.d = deps
        self.outcomes = outcomes
        self.dispatcher = dispatcher
        self._renewed_at = float("-inf")
        # Attempts whose news could not be written (a callback answered 503 while the
        # database was down): asked about at the next run, not after their horizon.
        self.deferred: set[int] = set()

    def defer(self, attempt_id: int) -> None:
        """A report about this attempt was lost here; ask the carrier soon (bounded)."""
        if len(self.deferred) < MAX_DEFERRED:
            self.deferred.add(attempt_id)

    async def renew(self, now: float) -> int:
        """Vouch for this worker's calls: extend their leads' leases (every third of one)."""
        lease = self.d.tuning.lease_seconds
        if now - self._renewed_at < lease / 3:
            return 0
        self._renewed_at = now
        async with self.d.db.session() as s:
            conn = await s.connection()
            return await attempt_store.renew_leases(
                conn, self.d.tuning.worker_id, now, now + lease, now + lease * 2 / 3
            )

    async def run(self, now: float) -> int:
        """Resolve the open attempts nobody vouches for; returns how many were looked at."""
        lease = self.d.tuning.lease_seconds
        async with self.d.db.read() as conn:
            stale = await attempt_store.stale_live(
                conn,
                lapsed_before=now - lease * attempt_store.TAKEOVER_GRACE,
                orphan_before=now - lease,
                ringing_before=now - (lease + MAX_RING_SECONDS + QUEUE_SLACK_SECONDS),
                talking_before=now - max(lease, TALK_CHECK_SECONDS),
            )
            hinted: list[attempt_store.Stale] = []
            if self.deferred:
                wanted = sorted(self.deferred)[:200]
                known = {st.attempt_id for st in stale}
                hinted = [
                    st
                    for st in await attempt_store.live_by_ids(conn, wanted)
                    if st.attempt_id not in known and st.channel is Channel.VOICE
                ]
                self.deferred.difference_update(wanted)
        done = 0
        for st in stale:
            if st.attempt_id in self.dispatcher.in_hand:
                continue  # this worker is handing it off right now
            if st.channel is Channel.EMAIL:
                await self._email(st, now)
            else:
                await self._voice(st, now)
            done += 1
        for i, st in enumerate(hinted):  # someone may still vouch for these: act on facts
            if st.attempt_id in self.dispatcher.in_hand:
                continue
            try:
                await self._voice(st, now, hint=True)
            except BaseException:
                for rest in hinted[i:]:  # the database went away again: keep the hints
                    self.defer(rest.attempt_id)
                raise
            done += 1
        return done

    async def _email(self, st: attempt_store.Stale, now: float) -> None:
        """An email attempt written but never handed off (a send reports at once): send it
        again under the same key (at least once; the Message-ID is the attempt's)."""
        if st.status is not AttemptStatus.CREATED or not st.active:
            await self._lost(st, "no news of the message")
            return
        await self._hand_off_again(st, now)

    async def _voice(self, st: attempt_store.Stale, now: float, *, hint: bool = False) -> None:
        allowance = self.d.health.allowance(Channel.VOICE, now)
        if allowance == 0:
            self.defer(st.attempt_id)
            return  # the carrier is held: ask it when it answers again
        if allowance == 1:
            self.d.health.probing(Channel.VOICE)  # this question is the probe
        query = await self._query(st)
        if query is None:
            await self._lost(st, "the campaign's caller ids are gone")
            return
        try:
            fate = await self.d.voice.lookup(query)
        except ChannelError as exc:
            if exc.unavailable:
                self.defer(st.attempt_id)
                await self.dispatcher.unreachable(Channel.VOICE, str(exc), now)
                return
            fate = CallFate(FateKind.UNKNOWN, why=str(exc))
        await self.dispatcher.reachable(Channel.VOICE)
        if fate.kind is FateKind.KNOWN and fate.event is not None:
            await self._known(st, fate.event, now)
        elif hint:
            return  # not ours to give up: its lease and horizons decide
        elif fate.kind is FateKind.NOT_PLACED and st.status is AttemptStatus.CREATED and st.active:
            await self._hand_off_again(st, now)
        else:
            await self._lost(st, fate.why or "the carrier has no record of the call")

    async def _query(self, st: attempt_store.Stale) -> CallQuery | None:
        async with self.d.db.session() as s:
            c = await control.load(s, st.campaign_id)
            conn = await s.connection()
            others = await attempt_store.other_calls(conn, st.lead_id, st.attempt_id)
        spec = self.d.specs.of(c)
        if not spec.caller_ids:
            return None
        return CallQuery(
            attempt_id=str(st.attempt_id),
            idempotency_key=st.idem_key,
            carrier_id=st.carrier_id,
            to=st.phone or "",
            caller_id=spec.caller_ids[st.attempt_id % len(spec.caller_ids)],
            placed_after=st.created_at,
            other_calls=others,
        )

    async def _known(self, st: attempt_store.Stale, event: CallEvent, now: float) -> None:
        """Apply what the carrier says through the normal path; vouch for a live call."""
        attempt_id = str(st.attempt_id)
        event = CallEvent(
            attempt_id,
            event.carrier_id,
            event.status,
            event.at,
            event.answered_by,
            event.duration_seconds,
            event.error,
        )
        if st.status is AttemptStatus.CREATED:  # the carrier id was never stored
            queued = CallEvent(attempt_id, event.carrier_id, AttemptStatus.QUEUED, event.at)
            await self.outcomes.on_call_event(queued)
        await self.outcomes.on_call_event(event)
        if event.status in ATTEMPT_FINAL:
            self.d.metrics.attempts_reconciled.labels("ended").inc()
            return
        fresh = self.d.clock.now()  # the tick's `now` may be long past under load
        lease_until = fresh + self.d.tuning.lease_seconds
        async with self.d.db.session() as s:
            await attempt_store.adopt(s, st.attempt_id, self.d.tuning.worker_id, fresh, lease_until)
        self.d.metrics.attempts_reconciled.labels("live").inc()
        log.info("attempt.adopted", extra={"attempt": st.attempt_id, "status": str(event.status)})

    async def _lost(self, st: attempt_store.Stale, why: str) -> None:
        """The carrier cannot say: `failed`, reason `lost`, never dialled again. The try is
        used (the call may have reached the lead); its agent, if any, is released."""
        log.warning(
            "attempt.lost", extra={"attempt": st.attempt_id, "campaign": st.campaign_id, "why": why}
        )
        await self.outcomes.finish(
            st.attempt_id, AttemptStatus.FAILED, error=f"{LOST}: {why}", retryable=True
        )
        self.d.metrics.attempts_reconciled.labels(LOST).inc()

    async def _hand_off_again(self, st: attempt_store.Stale, now: float) -> None:
        """Never reached the channel: the same attempt (same key, same try) goes again."""
        me = self.d.tuning.worker_id
        lease = self.d.tuning.lease_seconds
        async with self.d.db.session() as s:
            c = await control.load(s, st.campaign_id)
            # Attempt, then lead: the order every batch locks in (docs/architecture.md §6.5).
            attempt = await attempt_store.get(s, st.attempt_id, lock=True)
            lead = await lead_store.get(s, st.lead_id, lock=True)
            if lead is None or attempt is None or attempt.status != AttemptStatus.CREATED:
                return
            # Decided on the clock of now, under the row locks: with the tick's `now`, a
            # reconciler late by more than a lease took over what another had just taken.
            fresh = self.d.clock.now()
            taken = (
                lead.lease_owner != me
                and lead.lease_until is not None
                and (lead.lease_until >= fresh - lease * attempt_store.TAKEOVER_GRACE)
            )
            if lead.active_attempt_id != st.attempt_id or taken:
                return  # another worker holds it or took it over first: not ours
            lead.lease_until = fresh + lease
            lead.lease_owner = me
            spec = self.d.specs.of(c)
            lead_contact = contact(lead)
        step = spec.sequence[st.step] if st.step < len(spec.sequence) else None
        if step is None or (st.channel is Channel.VOICE and not isinstance(step, VoiceStep)):
            await self._lost(st, "the step is gone from the sequence")
            return
        self.d.fence.see(c.id, c.state, c.version)
        self.d.metrics.attempts_reconciled.labels("handed_off").inc()
        await self.dispatcher.dispatch(
            Prepared(
                attempt_id=st.attempt_id,
                idem_key=st.idem_key,
                campaign_id=st.campaign_id,
                version=c.version,
                lead_id=st.lead_id,
                prior_status=LeadStatus(st.lead_status),
                channel=st.channel,
                step=st.step,
                lead=lead_contact,
            ),
            spec,
        )
