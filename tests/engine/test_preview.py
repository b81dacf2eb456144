"""Preview mode (docs/architecture.md §3.4): the engine never dials on its own; an agent's
dial claims exactly its lead, reserves the agent and goes through the pause fence."""

from __future__ import annotations

from pathlib import Path

from dialer.channels.simulated import SimProfile
from dialer.domain.states import AgentState
from dialer.store import agents as agent_store
from dialer.store import attempts as attempt_store
from tests.harness import ADMIN, Harness, harness, leads

HUMAN = SimProfile(answer_rate=1.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)
BUSY = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=1.0, fail_rate=0.0)


async def preview_campaign(h: Harness, n: int = 3) -> str:
    await h.agents("a1", "a2")
    c = await h.campaign(
        sequence=[{"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 60}],
        pacing={"mode": "preview"},
        agent_ids=["a1", "a2"],
    )
    await h.service.leads.add(c.id, leads(n))
    await h.service.start(c.id, actor=ADMIN)
    await h.run(10)
    assert h.sim.record == {}  # nothing dialled by the engine
    return str(c.id)


async def agent_state(h: Harness, agent_id: str) -> tuple[str, int | None]:
    async with h.rt.db.session() as s:
        agent = await agent_store.get(s, agent_id)
        assert agent is not None
        return agent.state, agent.attempt_id


async def test_preview_call_is_bridged_to_the_agent_that_dialled(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path, profile=HUMAN) as h:
        cid = await preview_campaign(h)
        q = await h.service.agents.queue("a2")
        assert q.preview is not None
        lead_id = q.preview.id
        dispatcher = h.rt.engine.dispatcher
        attempt_id = await dispatcher.dial_preview(cid, lead_id, "a2", actor="agent:a2")
        assert attempt_id is not None
        assert await agent_state(h, "a2") == (AgentState.RESERVED, attempt_id)
        # The same lead cannot be dialled twice (claimed), nor by a busy agent.
        assert await dispatcher.dial_preview(cid, lead_id, "a1", actor="agent:a1") is None
        assert await dispatcher.dial_preview(cid, lead_id + 1, "a2", actor="agent:a2") is None
        await h.run(60)
        (call,) = h.sim.record.values()
        assert call.bridged_to == "a2"  # a1 was free too, and longer: the dialler takes it
        async with h.rt.db.session() as s:
            a = await attempt_store.get(s, attempt_id)
            assert a is not None and a.agent_id == "a2" and a.lead_id == lead_id


async def test_unanswered_preview_call_frees_the_agent(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        cid = await preview_campaign(h)
        q = await h.service.agents.queue("a1")
        assert q.preview is not None
        attempt_id = await h.rt.engine.dispatcher.dial_preview(
            cid, q.preview.id, "a1", actor="agent:a1"
        )
        assert attempt_id is not None
        await h.run(30)
        assert await agent_state(h, "a1") == (AgentState.AVAILABLE, None)
        assert len(h.sim.record) == 1  # the busy lead waits for its retry, not redialled


async def test_fenced_preview_dial_frees_the_agent(db_url: str, tmp_path: Path) -> None:
    """The claim passed, then this process's fence refuses the hand-off (a pause it has
    seen): nothing reaches the carrier, the attempt is gone and the agent is free."""
    async with harness(db_url, tmp_path, profile=HUMAN) as h:
        cid = await preview_campaign(h)
        q = await h.service.agents.queue("a1")
        assert q.preview is not None
        c = await h.service.get_campaign(cid)
        # The control message of a pause reached this process before the database's row
        # (another API node paused it): the fence's view is newer than what the claim read.
        h.rt.engine.d.fence.see(cid, "paused", c.version + 1)
        placed = await h.rt.engine.dispatcher.dial_preview(
            cid, q.preview.id, "a1", actor="agent:a1"
        )
        assert placed is None and h.sim.record == {}
        assert await agent_state(h, "a1") == (AgentState.AVAILABLE, None)
        q = await h.service.agents.queue("a1")
        assert q.preview is not None  # the lead is offered again
