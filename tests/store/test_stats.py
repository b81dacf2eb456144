"""Exact campaign figures (dialer.store.stats.campaign_stats) from hand-built rows."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialer.domain.states import AttemptStatus as A
from dialer.domain.states import CampaignState, LeadStatus, StopReason
from dialer.store.db import Database
from dialer.store.migrate import migrate
from dialer.store.models import Attempt, Campaign, Lead
from dialer.store.stats import CallStats, CampaignStats, EmailStats, campaign_stats

NOW = 2_000_000.0
ZERO_LEADS = {s.value: 0 for s in LeadStatus}
_keys = itertools.count()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    try:
        await migrate(database)
        async with database.session() as s:
            s.add_all([campaign("c1"), campaign("c2")])
        yield database
    finally:
        await database.aclose()


def campaign(cid: str) -> Campaign:
    return Campaign(
        id=cid,
        name=cid,
        state=CampaignState.RUNNING,
        version=2,
        config={"name": cid, "sequence": [{"channel": "voice"}]},
        archived=False,
        active_seconds=0.0,
        clock_offset=0.0,
        running_since=NOW - 100,
        dispatched=True,
        created_at=NOW - 200,
        updated_at=NOW - 100,
    )


def lead(campaign_id: str, status: str, stop_reason: str | None = None) -> Lead:
    n = next(_keys)
    return Lead(
        campaign_id=campaign_id,
        phone=f"+1212555{n:04d}",
        email=f"lead{n}@example.com",
        custom={},
        status=status,
        step=0,
        tries=0,
        seq=0,
        due=0.0,
        stop_reason=stop_reason,
        created_at=NOW,
        updated_at=NOW,
    )


def attempt(lead: Lead, channel: str, status: str, **overrides: Any) -> Attempt:
    n = next(_keys)
    values: dict[str, Any] = {
        "campaign_id": lead.campaign_id,
        "lead_id": lead.id,
        "step": 0,
        "try_no": 1,
        "channel": channel,
        "idem_key": f"{lead.campaign_id}:{lead.id}:0:{n}",
        "status": status,
        "rang": False,
        "abandoned": False,
        "campaign_version": 2,
        "history": [{"status": status, "at": NOW}],
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return Attempt(**values)


def call(lead: Lead, status: str, carrier: bool = True, **overrides: Any) -> Attempt:
    carrier_id = f"CA{next(_keys)}" if carrier else None
    return attempt(lead, "voice", status, carrier_id=carrier_id, **overrides)


def answered(lead: Lead, status: str, by: str, duration: float | None, **kw: Any) -> Attempt:
    return call(
        lead, status, rang=True, answered_at=NOW - 100, answered_by=by, duration=duration, **kw
    )


async def add_leads(db: Database, *rows: Lead) -> list[Lead]:
    async with db.session() as s:
        s.add_all(rows)
    return list(rows)


async def add(db: Database, *rows: Attempt) -> None:
    async with db.session() as s:
        s.add_all(rows)


async def stats(db: Database, cid: str = "c1") -> CampaignStats:
    async with db.session() as s:
        c = await s.get(Campaign, cid)
        assert c is not None
        return await campaign_stats(s, c)


async def test_empty_campaign_is_all_zeros(db: Database) -> None:
    assert await stats(db) == CampaignStats("c1", "running", CallStats(), EmailStats(), ZERO_LEADS)


async def test_call_figures(db: Database) -> None:
    [x] = await add_leads(db, lead("c1", LeadStatus.IN_PROGRESS))
    [y] = await add_leads(db, lead("c2", LeadStatus.IN_PROGRESS))
    await add(
        db,
        call(x, A.CREATED, carrier=False),  # live, not yet handed to the carrier
        call(x, A.QUEUED),  # live
        call(x, A.RINGING, rang=True),  # live
        answered(x, A.IN_PROGRESS, "human", None, agent_id="a1"),  # talking: no duration yet
        answered(x, A.COMPLETED, "human", 60.0, agent_id="a1"),
        answered(x, A.COMPLETED, "unknown", 40.0, agent_id="a2"),
        answered(x, A.COMPLETED, "human", 3.0, abandoned=True),
        answered(x, A.COMPLETED, "machine", 20.0),
        answered(x, A.COMPLETED, "unknown", 30.0, abandoned=True),
        call(x, A.NO_ANSWER, rang=True),
        call(x, A.BUSY),
        call(x, A.FAILED, carrier=False, error="carrier refused"),
        call(x, A.CANCELED),
        # Another campaign's calls and this campaign's emails never count as calls.
        answered(y, A.COMPLETED, "human", 500.0, abandoned=True),
        attempt(x, "email", A.SENT),
    )
    assert (await stats(db)).calls == CallStats(
        dialed=11,  # carrier id stored
        received=8,  # rang
        answered=6,
        abandoned=2,
        in_flight=4,
        avg_duration_seconds=50.0,  # talk time of calls connected to an agent: (60 + 40) / 2
        abandon_rate=0.4,  # 2 / 5 answers that were not machines
    )


async def test_call_figures_are_rounded(db: Database) -> None:
    [x] = await add_leads(db, lead("c1", LeadStatus.COMPLETED))
    await add(
        db,
        answered(x, A.COMPLETED, "human", 1.0, agent_id="a1"),
        answered(x, A.COMPLETED, "human", 1.0, agent_id="a1"),
        answered(x, A.COMPLETED, "human", 2.0, agent_id="a2"),
        answered(x, A.COMPLETED, "human", 3.0, abandoned=True),
        answered(x, A.COMPLETED, "human", 4.0, abandoned=True),
    )
    calls = (await stats(db)).calls
    assert (calls.avg_duration_seconds, calls.abandon_rate) == (1.333, 0.4)


async def test_machine_answers_only_give_no_abandon_rate(db: Database) -> None:
    [x] = await add_leads(db, lead("c1", LeadStatus.COMPLETED))
    await add(db, answered(x, A.COMPLETED, "machine", 12.0))
    calls = (await stats(db)).calls
    assert (calls.answered, calls.abandoned, calls.abandon_rate) == (1, 0, 0.0)
    assert calls.avg_duration_seconds == 0.0  # a machine is no talk time


async def test_email_figures(db: Database) -> None:
    [x] = await add_leads(db, lead("c1", LeadStatus.IN_PROGRESS))
    [y] = await add_leads(db, lead("c2", LeadStatus.IN_PROGRESS))
    await add(
        db,
        attempt(x, "email", A.CREATED),  # live
        attempt(x, "email", A.SENT),
        attempt(x, "email", A.SENT),
        attempt(x, "email", A.BOUNCED, carrier_id="<a1.x@example.com>"),  # sent, then bounced
        attempt(x, "email", A.BOUNCED, error="550 no such user"),  # refused at send: not sent
        attempt(x, "email", A.FAILED, error="451 try later"),
        attempt(x, "email", A.SKIPPED),
        attempt(y, "email", A.SENT),
        call(x, A.FAILED),
    )
    assert (await stats(db)).emails == EmailStats(sent=3, failed=1, bounced=2, in_flight=1)


async def test_lead_counts_and_stop_reasons(db: Database) -> None:
    await add_leads(
        db,
        lead("c1", LeadStatus.PENDING),
        lead("c1", LeadStatus.PENDING),
        lead("c1", LeadStatus.IN_PROGRESS),
        lead("c1", LeadStatus.COMPLETED),
        lead("c1", LeadStatus.STOPPED, StopReason.REPLIED),
        lead("c1", LeadStatus.STOPPED, StopReason.UNSUBSCRIBED),
        lead("c1", LeadStatus.STOPPED, StopReason.UNSUBSCRIBED),
        lead("c1", LeadStatus.STOPPED, StopReason.MANUAL),
        lead("c2", LeadStatus.PAUSED),
        lead("c2", LeadStatus.STOPPED, StopReason.REPLIED),
    )
    result = await stats(db)
    assert result.leads == {
        "pending": 2,
        "in_progress": 1,
        "paused": 0,
        "completed": 1,
        "stopped": 4,
        "skipped": 0,
    }
    assert (result.emails.replied, result.emails.unsubscribed) == (1, 2)
    other = await stats(db, "c2")
    assert other.leads == {**ZERO_LEADS, "paused": 1, "stopped": 1}
    assert (other.emails.replied, other.emails.unsubscribed) == (1, 0)
