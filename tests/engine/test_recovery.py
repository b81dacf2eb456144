"""Crash and carrier outage (docs/architecture.md §15): every open attempt is resolved by
asking the carrier, a call whose fate is unknown is `lost` and never dialled again, and a
carrier that cannot be reached uses no try and holds the channel until it answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import select

from dialer.channels.base import EmailMessage
from dialer.channels.maildir import MaildirEmail
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.domain.campaign import Channel
from dialer.domain.states import ATTEMPT_FINAL, ATTEMPT_LIVE, AgentState, CampaignState
from dialer.engine.reconcile import MAX_RING_SECONDS, QUEUE_SLACK_SECONDS
from dialer.runtime import Runtime
from dialer.store.attempts import TAKEOVER_GRACE
from dialer.store.models import Attempt, Event, Lead
from tests.harness import (
    ADMIN,
    Harness,
    campaign_body,
    carrier,
    harness,
    leads,
    open_runtime,
    settings,
)
from tests.recording import RecordingVoice

TALKERS = SimProfile(
    answer_rate=1.0,
    machine_rate=0.0,
    busy_rate=0.0,
    fail_rate=0.0,
    ring_mean=4.0,
    ring_min=3.0,
    talk_mean=600.0,
    talk_min=400.0,
)
BUSY = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=1.0, fail_rate=0.0)
LEASE = 60.0


async def attempts(h: Harness) -> list[Attempt]:
    async with h.rt.db.session() as s:
        return list((await s.scalars(select(Attempt).order_by(Attempt.id))).all())


async def lead_rows(h: Harness) -> list[Lead]:
    async with h.rt.db.session() as s:
        return list((await s.scalars(select(Lead).order_by(Lead.id))).all())


async def events_of(h: Harness, type: str) -> list[Event]:
    async with h.rt.db.session() as s:
        return list((await s.scalars(select(Event).where(Event.type == type))).all())


async def agent_states(h: Harness) -> dict[str, str]:
    return {a.id: a.state for a in await h.service.agents.all()}


async def test_calls_open_at_a_crash_are_lost_never_redialled_and_free_their_agents(
    db_url: str, tmp_path: Path
) -> None:
    """The process dies with calls queued, ringing and talking; the carrier's record died
    with it. After the lease the next process marks them `failed` (lost), releases the
    agents, and terminate reaches `stopped`; no call is placed again for them."""
    async with harness(db_url, tmp_path, profile=TALKERS) as h:
        await h.agents("a1", "a2")
        c = await h.campaign(
            agent_ids=["a1", "a2"],
            sequence=[{"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 3600}],
            pacing={"mode": "progressive", "lines_per_agent": 2.0},
        )
        await h.service.leads.add(c.id, leads(6))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        await h.advance(10)  # answered: two bridged to the agents, the rest wait
        await h.tick()
        before = await attempts(h)
        open_keys = {a.idem_key for a in before if a.status in ATTEMPT_LIVE}
        assert len(open_keys) >= 2
        assert AgentState.ON_CALL in (await agent_states(h)).values()
    await h.sim.close()  # the carrier's record died with the process
    fresh = SimulatedVoice(h.clock, TALKERS, seed=99)
    async with open_runtime(db_url, tmp_path, h.clock, fresh, worker="w2") as h2:
        await h2.tick()
        assert {a.idem_key for a in await attempts(h2) if a.status in ATTEMPT_LIVE} == open_keys, (
            "resolved before the lease ran out"
        )
        await h2.advance(LEASE * (1 + TAKEOVER_GRACE) + 1)
        await h2.service.terminate(c.id, confirm=c.id, actor=ADMIN)
        await h2.tick()
        after = {a.idem_key: a for a in await attempts(h2)}
        for key in open_keys:
            assert after[key].status == "failed" and (after[key].error or "").startswith("lost")
        assert not [a for a in after.values() if a.status not in ATTEMPT_FINAL]
        assert not {d.idempotency_key for d in h2.voice.dials} & open_keys, "redialled"
        states = await agent_states(h2)
        assert AgentState.ON_CALL not in states.values()
        assert AgentState.RESERVED not in states.values()
        campaign = await h2.service.get_campaign(c.id)
        assert campaign.state == CampaignState.STOPPED
        # The lost calls used their try: the leads are due again an hour later, not now.
        assert all(lead.tries <= 1 for lead in await lead_rows(h2))


async def test_a_live_worker_vouches_for_its_long_calls(db_url: str, tmp_path: Path) -> None:
    """A call talks for longer than a lease: its worker renews the lease, the reconciler
    leaves it alone, and it ends normally."""
    async with harness(db_url, tmp_path, profile=TALKERS) as h:
        await h.agents("a1")
        c = await h.campaign(agent_ids=["a1"], sequence=[{"channel": "voice", "max_attempts": 1}])
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        await h.run(300, step=5)  # five leases
        (a,) = await attempts(h)
        assert a.status == "in_progress" and a.error is None
        await h.run(900, step=5)
        (a,) = await attempts(h)
        assert a.status == "completed" and a.agent_id == "a1"


async def test_lost_callbacks_are_fetched_from_the_carrier(db_url: str, tmp_path: Path) -> None:
    """The carrier's reports never arrive (a webhook outage): once a call has had no news
    for longer than it can queue and ring, the worker asks the carrier and applies it."""
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 1}],
            pacing={"mode": "agentless", "agentless_capacity": 1},
        )
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        h.voice.lose_callbacks = True
        await h.tick()
        horizon = LEASE + MAX_RING_SECONDS + QUEUE_SLACK_SECONDS
        await h.run(horizon - 10, step=10)
        (a,) = await attempts(h)
        assert a.status == "queued"  # busy at the carrier; we have not heard
        await h.run(30, step=10)
        (a,) = await attempts(h)
        assert a.status == "busy" and a.error is None
        assert len(h.sim.record) == 1
        assert (await h.service.get_campaign(c.id)).state == CampaignState.COMPLETED


async def test_a_dial_that_timed_out_is_asked_about_not_redialled(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 1}],
            pacing={"mode": "agentless", "agentless_capacity": 1},
        )
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        h.voice.time_out_after_dial = True
        await h.tick()
        h.voice.time_out_after_dial = False
        (a,) = await attempts(h)
        assert a.status == "created"
        await h.advance(10)
        await h.run(20, step=5)
        (a,) = await attempts(h)
        assert a.status == "busy" and a.carrier_id == next(iter(h.sim.record))
        assert h.sim.counts["dialed"] == 1 and len(h.voice.dials) == 1
        (lead,) = await lead_rows(h)
        assert (lead.status, lead.step) == ("completed", 1)  # its one try: busy


async def test_a_carrier_refusing_connections_uses_no_try_and_holds_the_voice_channel(
    db_url: str, tmp_path: Path
) -> None:
    """Connection refused is an outage, not an outcome: no try is used, no lead moves on to
    its email step; after three in a row the channel is held (event, gauge), one probe goes
    out per backoff, and dialling resumes by itself when the carrier answers."""
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        c = await h.campaign(
            sequence=[
                {"channel": "voice", "max_attempts": 1},
                {"channel": "email", "subject": "Hi", "body": "Sorry we missed you"},
            ],
            pacing={"mode": "agentless", "agentless_capacity": 2},
        )
        await h.service.leads.add(c.id, leads(4))
        await h.service.start(c.id, actor=ADMIN)
        h.voice.down = True
        await h.tick()  # one dial a second: the campaign's calls-per-second
        for _ in range(2):
            await h.advance(1.0)
            await h.tick()
        metrics = h.rt.metrics
        assert metrics.channel_up.labels(Channel.VOICE)._value.get() == 0
        (down,) = await events_of(h, "campaign.channel_unavailable")
        assert down.campaign_id == c.id and down.data["channel"] == "voice"
        assert "refused" in down.data["error"] and down.data["retry_at"] == down.at + 1.0
        tried = len(h.voice.dials)
        assert tried == 3
        await h.advance(0.5)
        await h.tick()  # held: nothing goes until the backoff ran out
        assert len(h.voice.dials) == tried
        await h.advance(0.5)
        await h.tick()  # one probe, refused: the wait doubles
        assert len(h.voice.dials) == tried + 1
        await h.advance(1.0)
        await h.tick()
        assert len(h.voice.dials) == tried + 1
        # Nothing was placed, no attempt row is left, no try used, nobody sent an email.
        assert await attempts(h) == []
        assert all((lead.step, lead.tries) == (0, 0) for lead in await lead_rows(h))
        assert not list((tmp_path / "maildir").glob("*/*"))

        h.voice.down = False
        await h.advance(1.0)
        await h.tick()  # the probe goes through: the channel is back
        assert metrics.channel_up.labels(Channel.VOICE)._value.get() == 1
        assert len(await events_of(h, "campaign.channel_available")) == 1
        await h.run(120, step=5)
        rows = await attempts(h)
        voice = [a for a in rows if a.channel == "voice"]
        assert len(voice) == 4 and {a.status for a in voice} == {"busy"}
        assert {a.try_no for a in voice} == {1}
        assert h.sim.counts["dialed"] == 4


async def test_a_report_lost_to_a_database_outage_is_fetched_at_once(
    db_url: str, tmp_path: Path
) -> None:
    """A Twilio callback answered 503 (the database was down) is not retried by Twilio: the
    webhook names the attempt to the reconciler, which asks the carrier at its next run
    instead of after the call's no-news horizon. A hint never gives a call up as lost."""
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 1}],
            pacing={"mode": "agentless", "agentless_capacity": 1},
        )
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        h.voice.lose_callbacks = True
        await h.tick()
        await h.run(20, step=5)
        (a,) = await attempts(h)
        assert a.status == "queued"
        h.rt.engine.reconciler.defer(a.id)
        h.rt.engine.reconciler.defer(10_000)  # no such attempt: ignored
        await h.advance(5)
        await h.tick()
        (a,) = await attempts(h)
        assert a.status == "busy" and a.error is None
        assert h.rt.engine.reconciler.deferred == set()


