"""Resume restarts from the saved state: `freeze` keeps the delay left, `deadline` skips
follow-ups that fell due during the pause; nothing a lead received is sent twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from dialer.channels.simulated import SimProfile
from dialer.domain.states import AttemptStatus
from dialer.store.models import Attempt
from tests.harness import ADMIN, Harness, harness, leads, open_runtime
from tests.recording import Crash

DAY = 86400.0
BUSY = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=1.0, fail_rate=0.0)


def drip(policy: str) -> dict[str, object]:
    return {
        "resume_policy": policy,
        "sequence": [
            {"channel": "email", "subject": "Hi {first_name}", "body": "one"},
            {"channel": "email", "delay_seconds": 4 * DAY, "subject": "Re: hi", "body": "two"},
            {"channel": "email", "delay_seconds": 20 * DAY, "subject": "Last", "body": "three"},
        ],
        "caller_ids": [],
    }


async def sent_steps(h: Harness) -> list[tuple[int, str]]:
    async with h.rt.db.session() as s:
        rows = await s.scalars(select(Attempt).order_by(Attempt.id))
        return [(a.step, a.status) for a in rows.all()]


async def test_freeze_keeps_the_remaining_delay(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(**drip("freeze"))
        await h.service.leads.add(c.id, [{"email": "ann@example.com", "first_name": "Ann"}])
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        assert await sent_steps(h) == [(0, AttemptStatus.SENT)]
        await h.advance(2 * DAY)  # two days into the four-day delay
        await h.service.pause(c.id, actor=ADMIN)
        await h.advance(10 * DAY)
        await h.service.resume(c.id, actor=ADMIN)
        await h.advance(2 * DAY - 60)
        await h.tick()
        assert len(await sent_steps(h)) == 1, "follow-up went out before its delay ran"
        await h.advance(120)
        await h.tick()
        assert await sent_steps(h) == [(0, AttemptStatus.SENT), (1, AttemptStatus.SENT)]
        assert len(list((tmp_path / "maildir" / "new").iterdir())) == 2


async def test_deadline_skips_missed_follow_ups_and_keeps_later_ones(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(**drip("deadline"))
        await h.service.leads.add(c.id, [{"email": "ann@example.com", "first_name": "Ann"}])
        await h.service.start(c.id, actor=ADMIN)
        start = h.clock.now()
        await h.tick()
        await h.advance(2 * DAY)
        await h.service.pause(c.id, actor=ADMIN)
        await h.advance(10 * DAY)  # step 1 was due at day 4: during the pause
        await h.service.resume(c.id, actor=ADMIN)
        await h.tick()
        assert await sent_steps(h) == [(0, AttemptStatus.SENT), (1, AttemptStatus.SKIPPED)]
        # Step 2 stays on its wall-clock schedule: day 4 + 20 days = day 24.
        await h.advance(start + 24 * DAY - 60 - h.clock.now())
        await h.tick()
        assert len(await sent_steps(h)) == 2
        await h.advance(120)
        await h.tick()
        assert (await sent_steps(h))[-1] == (2, AttemptStatus.SENT)
        stats = await h.service.stats(c.id)
        assert stats.emails.sent == 2 and stats.leads["completed"] == 1


async def test_resume_never_resends_a_received_step(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(**drip("freeze"))
        await h.service.leads.add(c.id, leads(30))
        await h.service.start(c.id, actor=ADMIN)
        for _ in range(6):
            await h.tick()
            await h.service.pause(c.id, actor=ADMIN)
            await h.tick()
            await h.service.resume(c.id, actor=ADMIN)
            await h.advance(DAY)
        await h.advance(30 * DAY)
        for _ in range(4):
            await h.tick()
            await h.advance(30 * DAY)
        async with h.rt.db.session() as s:
            attempts = (await s.scalars(select(Attempt))).all()
        received = [(a.lead_id, a.step) for a in attempts if a.status == AttemptStatus.SENT]
        assert len(received) == len(set(received)) == 90
        assert len(list((tmp_path / "maildir" / "new").iterdir())) == 90


async def _crash_after_carrier_took_call(h: Harness) -> None:
    c = await h.campaign(
        sequence=[{"channel": "voice", "max_attempts": 1}],
        pacing={"mode": "agentless", "agentless_capacity": 1},
    )
    await h.service.leads.add(c.id, leads(1))
    await h.service.start(c.id, actor=ADMIN)
    h.voice.crash_after_dial = True
    with pytest.raises(Crash):
        await h.tick()
    assert len(h.sim.record) == 1


@pytest.mark.parametrize("callbacks", ["delivered", "lost"])
async def test_worker_killed_mid_dispatch_causes_no_second_call(
    db_url: str, tmp_path: Path, callbacks: str
) -> None:
    """The carrier took the call, the worker died before storing its id. Either the
    carrier's callbacks reach the next worker, or they are lost and the next worker asks the
    carrier once the lease ran out; in both cases it adopts the call and never redials."""
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        h.voice.lose_callbacks = callbacks == "lost"
        await _crash_after_carrier_took_call(h)
        if callbacks == "lost":
            await h.advance(120)  # the call ends at the carrier; nobody hears of it
    async with open_runtime(db_url, tmp_path, h.clock, h.sim, worker="w2") as h2:
        report = await h2.tick()
        assert report.reconciled == (1 if callbacks == "lost" else 0)
        await h2.advance(120)
        await h2.tick()
        assert h2.voice.dials == []
        async with h2.rt.db.session() as s:
            attempt = (await s.scalars(select(Attempt))).one()
        assert attempt.carrier_id == next(iter(h.sim.record))
        assert attempt.status == AttemptStatus.BUSY
        assert len(h.sim.record) == 1
        stats = await h2.service.stats(attempt.campaign_id)
        assert stats.calls.dialed == 1 and stats.leads["completed"] == 1


async def test_dispatch_lost_before_the_carrier_is_sent_once(db_url: str, tmp_path: Path) -> None:
    """The worker wrote the attempt and died before the carrier heard of it: the same
    attempt (same idempotency key) is dialled once by the next worker, after the lease."""
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 1}],
            pacing={"mode": "agentless", "agentless_capacity": 1},
        )
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        h.voice.gate = asyncio.Event()  # never opened: the worker dies while dialling
        tick = asyncio.create_task(h.tick())
        await h.voice.at_gate.wait()
        tick.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tick
        assert h.sim.record == {}
        key = h.voice.dials[0].idempotency_key
    async with open_runtime(db_url, tmp_path, h.clock, h.sim, worker="w2") as h2:
        await h2.tick()
        assert h2.voice.dials == [], "redialled before the lease ran out"
        await h2.advance(120)
        await h2.tick()
        assert [d.idempotency_key for d in h2.voice.dials] == [key]
        assert len(h.sim.record) == 1
