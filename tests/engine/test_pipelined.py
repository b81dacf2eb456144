"""The engine's own loop writes a round's last results while the next round claims
(docs/architecture.md §6.5): one round behind at most, its leads leased until written, a
write that fails is the next tick's failure, and a stop writes what is left."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from dialer.store.models import Attempt, Lead
from tests.harness import ADMIN, Harness, harness, leads

EMAIL_ONLY = [{"channel": "email", "subject": "Hi {first_name}", "body": "Hello"}]


class Gate:
    """Holds the hand-off results' writes at `gate` (when set), or fails the next one."""

    def __init__(self, h: Harness) -> None:
        self.commit = h.rt.engine.dispatcher._results
        self.apply = self.commit._apply
        self.gate: asyncio.Event | None = None
        self.fail: BaseException | None = None
        self.entered = asyncio.Event()
        self.commit._apply = self  # type: ignore[method-assign]

    async def __call__(self, items: Sequence[Any]) -> Sequence[None]:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail
        return await self.apply(items)


async def statuses(h: Harness) -> list[str]:
    async with h.rt.db.reader() as s:
        return sorted((await s.scalars(select(Attempt.status))).all())


async def mails(h: Harness) -> list[str]:
    new = h.email.root / "new"
    return sorted(p.name for p in new.iterdir()) if new.exists() else []


async def email_campaign(h: Harness, n: int) -> str:
    c = await h.campaign(sequence=EMAIL_ONLY)
    await h.service.leads.add(c.id, leads(n))
    await h.service.start(c.id, actor=ADMIN)
    return str(c.id)


async def test_the_next_round_claims_while_the_last_is_written_one_round_behind(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path, email_batch=2) as h:
        await email_campaign(h, 6)
        gate = Gate(h)
        gate.gate = asyncio.Event()
        first = await h.rt.engine.tick(settle=False)
        assert first.dispatched == 2
        # Sent, not written yet: the leads stay claimed (leased) meanwhile.
        assert len(await mails(h)) == 2
        assert await statuses(h) == ["created", "created"]
        second = asyncio.create_task(h.rt.engine.tick(settle=False))
        while len(await mails(h)) < 4:
            await asyncio.sleep(0.01)
        for _ in range(20):
            await asyncio.sleep(0)
        # The second round went out (other leads: the first round's are still leased) but
        # its tick waits for the first round's write: never two rounds behind.
        assert not second.done()
        async with h.rt.db.reader() as s:
            claimed = (await s.scalars(select(Attempt.lead_id))).all()
        assert len(set(claimed)) == 4
        gate.gate.set()
        assert (await second).dispatched == 2
        await h.rt.engine.dispatcher.settle()
        assert await statuses(h) == ["sent"] * 4


async def test_a_failed_write_is_the_next_ticks_failure_and_nothing_goes_twice(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path, email_batch=2) as h:
        await email_campaign(h, 4)
        gate = Gate(h)
        gate.fail = sa_exc.TimeoutError("QueuePool limit reached, connection timed out")
        await h.rt.engine.tick(settle=False)
        with pytest.raises(sa_exc.TimeoutError):
            await h.rt.engine.tick(settle=False)
        # The second round was written; the first round's leads are still leased (the
        # reconciler takes them over once the lease runs out), not claimed again.
        await h.rt.engine.dispatcher.settle()
        assert await statuses(h) == ["created", "created", "sent", "sent"]
        assert len(await mails(h)) == 4
        async with h.rt.db.reader() as s:
            leased = (
                await s.scalars(select(Lead.id).where(Lead.lease_until > h.clock.now()))
            ).all()
        assert len(leased) == 2
        await h.rt.engine.tick()
        assert len(await mails(h)) == 4


async def test_a_stop_writes_the_last_rounds_results(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, email_batch=3) as h:
        await email_campaign(h, 3)
        gate = Gate(h)
        gate.gate = asyncio.Event()
        await h.rt.engine.tick(settle=False)
        await gate.entered.wait()
        stopping = asyncio.create_task(h.rt.engine.stop(grace=30))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not stopping.done()  # it waits for the write
        gate.gate.set()
        await stopping
        assert await statuses(h) == ["sent"] * 3


async def test_a_plain_tick_returns_with_its_results_written(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, email_batch=3) as h:
        await email_campaign(h, 3)
        await h.rt.engine.tick()
        assert h.rt.engine.dispatcher._writing is None
        assert await statuses(h) == ["sent"] * 3