class SlowMail(MaildirEmail):
    """A mail server that takes `seconds` of (fake) time per message, during which `during`
    runs (another worker ticking, say)."""

    def __init__(self, root: Path, clock: FakeClock, seconds: float) -> None:
        super().__init__(root, clock)
        self.clock = clock
        self.seconds = seconds
        self.during: Callable[[], Awaitable[object]] | None = None

    async def send(self, message: EmailMessage) -> str:
        await self.clock.advance(self.seconds)
        if self.during is not None:
            during, self.during = self.during, None
            await during()
        return await super().send(message)


async def test_a_round_longer_than_the_lease_keeps_its_leads(db_url: str, tmp_path: Path) -> None:
    """A worker whose round of hand-offs outlasts its lease renews the leases of what is
    left, so another worker's reconciler never takes (and sends again) work it still holds."""
    clock, sim = carrier()
    slow = SlowMail(tmp_path / "maildir", clock, seconds=25.0)  # lease 60 s: 3 sends = 75 s
    config = settings(db_url, "a")
    async with Runtime.open(
        config, clock=clock, voice=RecordingVoice(sim), email=slow, run_engine=False
    ) as a:
        service = a.service
        only_email = {"sequence": [{"channel": "email", "subject": "Hi", "body": "Hello"}]}
        body = campaign_body("Slow", {}, {**only_email, "caller_ids": []})
        c = await service.create_campaign(body, actor=ADMIN)
        await service.leads.add(c.id, leads(4))
        await service.start(c.id, actor=ADMIN)
        async with open_runtime(db_url, tmp_path, clock, sim, worker="b") as b:
            calls: list[int] = []

            async def other_worker() -> None:
                await clock.advance(20.0)  # 70 s after the claim: the first lease is over
                calls.append((await b.tick()).reconciled)

            async def first() -> None:  # while the second message is being sent
                slow.during = other_worker

            slow.during = first
            await a.engine.tick()
            sent = len(list((tmp_path / "maildir" / "new").iterdir()))
            async with a.db.session() as s:
                rows = list((await s.scalars(select(Attempt))).all())
            assert sent == len(rows) == 4, "a message was sent twice or not at all"
            assert calls == [0], "the other worker took over work that was still held"
            assert {r.status for r in rows} == {"sent"}


