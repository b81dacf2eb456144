"""End to end through the real `twilio` SDK against the fake Twilio on loopback.

One FakeClock drives both sides: the engine (ticked by the test) and the fake's calls, whose
signed webhooks reach the app's real HTTP server at `public_base_url`. Every figure the API
and Prometheus report is compared with the fake's own record of the calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from dialer.channels.maildir import MaildirEmail
from dialer.channels.twilio import TwilioVoice
from dialer.clock import FakeClock
from dialer.domain.states import AgentState
from dialer.store.models import Attempt, Lead
from tests.api.conftest import AppClient
from tests.conftest import free_port
from tests.fakes.twilio_server import FakeCall, FakeTwilio
from tests.harness import MONDAY_10_NY, ClientFactory, app, leads, sqlite_url

AGENTS = [f"a{i}" for i in range(1, 6)]
# Lead i's calls, in order (the last repeats): humans, machines, retried busy / no-answer.
SCRIPTS = [["human"], ["machine"], ["busy", "human"], ["no-answer", "human"], ["failed"]]


@dataclass
class Rig(AppClient):
    fake: FakeTwilio
    campaign: str = ""

    async def run(self, seconds: float, step: float = 2.0) -> None:
        """Tick the engine every `step` seconds of virtual time (the fake runs in between)."""
        await super().run(seconds, step)

    async def run_until_state(self, *states: str, limit: float = 3600) -> None:
        for _ in range(int(limit / 20)):
            if (await self.call("GET", f"/api/v1/campaigns/{self.campaign}"))[1]["state"] in states:
                return
            await self.run(20)
        pytest.fail(f"campaign never reached {states}")

    async def start(self, n: int, *, lines: float = 1.0, cps: float = 50) -> None:
        body = {
            "name": "Twilio e2e",
            "sequence": [
                {
                    "channel": "voice",
                    "max_attempts": 3,
                    "retry_delay_seconds": 60,
                    "ring_timeout_seconds": 20,
                }
            ],
            "caller_ids": ["+14155550100", "+14155550101"],
            "agent_ids": AGENTS,
            "wrap_up_seconds": 5,
            "pacing": {"mode": "progressive", "lines_per_agent": lines, "calls_per_second": cps},
        }
        status, out = await self.call("POST", "/api/v1/campaigns", json=body)
        assert status == 201, out
        self.campaign = out["id"]
        people = leads(n)
        for i, lead in enumerate(people):
            for outcome in SCRIPTS[i % len(SCRIPTS)]:
                self.fake.script(lead["phone"], outcome, ring_seconds=5, talk_seconds=30)
        status, out = await self.call(
            "POST", f"/api/v1/campaigns/{self.campaign}/leads", json={"leads": people}
        )
        assert status == 200 and out["accepted"] == n, out
        assert (await self.call("POST", f"/api/v1/campaigns/{self.campaign}/start"))[0] == 200

    def customer_calls(self) -> list[FakeCall]:
        return [c for c in self.fake.calls.values() if not c.agent_leg]

    async def attempts(self) -> dict[str, Attempt]:
        async with self.runtime.db.reader() as s:
            rows = (await s.scalars(select(Attempt).where(Attempt.carrier_id.is_not(None)))).all()
            return {a.carrier_id or "": a for a in rows}

    async def metrics(self) -> dict[str, float]:
        resp = await self.client.get("/metrics")
        out: Counter[str] = Counter()
        for family in text_string_to_metric_families(await resp.text()):
            for sample in family.samples:
                if sample.labels.get("campaign") == self.campaign:
                    out[sample.name] += sample.value
        return dict(out)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(aiohttp_client: ClientFactory, tmp_path: Path) -> AsyncIterator[RigFactory]:
    fakes: list[FakeTwilio] = []

    async def make(name: str = "e2e", account_cps: float = 100.0, **fake_options: Any) -> Rig:
        clock = FakeClock(MONDAY_10_NY)
        fake = FakeTwilio(clock, **fake_options)
        fakes.append(fake)
        api_base = await fake.start()
        port = free_port()  # the app's own URL is the public base URL the fake calls
        dialer = app(
            sqlite_url(tmp_path, name),
            name,
            clock,
            email=MaildirEmail(tmp_path / f"{name}-maildir", clock),
            voice_provider="twilio",
            twilio_account_sid=fake.account_sid,
            twilio_auth_token=fake.auth_token,
            twilio_api_base=api_base,
            public_base_url=f"http://127.0.0.1:{port}",
            # Set above the fake's real CPS by default, so calls queue at "Twilio" and the
            # tests can see pause and terminate cancel them there.
            twilio_calls_per_second=account_cps,
        )
        rig = Rig(await aiohttp_client(dialer, server_kwargs={"port": port}), clock, fake)
        assert isinstance(rig.runtime.engine.d.voice, TwilioVoice)  # chosen by make_voice
        for agent in AGENTS:
            await rig.service.agents.create(agent.upper(), agent_id=agent, state="available")
        return rig

    yield make
    for fake in fakes:
        await fake.close()


async def finish(rig: Rig, n: int) -> dict[str, Any]:
    await rig.start(n)
    await rig.run_until_state("completed")
    await rig.run(20)  # late callbacks, wrap-ups
    status, stats = await rig.call("GET", f"/api/v1/campaigns/{rig.campaign}/stats")
    assert status == 200
    return dict(stats)


async def test_a_campaign_runs_to_completion_and_figures_match_the_carrier(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(calls_per_second=5)
    stats = await finish(rig, 50)
    customers = rig.customer_calls()
    attempts = await rig.attempts()
    message = rig.runtime.engine.abandon_message
    assert stats["leads"]["completed"] == 50
    assert all(c.final for c in rig.fake.calls.values())

    answered = [c for c in customers if "in-progress" in c.history]
    rang = [c for c in customers if "ringing" in c.history]
    calls = stats["calls"]
    assert calls["dialed"] == len(customers) == len(attempts)
    assert calls["received"] == len(rang)
    assert calls["answered"] == len(answered)
    assert (calls["abandoned"], calls["in_flight"]) == (0, 0)
    metrics = await rig.metrics()
    assert metrics["dialer_calls_dialed_total"] == len(customers)
    assert metrics["dialer_calls_received_total"] == len(rang)
    assert metrics["dialer_calls_answered_total"] == len(answered)
    assert metrics.get("dialer_calls_abandoned_total", 0) == 0
    bridged = [c for c in answered if attempts[c.sid].agent_id is not None]
    assert metrics["dialer_call_duration_seconds_count"] == len(bridged)
    assert metrics["dialer_call_duration_seconds_sum"] == sum(c.duration or 0 for c in bridged)

    for c in customers:
        a = attempts[c.sid]
        assert a.status == c.status.replace("-", "_")
        assert c.params["Timeout"] == "20" and c.params["MachineDetection"] == "DetectMessageEnd"
        if c.outcome == "human":  # bridged: the agent's client joined the same conference
            assert a.agent_id in AGENTS and c.agent_legs == [f"client:{a.agent_id}"]
            assert c.conference == f"dialer-{c.sid}" and a.answered_by == "human"
        if c.outcome == "machine":  # the message, then hung up
            assert a.answered_by == "machine" and f"<Say>{message}</Say>" in (c.twiml or "")
    by_number = Counter(c.to for c in customers)
    for i, lead in enumerate(leads(50)):
        # Machines and carrier failures are retried up to max_attempts; busy and no-answer
        # once, before the human answers.
        tries = {0: 1, 1: 3, 2: 2, 3: 2, 4: 3}[i % len(SCRIPTS)]
        assert by_number[lead["phone"]] == tries, (i, lead["phone"])


async def pause_or_terminate(rig: Rig, action: str) -> dict[str, Any]:
    """Dial 5 (CPS 1 at the fake: 2 ringing, 3 queued), then pause or terminate."""
    await rig.start(20)
    await rig.runtime.engine.tick()
    await rig.clock.advance(1.5)
    assert [c.status for c in rig.customer_calls()] == ["ringing"] * 2 + ["queued"] * 3
    body = {"confirm": rig.campaign} if action == "terminate" else {}
    status, out = await rig.call("POST", f"/api/v1/campaigns/{rig.campaign}/{action}", json=body)
    assert status in (200, 202), out
    created = len(rig.customer_calls())
    ringing, queued = rig.customer_calls()[:2], rig.customer_calls()[2:]
    assert all(c.history == ["queued", "canceled"] for c in queued)  # cancelled, never rang
    assert all(c.status == "ringing" for c in ringing)  # not cut
    await rig.run(120)
    assert len(rig.customer_calls()) == created  # zero new calls after the response
    assert all(c.status == "completed" and "in-progress" in c.history for c in ringing)
    status, agents = await rig.call("GET", "/api/v1/agents")
    assert {a["state"] for a in agents["items"]} <= {
        AgentState.AVAILABLE,
        AgentState.WRAP_UP,
    }
    assert all(a["campaign_id"] is None for a in agents["items"])  # released
    status, stats = await rig.call("GET", f"/api/v1/campaigns/{rig.campaign}/stats")
    assert stats["calls"]["dialed"] == 5 and stats["calls"]["in_flight"] == 0
    return dict(out)


async def test_pause_cancels_calls_queued_at_twilio_and_places_no_more(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(calls_per_second=1)
    await pause_or_terminate(rig, "pause")
    _, campaign = await rig.call("GET", f"/api/v1/campaigns/{rig.campaign}")
    assert campaign["state"] == "paused"


async def test_terminate_cancels_queued_calls_and_is_irreversible(make_rig: RigFactory) -> None:
    rig = await make_rig(calls_per_second=1)
    await pause_or_terminate(rig, "terminate")
    await rig.run_until_state("stopped", limit=120)
    for action in ("resume", "start", "pause"):
        status, out = await rig.call("POST", f"/api/v1/campaigns/{rig.campaign}/{action}")
        assert status == 409 and out["error"]["details"]["state"] == "stopped", action
    await rig.run(60)
    assert len(rig.customer_calls()) == 5


async def final_state(rig: Rig) -> tuple[Any, ...]:
    stats = await finish(rig, 25)
    async with rig.runtime.db.reader() as s:
        people = {lead.id: lead for lead in (await s.scalars(select(Lead))).all()}
        rows = (await s.scalars(select(Attempt).order_by(Attempt.id))).all()
    per_lead: dict[str, list[tuple[Any, ...]]] = {}
    for a in rows:
        # Humans are bridged either way. A machine may be bridged for a moment when Twilio
        # reports the answer before the AMD result (ordered), not when AMD comes first.
        bridged = a.agent_id is not None if a.answered_by != "machine" else None
        per_lead.setdefault(people[a.lead_id].phone, []).append(
            (a.status, a.rang, a.answered_by, a.abandoned, bridged)
        )
    leads_out = {p.phone: (p.status, p.step) for p in people.values()}
    calls = {k: v for k, v in stats["calls"].items() if k != "avg_duration_seconds"}
    return calls, stats["leads"], per_lead, leads_out


async def test_shuffled_and_duplicated_callbacks_give_the_ordered_final_state(
    make_rig: RigFactory,
) -> None:
    ordered = await make_rig("ordered", calls_per_second=5)
    messy = await make_rig("messy", calls_per_second=5, shuffle=True, duplicate_rate=0.5)
    expected = await final_state(ordered)
    assert await final_state(messy) == expected
    delivered = Counter((cb.call_sid, cb.params["SequenceNumber"]) for cb in messy.fake.callbacks)
    assert max(delivered.values()) == 2  # some really were duplicated


async def test_the_account_cps_caps_every_campaign(make_rig: RigFactory) -> None:
    """With the account's real limit configured, dialer hands Twilio no more than it takes:
    nothing piles up in Twilio's queue."""
    rig = await make_rig("capped", account_cps=1, calls_per_second=1)
    await rig.start(20)
    await rig.runtime.engine.tick()
    assert len(rig.customer_calls()) == 1
    await rig.clock.advance(1)
    await rig.runtime.engine.tick()
    assert len(rig.customer_calls()) == 2
    assert [c.status for c in rig.customer_calls()].count("queued") <= 1
