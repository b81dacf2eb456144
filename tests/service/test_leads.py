"""Lead-level control: pause with reason and auto-resume, resume, stop, skip, qualify."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.domain.states import LeadStatus
from dialer.errors import InvalidState, ValidationFailed
from tests.harness import ADMIN, harness, leads

DAY = 86400.0


async def test_lead_pause_until_resumes_with_the_delay_it_had(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(
            sequence=[
                {"channel": "email", "subject": "one", "body": "1"},
                {"channel": "email", "delay_seconds": 4 * DAY, "subject": "two", "body": "2"},
            ],
            caller_ids=[],
        )
        await h.service.leads.add(c.id, [{"email": "a@example.com"}])
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        (lead,), _ = await h.service.leads.page(c.id)
        with pytest.raises(ValidationFailed):
            await h.service.leads.pause(lead.id, actor=ADMIN, until=h.clock.now() - 1)
        await h.advance(DAY)
        paused = await h.service.leads.pause(
            lead.id, actor=ADMIN, reason="asked for a call back", until=h.clock.now() + 5 * DAY
        )
        assert paused.status == LeadStatus.PAUSED and paused.pause_reason
        await h.advance(5 * DAY + 1)
        await h.tick()  # the pause ran out: back in progress with three days left
        lead, attempts = await h.service.leads.get(lead.id)
        assert lead.status == LeadStatus.IN_PROGRESS and len(attempts) == 1
        await h.advance(3 * DAY - 60)
        await h.tick()
        assert len((await h.service.leads.get(lead.id))[1]) == 1
        await h.advance(120)
        await h.tick()
        assert len((await h.service.leads.get(lead.id))[1]) == 2


async def test_lead_control_rules(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign()
        await h.service.leads.add(c.id, leads(3))
        (a, b, d), _ = await h.service.leads.page(c.id)
        with pytest.raises(InvalidState) as err:
            await h.service.leads.pause(a.id, actor=ADMIN)  # only in_progress
        assert err.value.state == LeadStatus.PENDING
        assert (await h.service.leads.skip(a.id, actor=ADMIN)).status == LeadStatus.SKIPPED
        with pytest.raises(InvalidState):
            await h.service.leads.resume(a.id, actor=ADMIN)
        stopped = await h.service.leads.stop(b.id, actor=ADMIN, reason="asked not to call")
        assert stopped.status == LeadStatus.STOPPED and stopped.stop_reason == "manual"
        with pytest.raises(InvalidState):
            await h.service.leads.skip(b.id, actor=ADMIN)
        items, _ = await h.service.leads.page(c.id, status="skipped")
        assert [x.id for x in items] == [a.id]
        with pytest.raises(ValidationFailed):
            await h.service.leads.page(c.id, status="bogus")
        assert (await h.service.leads.get(d.id))[0].status == LeadStatus.PENDING


async def test_qualify_company_stops_every_open_lead_of_it(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign()
        rows = leads(6)
        for row in rows:
            row["company"] = "Acme" if int(row["first_name"][4:]) % 2 else "Other"
        await h.service.leads.add(c.id, rows)
        items, _ = await h.service.leads.page(c.id)
        acme = [x for x in items if x.company == "Acme"]
        stopped = await h.service.leads.qualify(acme[0].id, actor=ADMIN, scope="company")
        assert sorted(x.id for x in stopped) == sorted(x.id for x in acme)
        reasons = {x.id: x.stop_reason for x in (await h.service.leads.page(c.id))[0]}
        assert reasons[acme[0].id] == "qualified"
        assert {reasons[x.id] for x in acme[1:]} == {"company_stopped"}
        assert {reasons[x.id] for x in items if x.company == "Other"} == {None}


async def test_position_tells_the_next_step_and_freezes_while_paused(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(
            sequence=[
                {"channel": "email", "subject": "one", "body": "1"},
                {"channel": "email", "delay_seconds": 4 * DAY, "subject": "two", "body": "2"},
            ],
            caller_ids=[],
        )
        await h.service.leads.add(c.id, [{"email": "a@example.com"}])
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        await h.advance(DAY)
        (lead,), _ = await h.service.leads.page(c.id)
        p = await h.service.leads.position(lead)
        assert (p.step, p.channel, p.due_in_seconds) == (1, "email", 3 * DAY)
        assert p.due_at == h.clock.now() + 3 * DAY
        await h.service.pause(c.id, actor=ADMIN)
        await h.advance(10 * DAY)
        p = await h.service.leads.position(lead)
        assert p.due_at is None and p.due_in_seconds == 3 * DAY  # frozen
        await h.service.resume(c.id, actor=ADMIN)
        p = await h.service.leads.position(lead)
        assert p.due_at == h.clock.now() + 3 * DAY
