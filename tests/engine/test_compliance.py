"""Compliance on the whole engine (docs/architecture.md §7): calling hours in the lead's local time,
the do-not-call list checked at claim time, 72 h before an abandoned person is called again,
and at least 15 s of ring before a no-answer."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from dialer.channels.base import CallEvent, DialRequest
from dialer.channels.simulated import MIN_RING_TIMEOUT, SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.domain.campaign import VoiceStep
from dialer.domain.states import AttemptStatus, CampaignState, LeadStatus
from dialer.domain.windows import lead_local_open, next_lead_local_open
from dialer.store.models import Attempt, Event, Lead
from tests.harness import ADMIN, MONDAY_10_NY, Harness, harness, leads, phone

# Whole-hour, half-hour and 45-minute offsets, both hemispheres, with and without DST.
ZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # -03:30 / -02:30
    "Pacific/Honolulu",
    "Pacific/Marquesas",  # -09:30
    "Europe/London",
    "Asia/Tehran",  # +03:30
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Asia/Tokyo",
    "Australia/Adelaide",  # +09:30 / +10:30
    "Pacific/Chatham",  # +12:45 / +13:45
)
BUSY = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=1.0, fail_rate=0.0)
HUMANS = SimProfile(answer_rate=1.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)
STEP = 900.0  # virtual seconds between ticks when waiting for hours to open
WEEK = 7 * 86400


def voice_only(**step: Any) -> list[dict[str, Any]]:
    return [{"channel": "voice", "max_attempts": 1, **step}]


def dial_times(h: Harness) -> dict[str, list[float]]:
    """Phone -> when each call to it was handed to the carrier (its `queued` report)."""
    out: dict[str, list[float]] = {}
    for call in h.sim.record.values():
        out.setdefault(call.request.to, []).append(call.timeline[0].at)
    return out


async def _hours_scenario(start: float, zones: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="dialer-hours-") as tmp:
        db = f"sqlite+aiosqlite:///{Path(tmp) / 'd.db'}"
        async with harness(db, Path(tmp), profile=BUSY, start=start) as h:
            c = await h.campaign(
                sequence=voice_only(),
                pacing={"mode": "agentless", "agentless_capacity": 20, "calls_per_second": 50},
            )
            rows = [{"phone": phone(i), "timezone": zone} for i, zone in enumerate(zones)]
            assert (await h.service.leads.add(c.id, rows)).accepted == len(zones)
            await h.service.start(c.id, actor=ADMIN)
            opens = {
                phone(i): next_lead_local_open(zone, datetime.fromtimestamp(start, UTC))
                for i, zone in enumerate(zones)
            }
            for _ in range(int(26 * 3600 / STEP)):
                await h.tick()
                if len(h.sim.record) == len(zones):
                    break
                await h.advance(STEP)
            await h.advance(5)  # let the last calls end
            await h.tick()
            zone_of = {phone(i): zone for i, zone in enumerate(zones)}
            times = dial_times(h)
            for number, zone in zone_of.items():
                [at] = times.get(number, [None])  # every lead dialled, once
                assert at is not None, f"{zone} never dialled"
                when = datetime.fromtimestamp(at, UTC)
                assert lead_local_open(zone, when), f"{zone} dialled at {when.isoformat()}"
                assert at - opens[number].timestamp() < STEP + 1, f"{zone}: late after opening"
            assert (await h.service.get_campaign(c.id)).state == CampaignState.COMPLETED


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.integers(0, WEEK - 1).map(lambda s: MONDAY_10_NY + s),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=4, unique=True),
)
def test_no_call_outside_the_leads_local_hours(start: float, zones: list[str]) -> None:
    """Whatever the time and the zones: never a call outside the lead's local 08:00-21:00,
    and each lead is called once its hours open."""
    asyncio.run(_hours_scenario(start, zones))


async def _lead(h: Harness, lead_id: int) -> Lead:
    lead, _ = await h.service.leads.get(lead_id)
    return lead


async def _lead_ids(h: Harness, campaign_id: str) -> dict[str, int]:
    items, _ = await h.service.leads.page(campaign_id, limit=1000)
    return {str(lead.phone): lead.id for lead in items}


async def _run_to_completion(h: Harness, campaign_id: str, *, step: float = 5.0) -> None:
    for _ in range(2000):
        await h.tick()
        if (await h.service.get_campaign(campaign_id)).state == CampaignState.COMPLETED:
            return
        await h.advance(step)
    raise AssertionError("the campaign did not complete")


async def test_dnc_number_never_dialled_and_its_lead_stopped(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        await h.agents("a1")
        c = await h.campaign(sequence=voice_only(), agent_ids=["a1"])
        await h.service.leads.add(c.id, leads(4))
        listed = await h.service.dnc.add([phone(1), "(212) 555-0003"], reason="asked")
        assert (listed.added, listed.rejected) == (2, [])
        ids = await _lead_ids(h, c.id)
        await h.service.start(c.id, actor=ADMIN)
        await _run_to_completion(h, c.id)
        dialled = {d.to for d in h.voice.of(c.id)}
        assert dialled == {phone(0), phone(2)}
        for number in (phone(1), phone(3)):
            lead = await _lead(h, ids[number])
            assert (lead.status, lead.stop_reason) == (LeadStatus.STOPPED, "dnc")
        async with h.rt.db.reader() as s:
            events = (
                await s.scalars(
                    select(Event).where(Event.type == "lead.state", Event.reason == "dnc")
                )
            ).all()
        assert sorted(int(e.entity_id) for e in events) == sorted([ids[phone(1)], ids[phone(3)]])
        assert all(e.to_state == LeadStatus.STOPPED for e in events)


async def test_number_listed_mid_campaign_is_not_redialled(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path, profile=BUSY) as h:
        await h.agents("a1")
        c = await h.campaign(
            sequence=voice_only(max_attempts=3, retry_delay_seconds=60), agent_ids=["a1"]
        )
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        while not h.voice.of(c.id):
            await h.tick()
            await h.advance(1)
        await h.advance(10)  # busy: a retry is due in 60 s
        await h.service.dnc.add([phone(0)])
        await _run_to_completion(h, c.id, step=20)
        assert len(h.voice.of(c.id)) == 1
        [lead_id] = (await _lead_ids(h, c.id)).values()
        assert (await _lead(h, lead_id)).stop_reason == "dnc"


async def _abandon_one(h: Harness, **step: Any) -> tuple[str, int, float, str]:
    """Two people answer and the campaign's one agent takes the first: the other call is
    abandoned (an agentless campaign's answers are delivered, never abandoned: §7.3).
    Returns the campaign, the abandoned lead, when the abandon happened and its phone."""
    await h.agents("a1")
    c = await h.campaign(
        sequence=voice_only(max_attempts=3, retry_delay_seconds=60, **step),
        pacing={"mode": "power", "lines_per_agent": 2.0, "calls_per_second": 10},
        agent_ids=["a1"],
    )
    await h.service.leads.add(c.id, leads(2))
    await h.service.start(c.id, actor=ADMIN)
    for _ in range(120):
        report = await h.tick()
        if report.abandoned:
            break
        await h.advance(1)
    assert report.abandoned == 1
    async with h.rt.db.reader() as s:
        [lost] = (await s.scalars(select(Attempt).where(Attempt.abandoned.is_(True)))).all()
        lead = await s.get(Lead, lost.lead_id)
    assert lead is not None and lead.phone is not None
    return c.id, lead.id, h.clock.now(), lead.phone


async def _dials_to(h: Harness, phone_: str, until: float, step: float) -> int:
    """Calls to `phone_` handed to the carrier by `until` (ticking the engine meanwhile)."""
    while h.clock.now() < until:
        await h.tick()
        await h.advance(min(step, max(1.0, until - h.clock.now())))
    return len(dial_times(h).get(phone_, []))


@pytest.mark.parametrize("hours", [72.0, 2.0])
async def test_abandoned_lead_waits_before_redial(
    db_url: str, tmp_path: Path, hours: float
) -> None:
    """72 h by default (settings.abandon_redial_hours), then it is called again."""
    settings_: dict[str, Any] = {} if hours == 72.0 else {"abandon_redial_hours": hours}
    async with harness(db_url, tmp_path, profile=HUMANS, **settings_) as h:
        _, lead_id, abandoned_at, lost_phone = await _abandon_one(h)
        await h.advance(10)  # the message plays and the call ends
        await h.tick()
        lead = await _lead(h, lead_id)
        assert lead.not_before is not None
        assert lead.not_before == pytest.approx(abandoned_at + hours * 3600, abs=15)
        # The retry delay is 60 s, but nothing goes out until the wait is over.
        assert await _dials_to(h, lost_phone, lead.not_before - 1, step=6 * 3600) == 1
        await h.advance(1)
        redialled = await _dials_to(h, lost_phone, h.clock.now() + 1800, step=60)
        assert redialled == 2
        # Monday 10:00 in New York + 2 h or + 72 h: inside its calling hours.
        [_, second] = sorted(dial_times(h)[lost_phone])
        assert second >= abandoned_at + hours * 3600 - 15


def test_ring_timeout_below_15_s_is_rejected() -> None:
    with pytest.raises(ValidationError):
        VoiceStep(ring_timeout_seconds=14)
    assert VoiceStep(ring_timeout_seconds=15).ring_timeout_seconds == 15


async def test_simulated_carrier_rings_at_least_15_s() -> None:
    """A request that asks for less still rings 15 s before the no-answer."""
    clock = FakeClock()
    never = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)
    sim = SimulatedVoice(clock, never, seed=3)
    events: list[CallEvent] = []

    async def sink(ev: CallEvent) -> None:
        events.append(ev)

    sim.set_sink(sink)
    await sim.dial(DialRequest("1", "k1", "c", "+12125550100", "+14155550100", 5))
    await clock.run_until_idle()
    at = {ev.status: ev.at for ev in events}
    assert at[AttemptStatus.NO_ANSWER] - at[AttemptStatus.RINGING] >= MIN_RING_TIMEOUT == 15.0


async def test_engine_asks_the_carrier_for_the_steps_ring_time(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with harness(sqlite_url, tmp_path, profile=BUSY) as h:
        await h.agents("a1")
        c = await h.campaign(sequence=voice_only(ring_timeout_seconds=15), agent_ids=["a1"])
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        assert [d.ring_timeout_seconds for d in h.voice.of(c.id)] == [15]


@pytest.mark.parametrize("fraction", [0.1234567, 0.7654321])
async def test_a_lead_whose_hours_are_open_is_dialled_at_any_fraction_of_a_second(
    db_url: str, tmp_path: Path, fraction: float
) -> None:
    """The calling-hours check goes through a datetime (microseconds): a `now` it rounds up
    by a fraction of a microsecond must not hold back a lead whose hours are open."""
    async with harness(db_url, tmp_path, profile=HUMANS) as h:
        c = await h.campaign(
            sequence=voice_only(max_attempts=1),
            pacing={"mode": "agentless", "agentless_capacity": 1, "calls_per_second": 10},
        )
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN)
        await h.advance(fraction)
        await h.tick()
        assert len(h.voice.of(c.id)) == 1