class HeldMail(MaildirEmail):
    """A mail server that holds every message until `gate` opens."""

    def __init__(self, root: Path, clock: FakeClock) -> None:
        super().__init__(root, clock)
        self.gate = asyncio.Event()
        self.holding = 0
        self.four_in = asyncio.Event()

    async def send(self, message: EmailMessage) -> str:
        self.holding += 1
        if self.holding == 4:
            self.four_in.set()
        await self.gate.wait()
        return await super().send(message)


async def test_hand_offs_in_progress_longer_than_the_lease_keep_their_leads(
    db_url: str, tmp_path: Path
) -> None:
    """Hand-offs run side by side: all four sends are with the mail server when the lease
    would run out. The round renews their leases while it runs (docs/architecture.md §6.5),
    so another worker's reconciler never takes them over and sends them again."""
    clock, sim = carrier()
    held = HeldMail(tmp_path / "maildir", clock)
    config = settings(db_url, "a", email_concurrency=4)
    async with Runtime.open(
        config, clock=clock, voice=RecordingVoice(sim), email=held, run_engine=False
    ) as a:
        only_email = {"sequence": [{"channel": "email", "subject": "Hi", "body": "Hello"}]}
        body = campaign_body("Held", {}, {**only_email, "caller_ids": []})
        c = await a.service.create_campaign(body, actor=ADMIN)
        await a.service.leads.add(c.id, leads(4))
        await a.service.start(c.id, actor=ADMIN)
        async with open_runtime(db_url, tmp_path, clock, sim, worker="b") as b:
            tick = asyncio.create_task(a.engine.tick())
            await asyncio.wait_for(held.four_in.wait(), timeout=30)  # a hang guard only
            claimed = clock.now()

            async def leases_until() -> list[float]:
                async with a.db.session() as s:
                    return [r.lease_until or 0.0 for r in (await s.scalars(select(Lead))).all()]

            for step in range(1, 5):  # 80 s in steps of a third of the lease (60 s)
                await clock.advance(20.0)
                renewed = claimed + 20.0 * step + 60.0
                for _ in range(3000):  # a hang guard: the renewal is a real database write
                    if min(await leases_until()) >= renewed:
                        break
                    await asyncio.sleep(0.01)
            assert min(await leases_until()) > clock.now() > claimed + 60.0
            assert (await b.tick()).reconciled == 0
            held.gate.set()
            await tick
            sent = len(list((tmp_path / "maildir" / "new").iterdir()))
            async with a.db.session() as s:
                attempts = list((await s.scalars(select(Attempt))).all())
            assert sent == len(attempts) == 4, "a message was sent twice or not at all"
            assert {r.status for r in attempts} == {"sent"}


