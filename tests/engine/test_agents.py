"""Agents: engaged with one campaign at a time, released by a pause (on-call ones after
wrap-up), then free to serve another campaign they are assigned to (docs/architecture.md §3.4)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from dialer.channels.simulated import SimProfile
from dialer.domain.states import AgentState, CampaignState
from dialer.store.models import Attempt
from dialer.usecases.agents import AgentFigures, occupancy
from tests.harness import ADMIN, Harness, harness, leads

ANSWER = SimProfile(
    answer_rate=1.0,
    machine_rate=0.0,
    busy_rate=0.0,
    fail_rate=0.0,
    ring_mean=4.0,
    ring_min=3.0,
    talk_mean=300.0,
    talk_min=200.0,
)


async def agents_by_id(h: Harness) -> dict[str, tuple[str, str | None]]:
    return {a.id: (a.state, a.campaign_id) for a in await h.service.agents.all()}


async def test_pause_releases_agents_to_another_campaign(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=ANSWER) as h:
        await h.agents("a1", "a2")
        voice = [{"channel": "voice", "max_attempts": 1}]
        first = await h.campaign(name="First", sequence=voice, agent_ids=["a1", "a2"])
        second = await h.campaign(name="Second", sequence=voice, agent_ids=["a1", "a2"])
        await h.service.leads.add(first.id, leads(1))
        await h.service.leads.add(second.id, leads(5, start=100))
        await h.service.start(first.id, actor=ADMIN)
        await h.tick()  # both engaged with the first campaign; one call placed (one lead)
        assert await agents_by_id(h) == {
            "a1": (AgentState.AVAILABLE, first.id),
            "a2": (AgentState.AVAILABLE, first.id),
        }
        await h.service.start(second.id, actor=ADMIN)
        await h.advance(10)  # answered, bridged to an agent
        await h.tick()
        states = await agents_by_id(h)
        on_call = [a for a, (state, _) in states.items() if state == AgentState.ON_CALL]
        assert len(on_call) == 1
        idle = "a2" if on_call == ["a1"] else "a1"

        result = await h.service.pause(first.id, actor=ADMIN)
        assert result.released_agents == [idle]
        queue = await h.service.agents.queue(idle)
        assert queue.campaign_id is None and queue.upcoming == []
        await h.tick()  # the released agent serves the second campaign
        assert (await agents_by_id(h))[idle][1] == second.id
        assert (await agents_by_id(h))[on_call[0]] == (AgentState.ON_CALL, first.id)

        await h.advance(400)  # the call ends; wrap-up runs (5 s)
        await h.tick()
        await h.advance(6)
        await h.tick()
        await h.tick()
        _, campaign = (await agents_by_id(h))[on_call[0]]
        assert campaign == second.id, "on-call agent not released after wrap-up"
        stats = await h.service.stats(first.id)
        assert stats.calls.answered == 1 and stats.calls.abandoned == 0


async def test_agent_held_for_a_ringing_call_of_a_paused_campaign(
    db_url: str, tmp_path: Path
) -> None:
    """A call ringing at pause time is not cut; if it is answered, an agent held for it
    takes it, so the pause never abandons it."""
    async with harness(db_url, tmp_path, profile=ANSWER) as h:
        await h.agents("a1")
        c = await h.campaign(sequence=[{"channel": "voice", "max_attempts": 1}], agent_ids=["a1"])
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        await h.advance(1)  # out of the carrier queue: ringing
        result = await h.service.pause(c.id, actor=ADMIN)
        assert result.released_agents == []
        assert await agents_by_id(h) == {"a1": (AgentState.RESERVED, c.id)}
        await h.advance(10)  # answered
        await h.tick()
        assert await agents_by_id(h) == {"a1": (AgentState.ON_CALL, c.id)}
        stats = await h.service.stats(c.id)
        assert stats.calls.answered == 1 and stats.calls.abandoned == 0


async def test_answer_without_a_free_agent_is_abandoned_after_two_seconds(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path, profile=ANSWER) as h:
        await h.agents("a1")
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 60}],
            agent_ids=["a1"],
            pacing={"mode": "power", "lines_per_agent": 3.0, "calls_per_second": 10},
        )
        await h.service.leads.add(c.id, leads(3))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()  # three lines for one agent
        for _ in range(40):  # 20 s in half-second steps
            await h.advance(0.5)
            await h.tick()
            async with h.rt.db.session() as s:
                for a in (await s.scalars(select(Attempt))).all():
                    if a.abandoned:  # never before the two seconds of grace ran out
                        assert a.answered_at is not None
                        assert h.clock.now() - a.answered_at >= 2.0
        stats = await h.service.stats(c.id)
        assert stats.calls.answered == 3
        assert stats.calls.abandoned == 2
        assert stats.calls.abandon_rate == round(2 / 3, 4)
        m = h.rt.metrics.registry.get_sample_value
        assert m("dialer_calls_abandoned_total", {"campaign": c.id}) == 2
        assert m("dialer_calls_answered_total", {"campaign": c.id, "answered_by": "human"}) == 3


async def test_offline_agent_is_never_engaged(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=ANSWER) as h:
        await h.agents("a1", state=AgentState.OFFLINE)
        c = await h.campaign(sequence=[{"channel": "voice"}], agent_ids=["a1"])
        await h.service.leads.add(c.id, leads(2))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        assert h.voice.dials == []
        await h.service.agents.set_state("a1", "available", actor="agent:a1")
        await h.tick()
        assert len(h.voice.dials) == 1  # progressive: one line for one free agent
        assert (await h.service.get_campaign(c.id)).state == CampaignState.RUNNING


async def agent_row(h: Harness, agent_id: str) -> tuple[str, str | None, int | None, int]:
    a = await h.service.agents.get(agent_id)
    return a.state, a.campaign_id, a.attempt_id, a.version


async def test_forced_agent_is_not_moved_by_the_end_of_its_old_call(
    db_url: str, tmp_path: Path
) -> None:
    """A supervisor forces an agent on a live call back to `available` (docs/architecture.md
    §2.4): it stays engaged with the running campaign and takes its next call; the old call
    goes on to its end at the carrier, and that end moves neither the agent nor its new call."""
    async with harness(db_url, tmp_path, profile=ANSWER) as h:
        await h.agents("a1")
        c = await h.campaign(
            sequence=[{"channel": "voice", "max_attempts": 1}],
            agent_ids=["a1"],
            pacing={"mode": "progressive", "lines_per_agent": 1.0},
        )
        await h.service.leads.add(c.id, leads(2))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()  # one line for one agent
        await h.advance(10)  # answered
        await h.tick()
        first = h.voice.of(c.id)[0]
        assert (await agent_row(h, "a1"))[:3] == (AgentState.ON_CALL, c.id, int(first.attempt_id))

        agent = await h.service.agents.set_state(
            "a1", "available", actor="supervisor:sam", force=True, reason="stuck"
        )
        assert (agent.state, agent.campaign_id, agent.attempt_id) == ("available", c.id, None)
        await h.tick()  # a free agent again: the second lead is dialled
        await h.advance(10)
        await h.tick()
        dials = h.voice.of(c.id)
        assert len(dials) == 2
        second = int(dials[1].attempt_id)
        held = await agent_row(h, "a1")
        assert held[:3] == (AgentState.ON_CALL, c.id, second)

        # The first call ends at the carrier (the party hangs up): the outcome is applied,
        # and the agent, who no longer holds that attempt, stays on its second call.
        async with h.rt.db.session() as s:
            row = await s.get(Attempt, int(first.attempt_id))
            assert row is not None and row.carrier_id is not None
        await h.sim.hangup(row.carrier_id)
        await h.advance(1)
        await h.tick()
        async with h.rt.db.session() as s:
            old = await s.get(Attempt, int(first.attempt_id))
            assert old is not None and old.status == "completed" and old.agent_id == "a1"
        assert await agent_row(h, "a1") == held
        stats = await h.service.stats(c.id)
        assert stats.calls.answered == 2 and stats.calls.abandoned == 0

        events = await h.service.events(c.id, entity="agent")
        forced = [e for e in events if e.type == "agent.forced"]
        assert len(forced) == 1
        assert (forced[0].actor, forced[0].from_state, forced[0].to_state) == (
            "supervisor:sam",
            "on_call",
            "available",
        )
        assert forced[0].reason == "stuck" and forced[0].data["attempt_id"] == first.attempt_id
        assert forced[0].data["released"] is False


async def test_forced_offline_releases_a_held_agent_for_good(db_url: str, tmp_path: Path) -> None:
    """An agent held `reserved` for a ringing call of a paused campaign is forced offline:
    it is released, and neither the answer of that call nor the engine's release of the
    paused campaign brings it back."""
    async with harness(db_url, tmp_path, profile=ANSWER) as h:
        await h.agents("a1")
        c = await h.campaign(sequence=[{"channel": "voice", "max_attempts": 1}], agent_ids=["a1"])
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        await h.advance(1)  # ringing
        await h.service.pause(c.id, actor=ADMIN)
        assert await agents_by_id(h) == {"a1": (AgentState.RESERVED, c.id)}
        await h.service.agents.set_state("a1", "offline", actor="supervisor:sam", force=True)
        assert await agents_by_id(h) == {"a1": (AgentState.OFFLINE, None)}
        version = (await agent_row(h, "a1"))[3]
        for _ in range(20):  # answered with nobody to take it: abandoned, never bridged
            await h.advance(1)
            await h.tick()
        assert await agent_row(h, "a1") == (AgentState.OFFLINE, None, None, version)
        stats = await h.service.stats(c.id)
        assert stats.calls.answered == 1 and stats.calls.abandoned == 1
        # Forcing again changes nothing and records nothing.
        await h.service.agents.set_state("a1", "offline", actor="supervisor:sam", force=True)
        assert (await agent_row(h, "a1"))[3] == version
        events = await h.service.events(c.id, entity="agent")
        assert [e.type for e in events].count("agent.forced") == 1


def test_occupancy_is_busy_time_over_logged_in_time() -> None:
    # Offline until 100, available to 200, on a call to 500, wrap-up to 600, break to 700,
    # available to 1000: busy 400 of 800 logged in (the break does not count).
    changes = [
        (100.0, "available"),
        (200.0, "on_call"),
        (500.0, "wrap_up"),
        (600.0, "break"),
        (700.0, "available"),
    ]
    assert occupancy("offline", changes, 0.0, 1000.0) == 0.5
    assert occupancy("offline", [], 0.0, 1000.0) == 0.0
    assert occupancy("on_call", [], 0.0, 10.0) == 1.0


async def test_agent_figures_count_todays_calls_and_talk(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=ANSWER) as h:
        await h.agents("a1", "a2")
        voice = [{"channel": "voice", "max_attempts": 1}]
        c = await h.campaign(sequence=voice, agent_ids=["a1"])
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        await h.advance(10)  # answered, bridged to a1
        await h.tick()
        await h.advance(400)  # the call ends; 5 s of wrap-up
        await h.tick()
        await h.advance(6)
        await h.tick()
        await h.advance(300)
        agents = await h.service.agents.all()
        figures = await h.service.agents.figures(agents)
        (lead,), _ = await h.service.leads.page(c.id)
        (attempt,) = (await h.service.leads.get(lead.id))[1]
        assert attempt.agent_id == "a1" and attempt.duration
        assert figures["a1"].calls_handled == 1
        assert figures["a1"].talk_seconds == round(attempt.duration, 1)
        assert 0.2 < figures["a1"].occupancy < 0.8
        assert figures["a2"] == AgentFigures(0, 0.0, 0.0)  # available all along, no call
