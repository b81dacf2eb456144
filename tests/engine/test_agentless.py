"""Agentless campaigns: a call a person answers plays the campaign's message and counts as
`delivered`, never abandoned (docs/architecture.md §7.3); metrics agree with the stats."""

from __future__ import annotations

from pathlib import Path

from dialer.channels.simulated import SimProfile
from dialer.domain.states import CampaignState
from dialer.store import attempts as attempt_store
from tests.harness import ADMIN, harness, leads

HUMANS_AND_MACHINES = SimProfile(answer_rate=0.6, machine_rate=0.2, busy_rate=0.1, fail_rate=0.0)


async def test_agentless_answers_are_delivered_not_abandoned(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=HUMANS_AND_MACHINES, seed=5) as h:
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 1}],
            pacing={"mode": "agentless", "agentless_capacity": 4, "calls_per_second": 20},
            custom={"message": "Your appointment is tomorrow at 10."},
        )
        await h.service.leads.add(c.id, leads(20))
        await h.service.start(c.id, actor=ADMIN)
        for _ in range(500):
            await h.tick()
            await h.advance(5)
            if (await h.service.get_campaign(c.id)).state == CampaignState.COMPLETED:
                break
        s = await h.service.stats(c.id)
        assert s.state == CampaignState.COMPLETED
        calls = list(h.sim.record.values())
        humans = [call for call in calls if call.outcome == "human"]
        assert len(humans) >= 5
        assert s.calls.delivered == len(humans)
        assert s.calls.abandoned == 0 and s.calls.abandon_rate == 0.0
        # Each person heard the message: the carrier hung up with it, nobody was bridged.
        assert all(call.bridged_to is None for call in calls)
        assert all(
            call.timeline[-1].duration_seconds == h.sim.profile.message_seconds for call in humans
        )
        m = h.rt.metrics.registry.get_sample_value
        label = {"campaign": c.id}
        assert (m("dialer_calls_abandoned_total", label) or 0) == 0
        assert m("dialer_calls_answered_total", {**label, "answered_by": "human"}) == len(humans)
        assert s.calls.answered == sum(1 for call in calls if call.outcome in ("human", "machine"))
        # The pacing input's abandon window counts no delivery as a live answer.
        async with h.rt.db.session() as session:
            assert await attempt_store.human_answers(session, c.id, 0.0) == (0, 0)


async def test_a_campaign_with_agents_still_abandons(db_url: str, tmp_path: Path) -> None:
    """The same calls in a progressive campaign whose agent is busy: abandoned as before."""
    human = SimProfile(answer_rate=1.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)
    async with harness(db_url, tmp_path, profile=human, seed=5) as h:
        await h.agents("a1")
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 1}],
            pacing={"mode": "power", "lines_per_agent": 3.0, "calls_per_second": 20},
            agent_ids=["a1"],
        )
        await h.service.leads.add(c.id, leads(3))
        await h.service.start(c.id, actor=ADMIN)
        await h.run(60)
        s = await h.service.stats(c.id)
        assert s.calls.delivered == 0
        assert s.calls.abandoned >= 1
