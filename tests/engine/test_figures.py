"""Every figure is right: Prometheus counters equal the database's exact stats, which equal
the carrier's own record of calls."""

from __future__ import annotations

from pathlib import Path

from dialer.channels.simulated import SimProfile
from dialer.domain.states import CampaignState
from tests.harness import ADMIN, harness, leads

MIXED = SimProfile(answer_rate=0.4, machine_rate=0.15, busy_rate=0.15, fail_rate=0.05)


async def test_metrics_equal_stats_equal_carrier_record(db_url: str, tmp_path: Path) -> None:
    async with harness(
        db_url, tmp_path, profile=MIXED, seed=11, time_scale=10, abandon_redial_hours=0.01
    ) as h:
        await h.agents("a1", "a2")
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 30}],
            agent_ids=["a1", "a2"],
            pacing={"mode": "power", "lines_per_agent": 2.0, "calls_per_second": 20},
            wrap_up_seconds=2,
        )
        await h.service.leads.add(c.id, leads(25))
        await h.service.start(c.id, actor=ADMIN)
        for _ in range(2000):
            await h.tick()
            await h.advance(2)
            if (await h.service.get_campaign(c.id)).state == CampaignState.COMPLETED:
                break
        s = await h.service.stats(c.id)
        assert s.state == CampaignState.COMPLETED
        calls = list(h.sim.record.values())
        statuses = [[e.status for e in call.timeline] for call in calls]
        assert s.calls.dialed == len(calls)
        assert s.calls.received == sum(
            1 for t in statuses if {"ringing", "in_progress", "completed"} & set(t)
        )
        assert s.calls.answered == sum(1 for t in statuses if "in_progress" in t)
        assert s.calls.in_flight == 0
        m = h.rt.metrics.registry.get_sample_value
        label = {"campaign": c.id}
        assert m("dialer_calls_dialed_total", label) == s.calls.dialed
        assert m("dialer_calls_received_total", label) == s.calls.received
        answered = sum(
            m("dialer_calls_answered_total", {**label, "answered_by": who}) or 0
            for who in ("human", "machine", "unknown")
        )
        assert answered == s.calls.answered
        assert (m("dialer_calls_abandoned_total", label) or 0) == s.calls.abandoned
        bridged = [call for call in calls if call.bridged_to is not None]
        assert bridged, "no call reached an agent"
        assert m("dialer_call_duration_seconds_count", label) == len(bridged)
        total = m("dialer_call_duration_seconds_sum", label)
        assert total is not None
        assert abs(total / len(bridged) - s.calls.avg_duration_seconds) < 0.01
        assert m("dialer_campaign_state", {**label, "state": "completed"}) == 1
        assert m("dialer_campaign_state", {**label, "state": "running"}) == 0


async def test_due_leads_and_abandon_cap_gauges(tmp_path: Path) -> None:
    async with harness(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", tmp_path) as h:
        c = await h.campaign(
            sequence=[{"channel": "voice"}],
            pacing={"mode": "progressive", "max_abandon_rate": 0.02},
        )
        await h.service.leads.add(c.id, leads(5))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()  # no agent: nothing dialled, five leads due
        m = h.rt.metrics.registry.get_sample_value
        assert m("dialer_campaign_due_leads", {"campaign": c.id}) == 5
        assert m("dialer_campaign_max_abandon_rate", {"campaign": c.id}) == 0.02
        await h.service.pause(c.id, actor=ADMIN)
        await h.advance(16)
        await h.tick()
        assert m("dialer_campaign_due_leads", {"campaign": c.id}) == 0
