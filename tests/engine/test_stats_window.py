"""The recent figures predictive pacing reads (engine/stats_window.py), and a predictive
campaign on the whole engine."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from dialer.channels.simulated import Phase, SimProfile
from dialer.domain.states import AgentState, AttemptStatus, CampaignState
from dialer.engine.stats_window import StatsWindow, agent_load
from dialer.store.models import Agent, Attempt
from tests.harness import ADMIN, Harness, harness, leads

DAY = 86400.0
_KEYS = itertools.count(1)


async def _attempts(h: Harness, campaign_id: str, rows: list[dict[str, Any]]) -> None:
    [lead_id] = [x.id for x in (await h.service.leads.page(campaign_id))[0]]
    now = h.clock.now()
    async with h.rt.db.session() as s:
        for i, row in enumerate(rows):
            s.add(
                Attempt(
                    campaign_id=campaign_id,
                    lead_id=lead_id,
                    step=0,
                    try_no=i + 1,
                    channel="voice",
                    idem_key=f"{campaign_id}:{lead_id}:0:{next(_KEYS)}",
                    campaign_version=1,
                    history=[],
                    created_at=row.pop("created_at", now - 100),
                    updated_at=now,
                    **row,
                )
            )


def answered(ring: float, by: str = "human", **row: Any) -> dict[str, Any]:
    created = row.pop("created_at", 1_767_625_200.0 - 100)
    return {
        "status": AttemptStatus.COMPLETED,
        "created_at": created,
        "answered_at": created + ring,
        "answered_by": by,
        **row,
    }


async def test_recent_figures(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(sequence=[{"channel": "voice"}])
        await h.service.leads.add(c.id, leads(1))
        now = h.clock.now()
        await _attempts(
            h,
            c.id,
            [
                # 31 days ago: outside the abandon window, but among the recent dials
                answered(10, created_at=now - 31 * DAY, abandoned=True),
                answered(10, agent_id="a1", duration=60.0),
                answered(20, agent_id="a1", duration=120.0),
                answered(15, abandoned=True),
                answered(5, by="machine"),
                {"status": AttemptStatus.BUSY},
                {"status": AttemptStatus.NO_ANSWER},
                {"status": AttemptStatus.CANCELED},  # ours (a pause): says nothing
                {"status": AttemptStatus.RINGING},  # not resolved yet
            ],
        )
        window = StatsWindow(ttl=5.0)
        async with h.rt.db.reader() as s:
            recent = await window.recent(s, c.id, now)
        assert (recent.answered_humans, recent.abandoned) == (3, 1)
        assert recent.abandon_rate == pytest.approx(1 / 3)
        assert recent.answer_rate == pytest.approx(4 / 7)  # 4 people of 7 resolved dials
        assert recent.mean_ring_seconds == pytest.approx((10 + 10 + 20 + 15 + 5) / 5)
        assert recent.mean_talk_seconds == pytest.approx(90.0)
        # The last N resolved dials only.
        async with h.rt.db.reader() as s:
            last_two = await StatsWindow(recent_attempts=2).recent(s, c.id, now)
        assert last_two.answer_rate == 0.0  # busy, no-answer
        # Cached for `ttl` seconds of clock time.
        await _attempts(h, c.id, [answered(10, abandoned=True) for _ in range(3)])
        async with h.rt.db.reader() as s:
            assert await window.recent(s, c.id, now + 4.9) == recent
            fresh = await window.recent(s, c.id, now + 5.0)
        assert (fresh.answered_humans, fresh.abandoned) == (6, 4)


async def test_agent_load(sqlite_url: str, tmp_path: Path) -> None:
    async with harness(sqlite_url, tmp_path) as h:
        await h.agents("a1", "a2", "a3", "a4")
        now = h.clock.now()
        async with h.rt.db.session() as s:
            for agent_id, state, until in (
                ("a1", AgentState.ON_CALL, None),
                ("a2", AgentState.WRAP_UP, now + 4.0),
                ("a3", AgentState.WRAP_UP, now - 1.0),
                ("a4", AgentState.AVAILABLE, None),
            ):
                agent = await s.get(Agent, agent_id)
                assert agent is not None
                agent.state, agent.wrap_up_until, agent.campaign_id = state, until, "c1"
        async with h.rt.db.reader() as s:
            load = await agent_load(s, "c1", now)
        assert load.on_call == 1
        assert sorted(load.wrap_up_left) == [0.0, 4.0]


async def test_predictive_campaign_runs_to_completion(sqlite_url: str, tmp_path: Path) -> None:
    profile = SimProfile(answer_rate=0.5, ring_mean=8.0, talk_mean=10.0, talk_min=5.0)
    async with harness(sqlite_url, tmp_path, profile=profile) as h:
        await h.agents("a1", "a2", "a3")
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 1}],
            agent_ids=["a1", "a2", "a3"],
            # A lenient cap, so that three agents leave the pacer room to work with.
            pacing={"mode": "predictive", "calls_per_second": 10, "max_abandon_rate": 0.2},
            wrap_up_seconds=2,
        )
        await h.service.leads.add(c.id, leads(100))
        await h.service.start(c.id, actor=ADMIN)
        most_ringing = 0
        for _ in range(2000):
            await h.tick()
            ringing = [x for x in h.sim.record.values() if x.phase in (Phase.QUEUED, Phase.RINGING)]
            most_ringing = max(most_ringing, len(ringing))
            if (await h.service.get_campaign(c.id)).state == CampaignState.COMPLETED:
                break
            await h.advance(1)
        assert (await h.service.get_campaign(c.id)).state == CampaignState.COMPLETED
        stats = await h.service.stats(c.id)
        assert stats.leads["completed"] == 100
        assert stats.calls.dialed == len(h.voice.of(c.id)) == 100
        # Once it had figures, the pacer kept more lines than agents ringing.
        assert most_ringing > 3
