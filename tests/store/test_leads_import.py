"""Lead import and paging (Service.leads) on a whole dialer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialer.domain.states import CampaignState, LeadStatus
from dialer.errors import InvalidState, NotFound, ValidationFailed
from dialer.store.models import Campaign, Lead
from tests.harness import ADMIN, Harness, harness, leads


@pytest.fixture
async def h(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with harness(db_url, tmp_path) as h:
        yield h


def fields(result: Any) -> dict[int, list[str]]:
    """Rejected rows as {row number: [field, …]}."""
    return {r["row"]: [e["field"] for e in r["errors"]] for r in result.rejected}


async def all_leads(h: Harness, campaign_id: str) -> list[Lead]:
    items, cursor = await h.service.leads.page(campaign_id, limit=1000)
    assert cursor is None
    return list(items)


def good(i: int, **overrides: Any) -> dict[str, Any]:
    row = leads(1, start=i)[0]
    row.update(overrides)
    return row


async def test_good_rows_kept_bad_rows_reported(h: Harness) -> None:
    c = await h.campaign()
    rows = [
        good(1),
        good(2, phone="12345"),
        good(3, email=None),
        good(4, timezone="Mars/Olympus_Mons"),
        good(5, favourite_colour="blue"),
        good(6),
        good(7, phone="(212) 555-0001"),  # row 1's phone, written differently
        good(8, email="lead6@EXAMPLE.com"),  # row 6's email; domains are case-insensitive
        good(9, phone=""),
        good(10, email="not-an-email"),
    ]
    result = await h.service.leads.add(c.id, rows)
    assert result.accepted == 2
    assert fields(result) == {
        2: ["phone"],
        3: ["email"],
        4: ["timezone"],
        5: ["favourite_colour"],
        7: ["phone"],
        8: ["email"],
        9: ["phone"],
        10: ["email"],
    }
    dups = {r["row"]: r["errors"][0]["message"] for r in result.rejected if r["row"] in (7, 8)}
    assert all("duplicate" in m for m in dups.values())
    stored = await all_leads(h, c.id)
    assert [(x.phone, x.email, x.first_name) for x in stored] == [
        ("+12125550001", "lead1@example.com", "Lead1"),
        ("+12125550006", "lead6@example.com", "Lead6"),
    ]
    assert all(x.status == LeadStatus.PENDING and x.step == 0 for x in stored)


async def test_rows_numbered_from_first_row(h: Harness) -> None:
    c = await h.campaign()
    result = await h.service.leads.add(c.id, [good(1), good(2, phone="x")], first_row=2)
    assert result.accepted == 1
    assert fields(result) == {3: ["phone"]}


async def test_row_with_several_errors_names_each_field(h: Harness) -> None:
    c = await h.campaign()
    result = await h.service.leads.add(c.id, [good(1, phone="0", email="@", timezone="Nowhere")])
    assert result.accepted == 0
    assert sorted(fields(result)[1]) == ["email", "phone", "timezone"]


async def test_row_that_is_not_an_object(h: Harness) -> None:
    c = await h.campaign()
    result = await h.service.leads.add(c.id, [good(1), ["+12125550002"], good(3)])
    assert (result.accepted, fields(result)) == (2, {2: ["row"]})


async def test_blank_optional_cells_are_absent(h: Harness) -> None:
    c = await h.campaign(sequence=[{"channel": "voice"}])
    result = await h.service.leads.add(
        c.id, [{"phone": "+12125550001", "email": " ", "timezone": " ", "first_name": " "}]
    )
    assert (result.accepted, result.rejected) == (1, [])
    [x] = await all_leads(h, c.id)
    assert (x.email, x.timezone, x.first_name) == (None, "America/New_York", None)


async def test_concurrent_imports_do_not_duplicate(h: Harness) -> None:
    c = await h.campaign()
    results = await asyncio.gather(*(h.service.leads.add(c.id, leads(6)) for _ in range(3)))
    assert sorted(r.accepted for r in results) == [0, 0, 6]
    assert len(await all_leads(h, c.id)) == 6


async def test_duplicates_of_existing_leads_are_rejected(h: Harness) -> None:
    c = await h.campaign()
    first = await h.service.leads.add(c.id, leads(2))
    assert (first.accepted, first.rejected) == (2, [])
    again = await h.service.leads.add(
        c.id, [*leads(2), good(5, email="lead0@example.com"), good(6)]
    )
    assert again.accepted == 1
    assert fields(again) == {1: ["phone", "email"], 2: ["phone", "email"], 3: ["email"]}
    messages = [e["message"] for r in again.rejected for e in r["errors"]]
    assert all("duplicate" in m for m in messages), messages
    assert len(await all_leads(h, c.id)) == 3


async def test_same_contact_in_another_campaign_is_no_duplicate(h: Harness) -> None:
    c1, c2 = await h.campaign(), await h.campaign(name="Other")
    assert (await h.service.leads.add(c1.id, leads(3))).accepted == 3
    assert (await h.service.leads.add(c2.id, leads(3))).accepted == 3


async def test_timezone_derived_from_phone(h: Harness) -> None:
    c = await h.campaign()
    rows = [
        good(1, phone="+1 212 555 0100", timezone=None),
        good(2, phone="+44 20 7946 0018", timezone=""),
        good(3, timezone="Europe/Paris"),  # given: kept even if the phone says otherwise
    ]
    result = await h.service.leads.add(c.id, rows)
    assert (result.accepted, result.rejected) == (3, [])
    stored = await all_leads(h, c.id)
    assert [(x.phone, x.timezone) for x in stored] == [
        ("+12125550100", "America/New_York"),
        ("+442079460018", "Europe/London"),
        ("+12125550003", "Europe/Paris"),
    ]


async def test_contacts_required_by_the_sequence_only(h: Harness) -> None:
    voice = await h.campaign(sequence=[{"channel": "voice"}])
    email = await h.campaign(
        sequence=[{"channel": "email", "subject": "Hi", "body": "Hello"}], caller_ids=[]
    )
    r_voice = await h.service.leads.add(voice.id, [{"phone": "+12125550001"}, {"email": "a@b.co"}])
    r_email = await h.service.leads.add(email.id, [{"email": "a@b.co"}, {"phone": "+12125550001"}])
    assert (r_voice.accepted, fields(r_voice)) == (1, {2: ["phone"]})
    assert (r_email.accepted, fields(r_email)) == (1, {2: ["email"]})
    [v] = await all_leads(h, voice.id)
    [e] = await all_leads(h, email.id)
    assert (v.phone, v.email, v.timezone) == ("+12125550001", None, "America/New_York")
    assert (e.phone, e.email, e.timezone) == (None, "a@b.co", None)


async def set_state(h: Harness, campaign_id: str, state: str) -> None:
    async with h.rt.db.session() as s:
        c = await s.get(Campaign, campaign_id)
        assert c is not None
        c.state = state


@pytest.mark.parametrize(
    "state",
    [CampaignState.CANCELLED, CampaignState.STOPPED, CampaignState.COMPLETED, "stopping"],
    ids=str,
)
async def test_closed_campaign_refuses_leads(h: Harness, state: str) -> None:
    c = await h.campaign()
    assert (await h.service.leads.add(c.id, leads(1))).accepted == 1
    await set_state(h, c.id, state)
    with pytest.raises(InvalidState) as exc:
        await h.service.leads.add(c.id, leads(3, start=10))
    assert exc.value.state == state
    assert [x.phone for x in await all_leads(h, c.id)] == ["+12125550000"]


async def test_terminated_draft_refuses_leads(h: Harness) -> None:
    c = await h.campaign()
    result = await h.service.terminate(c.id, confirm=c.id, actor=ADMIN)
    assert result.campaign.state == CampaignState.CANCELLED
    with pytest.raises(InvalidState):
        await h.service.leads.add(c.id, leads(2))
    assert await all_leads(h, c.id) == []


@pytest.mark.parametrize("state", [CampaignState.RUNNING, CampaignState.PAUSED], ids=str)
async def test_open_campaign_takes_leads(h: Harness, state: str) -> None:
    c = await h.campaign()
    await h.service.start(c.id, actor=ADMIN)
    if state == CampaignState.PAUSED:
        await h.service.pause(c.id, actor=ADMIN)
    assert (await h.service.leads.add(c.id, leads(2))).accepted == 2


async def test_unknown_campaign(h: Harness) -> None:
    with pytest.raises(NotFound):
        await h.service.leads.add("c_missing", leads(1))
    with pytest.raises(NotFound):
        await h.service.leads.page("c_missing")


async def pages(h: Harness, campaign_id: str, **kwargs: Any) -> list[list[int]]:
    out: list[list[int]] = []
    cursor = 0
    while True:
        items, nxt = await h.service.leads.page(campaign_id, cursor=cursor, **kwargs)
        out.append([x.id for x in items])
        if nxt is None:
            return out
        assert nxt == items[-1].id
        cursor = nxt


async def test_paging_returns_every_lead_once(h: Harness) -> None:
    c, other = await h.campaign(), await h.campaign(name="Other")
    assert (await h.service.leads.add(c.id, leads(23))).accepted == 23
    assert (await h.service.leads.add(other.id, leads(4))).accepted == 4
    ids = [x.id for x in await all_leads(h, c.id)]
    assert len(ids) == 23
    got = await pages(h, c.id, limit=5)
    assert [len(p) for p in got] == [5, 5, 5, 5, 3]
    assert [i for p in got for i in p] == ids
    assert await pages(h, c.id, limit=23) == [ids]
    assert await pages(h, c.id, limit=5000) == [ids]  # clamped to 1000
    assert await pages(h, c.id, limit=0) == [[i] for i in ids]  # at least one
    empty = await h.campaign(name="Empty")
    assert await pages(h, empty.id) == [[]]


async def test_paging_by_status(h: Harness) -> None:
    c = await h.campaign()
    assert (await h.service.leads.add(c.id, leads(12))).accepted == 12
    ids = [x.id for x in await all_leads(h, c.id)]
    stopped = ids[1::3]
    for lead_id in stopped:
        await h.service.leads.stop(lead_id, actor=ADMIN)
    got = await pages(h, c.id, status=LeadStatus.STOPPED, limit=3)
    assert [i for p in got for i in p] == stopped
    pending = await pages(h, c.id, status=LeadStatus.PENDING, limit=3)
    assert [i for p in pending for i in p] == [i for i in ids if i not in stopped]
    assert await pages(h, c.id, status=LeadStatus.PAUSED, limit=3) == [[]]
    with pytest.raises(ValidationFailed):
        await h.service.leads.page(c.id, status="bogus")
