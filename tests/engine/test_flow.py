"""A campaign end to end on the engine: dial, bridge, retry, email, complete."""

from __future__ import annotations

from pathlib import Path

from dialer.channels.simulated import SimProfile
from dialer.domain.states import CampaignState
from tests.harness import ADMIN, harness, leads


async def test_campaign_runs_to_completion(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=SimProfile(answer_rate=0.5)) as h:
        await h.agents("a1", "a2", "a3")
        c = await h.campaign(agent_ids=["a1", "a2", "a3"])
        result = await h.service.leads.add(c.id, leads(12))
        assert result.accepted == 12 and result.rejected == []
        await h.service.start(c.id, actor=ADMIN)
        for _ in range(20000):
            await h.tick()
            await h.advance(5)
            c = await h.service.get_campaign(c.id)
            if c.state == CampaignState.COMPLETED:
                break
        assert c.state == CampaignState.COMPLETED
        stats = await h.service.stats(c.id)
        record = list(h.sim.record.values())
        assert stats.calls.dialed == len(record)
        assert stats.leads["completed"] == 12
        assert stats.emails.sent == 12
        assert stats.calls.in_flight == 0
        answered = [
            call for call in record if any(e.status == "in_progress" for e in call.timeline)
        ]
        assert stats.calls.answered == len(answered)