async def test_a_lapsed_lease_is_taken_over_once_after_the_grace(
    db_url: str, tmp_path: Path
) -> None:
    """A worker stalls (here: it dies) while a mail of its round is with the server. Within
    half a lease after its lease ran out nobody takes the attempt over (a stalled worker may
    still be sending it); after that one reconciler does, and while it sends, another
    reconciler leaves it alone even when the first one's tick began long ago."""
    clock, sim = carrier()
    held = HeldMail(tmp_path / "held", clock)
    config = settings(db_url, "a", lease_seconds=LEASE)
    async with Runtime.open(
        config, clock=clock, voice=RecordingVoice(sim), email=held, run_engine=False
    ) as a:
        only_email = {"sequence": [{"channel": "email", "subject": "Hi", "body": "Hello"}]}
        body = campaign_body("Stalled", {}, {**only_email, "caller_ids": []})
        c = await a.service.create_campaign(body, actor=ADMIN)
        await a.service.leads.add(c.id, leads(1))
        await a.service.start(c.id, actor=ADMIN)
        claimed = clock.now()
        tick = asyncio.create_task(a.engine.tick())
        await wait_until(lambda: held.holding == 1)
        tick.cancel()  # the worker is gone with the mail in hand: nothing renews its lease
        with contextlib.suppress(asyncio.CancelledError):
            await tick
        mails = tmp_path / "maildir" / "new"
        slow = HeldMail(tmp_path / "maildir", clock)  # b's mail server takes its time
        config_b = settings(db_url, "b", lease_seconds=LEASE)
        async with (
            Runtime.open(
                config_b, clock=clock, voice=RecordingVoice(sim), email=slow, run_engine=False
            ) as b,
            open_runtime(db_url, tmp_path, clock, sim, worker="c", lease_seconds=LEASE) as c2,
        ):
            await clock.advance(LEASE + LEASE * TAKEOVER_GRACE / 2)  # ran out, within the grace
            assert await b.engine.reconciler.run(clock.now()) == 0
            assert (await c2.tick()).reconciled == 0
            await clock.advance(3 * LEASE)
            # b's tick began 2 leases ago (its event loop stalled): it takes the attempt over
            # with a lease from the clock of now, which c respects while b sends.
            taking = asyncio.create_task(b.engine.reconciler.run(claimed + 2 * LEASE))
            await wait_until(lambda: slow.holding == 1)
            assert (await c2.tick()).reconciled == 0, "taken over from a worker sending it"
            slow.gate.set()
            assert await taking == 1
            assert len(list(mails.iterdir())) == 1, "sent twice, or never"
            async with a.db.session() as s:
                rows = list((await s.scalars(select(Attempt))).all())
            assert [r.status for r in rows] == ["sent"]


async def wait_until(done: Callable[[], bool]) -> None:
    """Until `done()`; the deadline only catches a hang (real database writes run meanwhile)."""
    async with asyncio.timeout(30):
        while not done():
            await asyncio.sleep(0.01)
