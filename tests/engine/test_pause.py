"""Pause: nothing more goes out; resume: exactly where we left off (docs/architecture.md §3)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from dialer.channels.simulated import SimProfile
from dialer.domain.states import AttemptStatus, CampaignState
from dialer.store.models import Attempt, Lead
from tests.harness import ADMIN, Harness, harness, leads

LEAD_WRITES = ("UPDATE LEADS", "INSERT INTO LEADS", "DELETE FROM LEADS")


def _capture_into(statements: list[str]) -> Callable[..., None]:
    def capture(_c: object, _cur: object, sql: str, *_a: object) -> None:
        statements.append(sql)

    return capture


BUSY = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=1.0, fail_rate=0.0)


async def agentless(h: Harness, n: int, **pacing: object) -> str:
    c = await h.campaign(
        sequence=[{"channel": "voice", "max_attempts": 20, "retry_delay_seconds": 0}],
        pacing={"mode": "agentless", "agentless_capacity": 10, "calls_per_second": 100, **pacing},
    )
    await h.service.leads.add(c.id, leads(n))
    await h.service.start(c.id, actor=ADMIN)
    return str(c.id)


async def test_no_dispatch_after_pause_returns(db_url: str, tmp_path: Path) -> None:
    """Many pause/resume cycles with the engine ticking flat out beside them."""
    async with harness(db_url, tmp_path, profile=BUSY, time_scale=math.inf) as h:
        cid = await agentless(h, 60)
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                await h.tick()
                await h.advance(0.5)

        loader = asyncio.create_task(load())
        try:
            for _ in range(8):
                before = len(h.voice.of(cid))
                for _ in range(50):  # wait (bounded) until the load really dials
                    if len(h.voice.of(cid)) > before:
                        break
                    await h.tick()
                assert len(h.voice.of(cid)) > before, "no load before the pause"
                result = await h.service.pause(cid, actor=ADMIN)
                assert result.campaign.state == CampaignState.PAUSED
                acked = len(h.voice.of(cid))
                for _ in range(5):
                    await h.tick()
                    await h.advance(1)
                assert len(h.voice.of(cid)) == acked, "a call went out after pause returned"
                await h.service.resume(cid, actor=ADMIN)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await loader


async def test_pause_cancels_queued_calls_and_reports_in_flight(
    db_url: str, tmp_path: Path
) -> None:
    profile = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)
    async with harness(db_url, tmp_path, profile=profile) as h:
        cid = await agentless(h, 5)
        await h.tick()  # five calls handed to the carrier, queued there for 0.5 s
        dialled = h.voice.of(cid)
        assert len(dialled) == 5
        result = await h.service.pause(cid, actor=ADMIN, reason="supervisor break")
        assert sorted(a.id for a in result.in_flight) == sorted(int(d.attempt_id) for d in dialled)
        assert len(h.voice.cancels) == 5
        await h.advance(60)
        async with h.rt.db.session() as s:
            attempts = (await s.scalars(select(Attempt))).all()
            assert {a.status for a in attempts} == {AttemptStatus.CANCELED}
            assert {a.rang for a in attempts} == {False}
            # A call we cancelled uses no try: the lead redials the same step on resume.
            assert {lead.tries for lead in (await s.scalars(select(Lead))).all()} == {0}
        assert len(h.voice.of(cid)) == 5
        await h.service.resume(cid, actor=ADMIN)
        await h.tick()
        redials = h.voice.of(cid)[5:]
        assert len(redials) == 5
        assert {d.idempotency_key for d in redials}.isdisjoint({d.idempotency_key for d in dialled})


async def test_pause_leaves_ringing_calls_to_ring(db_url: str, tmp_path: Path) -> None:
    profile = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)
    async with harness(db_url, tmp_path, profile=profile) as h:
        cid = await agentless(h, 3)
        await h.tick()
        await h.advance(2)  # out of the carrier's queue: ringing
        result = await h.service.pause(cid, actor=ADMIN)
        assert len(result.in_flight) == 3
        assert {a.status for a in result.in_flight} == {AttemptStatus.RINGING}
        await h.advance(60)  # they ring out (no answer), never cut
        async with h.rt.db.session() as s:
            statuses = {a.status for a in (await s.scalars(select(Attempt))).all()}
        assert statuses == {AttemptStatus.NO_ANSWER}
        stats = await h.service.stats(cid)
        assert stats.calls.received == 3 and stats.calls.in_flight == 0


async def test_pause_and_resume_write_no_lead(db_url: str, tmp_path: Path) -> None:
    """O(1) in leads: the same statements for 10 and for 400 leads, none touching leads."""
    counts = []
    for n in (10, 400):
        async with harness(db_url, tmp_path / str(n)) as h:
            cid = await agentless(h, n)
            statements: list[str] = []
            capture = _capture_into(statements)

            event.listen(h.rt.db.engine.sync_engine, "before_cursor_execute", capture)
            await h.service.pause(cid, actor=ADMIN)
            await h.service.resume(cid, actor=ADMIN)
            event.remove(h.rt.db.engine.sync_engine, "before_cursor_execute", capture)
            writes = [s for s in statements if s.lstrip().upper().startswith(LEAD_WRITES)]
            assert writes == []
            counts.append(len(statements))
    assert counts[0] == counts[1]


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Let the loop run (real database I/O included) until `condition` holds. The deadline
    only turns a hang into a failure: a passing run never depends on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        assert loop.time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.001)


async def test_work_claimed_before_pause_is_not_dialled_after(db_url: str, tmp_path: Path) -> None:
    """The race the fence exists for: a tick claimed ten leads and hands them off three at
    a time; the first three dials are with the carrier when the pause comes. The pause waits
    for those three only; the seven others are never handed over, and only the three are
    reported in flight (queued, their carrier ids written: a pause can cancel them)."""
    async with harness(db_url, tmp_path, profile=BUSY, voice_concurrency=3) as h:
        cid = await agentless(h, 10)
        gate = h.voice.gate = asyncio.Event()
        h.voice.gate_all = True
        tick = asyncio.create_task(h.tick())
        await until(lambda: len(h.voice.dials) == 3, "three dials wait at the carrier")
        pause = asyncio.create_task(h.service.pause(cid, actor=ADMIN))

        async def paused() -> bool:
            return (await h.service.get_campaign(cid)).state == CampaignState.PAUSED

        await until(paused, "the pause is written and waits at the fence")
        assert not pause.done(), "pause returned while a dial past the fence was unfinished"
        gate.set()
        result = await pause
        await tick
        assert len(h.voice.dials) == 3
        first = sorted(d.attempt_id for d in h.voice.dials)
        assert len(first) == 3
        assert sorted(d.attempt_id for d in h.voice.of(cid)) == first
        assert sorted(str(a.id) for a in result.in_flight) == first
        assert {a.status for a in result.in_flight} == {"queued"}
        assert all(a.carrier_id for a in result.in_flight)
        async with h.rt.db.session() as s:
            assert len((await s.scalars(select(Attempt))).all()) == 3
            pending = (await s.scalars(select(Lead).where(Lead.status == "pending"))).all()
            assert len(pending) == 7
            assert {lead.seq for lead in pending} == {0}


async def test_a_pause_does_not_wait_for_transactions_that_reference_the_campaign(
    postgres_url: str, tmp_path: Path
) -> None:
    """Every attempt row written takes a key-share lock on its campaign (its foreign key)
    until the dispatch round commits. The pause locks the campaign `FOR NO KEY UPDATE`, which
    does not wait for those: a round in flight never delays a pause (docs/architecture.md
    §4). With `FOR UPDATE` this pause would wait for the open transaction below."""
    async with harness(postgres_url, tmp_path, profile=BUSY) as h:
        cid = await agentless(h, 3)
        async with h.rt.db.engine.connect() as conn:
            await conn.begin()
            await conn.exec_driver_sql(
                "SELECT id FROM campaigns WHERE id = $1 FOR KEY SHARE", (cid,)
            )
            result = await asyncio.wait_for(h.service.pause(cid, actor=ADMIN), timeout=30)
            await conn.rollback()
        assert result.changed and result.campaign.state == CampaignState.PAUSED


async def test_a_slot_frees_when_the_carrier_answers_the_pause_still_waits_for_the_id(
    db_url: str, tmp_path: Path
) -> None:
    """A hand-off slot bounds the carrier requests in flight (two here), not the write of a
    carrier id that follows inside the fence section: with those writes held, all six calls
    are placed two at a time. A pause still waits for the writes, then reports all six
    `queued` with their carrier ids (docs/architecture.md §6.5)."""
    async with harness(db_url, tmp_path, profile=BUSY, voice_concurrency=2) as h:
        cid = await agentless(h, 6)
        calls = {"now": 0, "most": 0}
        dial = h.voice.inner.dial

        async def counted(request: object) -> str:
            calls["now"] += 1
            calls["most"] = max(calls["most"], calls["now"])
            try:
                for _ in range(3):
                    await asyncio.sleep(0)  # the others get their turn meanwhile
                return await dial(request)  # type: ignore[arg-type]
            finally:
                calls["now"] -= 1

        h.voice.inner.dial = counted  # type: ignore[method-assign]
        ids = h.rt.engine.dispatcher._carrier_ids
        write, gate = ids._apply, asyncio.Event()

        async def held(items: Any) -> Any:
            await gate.wait()
            return await write(items)

        ids._apply = held  # type: ignore[method-assign]
        tick = asyncio.create_task(h.tick())
        await until(lambda: len(h.voice.dials) == 6, "six calls placed, no carrier id written")
        assert calls["most"] == 2
        pause = asyncio.create_task(h.service.pause(cid, actor=ADMIN))

        async def paused() -> bool:
            return (await h.service.get_campaign(cid)).state == CampaignState.PAUSED

        await until(paused, "the pause is written and waits at the fence")
        assert not pause.done(), "pause returned before the carrier ids were written"
        gate.set()
        result = await pause
        await tick
        assert {a.status for a in result.in_flight} == {"queued"}
        assert len(result.in_flight) == 6 and all(a.carrier_id for a in result.in_flight)
