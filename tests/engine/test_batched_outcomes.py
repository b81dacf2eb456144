"""A burst of carrier reports — late, unordered, twice — is applied in a few transactions
with the same result as one by one (docs/architecture.md §6.4, §6.5)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from sqlalchemy import select

from dialer.channels.base import CallEvent
from dialer.domain.states import AttemptStatus
from dialer.store.models import Attempt, Lead
from tests.engine.test_pause import BUSY, agentless
from tests.harness import harness


async def test_a_burst_of_reports_is_written_in_batches_each_counted_once(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        cid = await agentless(h, 10)
        h.voice.lose_callbacks = True  # the reports below are the carrier's, delivered at once
        await h.tick()
        async with h.rt.db.reader() as s:
            calls = (await s.scalars(select(Attempt).where(Attempt.campaign_id == cid))).all()
        assert len(calls) == 10 and all(a.carrier_id for a in calls)
        at = h.clock.now()
        reports = [
            CallEvent(str(a.id), a.carrier_id or "", status, at + dt)
            for a in calls
            for status, dt in (
                (AttemptStatus.RINGING, 1.0),
                (AttemptStatus.BUSY, 2.0),
                (AttemptStatus.BUSY, 2.0),  # twice
            )
        ]
        random.Random(3).shuffle(reports)  # a `ringing` may come after its `busy`
        outcomes = h.rt.engine.outcomes
        before = outcomes._events.batches
        await asyncio.gather(*(h.rt.engine.on_call_event(ev) for ev in reports))
        written = outcomes._events.batches - before
        assert 1 <= written < len(reports) // 3, written

        async with h.rt.db.reader() as s:
            ended = (await s.scalars(select(Attempt).where(Attempt.campaign_id == cid))).all()
            leads = (await s.scalars(select(Lead).where(Lead.campaign_id == cid))).all()
        assert {a.status for a in ended} == {"busy"}
        assert all(a.rang for a in ended)
        assert [h_["status"] for h_ in ended[0].history].count("busy") == 1
        assert {lead.tries for lead in leads} == {1}  # one try used each, not two
        assert {lead.active_attempt_id for lead in leads} == {None}
        stats = await h.service.stats(cid)
        received = h.rt.metrics.registry.get_sample_value(
            "dialer_calls_received_total", {"campaign": cid}
        )
        assert stats.calls.received == received == 10
