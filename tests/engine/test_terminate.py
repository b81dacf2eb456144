"""Terminate: a separate, irreversible path with its steps recorded and in-flight work
accounted for exactly (docs/architecture.md §3.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.channels.simulated import SimProfile
from dialer.domain.states import CampaignState
from dialer.errors import InvalidState, ValidationFailed
from tests.harness import ADMIN, harness, leads

RING_OUT = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)


async def test_terminate_a_draft_cancels_it_for_good(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign()
        with pytest.raises(ValidationFailed) as err:
            await h.service.terminate(c.id, confirm="wrong", actor=ADMIN)
        assert err.value.errors[0]["field"] == "confirm"
        result = await h.service.terminate(c.id, confirm=c.id, actor=ADMIN)
        assert result.campaign.state == CampaignState.CANCELLED
        for action in (h.service.start, h.service.resume):
            with pytest.raises(InvalidState) as state:
                await action(c.id, actor=ADMIN)
            assert state.value.state == CampaignState.CANCELLED
        again = await h.service.terminate(c.id, confirm=c.id, actor=ADMIN)
        assert again.campaign.state == CampaignState.CANCELLED  # repeating it is a no-op


async def test_terminate_running_drains_in_flight_then_stops(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=RING_OUT) as h:
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 3, "retry_delay_seconds": 0}],
            pacing={"mode": "agentless", "agentless_capacity": 4, "calls_per_second": 100},
        )
        await h.service.leads.add(c.id, leads(10))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        await h.advance(1)  # four calls ringing at the carrier
        await h.tick()
        ringing = h.voice.of(c.id)
        result = await h.service.terminate(c.id, confirm=c.id, actor=ADMIN)
        assert result.campaign.state == CampaignState.STOPPING
        assert sorted(str(a.id) for a in result.in_flight) == sorted(d.attempt_id for d in ringing)
        assert [s["step"] for s in result.steps] == [
            "terminate.claims_stopped",
            "terminate.queued_cancelled",
            "terminate.agents_released",
            "terminate.in_flight",
        ]
        for _ in range(40):
            await h.advance(1)
            report = await h.tick()
            if report.stopped:
                break
        c = await h.service.get_campaign(c.id)
        assert c.state == CampaignState.STOPPED
        assert h.voice.of(c.id) == ringing, "a call went out after terminate"
        stats = await h.service.stats(c.id)
        assert stats.calls.dialed == len(ringing) == len(h.sim.record)
        assert stats.calls.received == len(ringing) and stats.calls.in_flight == 0
        types = [e.type for e in await h.service.events(c.id)]
        assert types[-5:] == [
            "terminate.claims_stopped",
            "terminate.queued_cancelled",
            "terminate.agents_released",
            "terminate.in_flight",
            "campaign.state",
        ]
        for action in (h.service.start, h.service.resume):
            with pytest.raises(InvalidState):
                await action(c.id, actor=ADMIN)
        with pytest.raises(InvalidState):
            await h.service.pause(c.id, actor=ADMIN)


async def test_completed_campaign_cannot_be_terminated_or_resumed(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(
            sequence=[{"channel": "email", "subject": "s", "body": "b"}], caller_ids=[]
        )
        await h.service.leads.add(c.id, [{"email": "x@example.com"}])
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        await h.tick()
        c = await h.service.get_campaign(c.id)
        assert c.state == CampaignState.COMPLETED
        with pytest.raises(InvalidState):
            await h.service.terminate(c.id, confirm=c.id, actor=ADMIN)
        with pytest.raises(InvalidState):
            await h.service.resume(c.id, actor=ADMIN)
