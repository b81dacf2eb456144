"""A supervisor's day (issue 14): sequence and sender edits, bulk actions by filter, stale
pauses, search, archive and schedule rules (docs/architecture.md §3.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dialer.domain.states import CampaignState, LeadStatus
from dialer.errors import InvalidState, ValidationFailed
from tests.harness import ADMIN, Harness, harness, leads

DAY = 86400.0


def email(n: int, delay: float = 0) -> dict[str, Any]:
    return {"channel": "email", "delay_seconds": delay, "subject": f"s{n}", "body": f"b{n}"}


async def statuses(h: Harness, campaign_id: str) -> dict[int, Any]:
    items, _ = await h.service.leads.page(campaign_id)
    return {x.id: x for x in items}


async def attempts_of(h: Harness, lead_id: int) -> int:
    return len((await h.service.leads.get(lead_id))[1])


def fields(err: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [e["field"] for e in err.value.errors]


async def test_appended_step_holds_finished_leads_until_rescheduled(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(sequence=[email(0), email(1, DAY)], caller_ids=[])
        await h.service.leads.add(c.id, leads(3))
        a, b, kept = (await statuses(h, c.id)).values()
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        await h.service.leads.pause(kept.id, actor=ADMIN, reason="call back")
        await h.advance(DAY + 1)
        await h.tick()
        now = await statuses(h, c.id)
        assert now[a.id].status == now[b.id].status == LeadStatus.COMPLETED
        await h.service.pause(c.id, actor=ADMIN)
        await h.service.update_campaign(
            c.id, {"sequence": [email(0), email(1, DAY), email(2, 2 * DAY)]}, actor=ADMIN
        )
        now = await statuses(h, c.id)
        for lead_id in (a.id, b.id):
            assert now[lead_id].status == LeadStatus.PAUSED
            assert now[lead_id].pause_reason == "sequence_changed"
            assert now[lead_id].paused_at == h.clock.now() and now[lead_id].step == 2
        assert now[kept.id].pause_reason == "call back" and now[kept.id].step == 1
        # Held: nothing is sent to them while the campaign runs.
        await h.service.resume(c.id, actor=ADMIN)
        await h.advance(3 * DAY)
        await h.tick()
        assert [await attempts_of(h, x) for x in (a.id, b.id)] == [2, 2]
        # The supervisor reschedules them: they go on at that time.
        at = h.clock.now() + 3600
        result = await h.service.leads.bulk(
            c.id, "resume", {"pause_reason": "sequence_changed"}, actor=ADMIN, at=at
        )
        assert (result.matched, result.changed) == (2, 2)
        await h.advance(1800)
        await h.tick()
        assert await attempts_of(h, a.id) == 2
        await h.advance(1801)
        await h.tick()
        assert [await attempts_of(h, x) for x in (a.id, b.id)] == [3, 3]
        assert (await statuses(h, c.id))[kept.id].status == LeadStatus.PAUSED


async def test_shortened_sequence_completes_leads_past_it_and_the_campaign(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(sequence=[email(0), email(1, DAY), email(2, DAY)], caller_ids=[])
        await h.service.leads.add(c.id, leads(2))
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        assert {x.step for x in (await statuses(h, c.id)).values()} == {1}
        await h.service.pause(c.id, actor=ADMIN)
        await h.service.update_campaign(c.id, {"sequence": [email(0)]}, actor=ADMIN)
        for lead in (await statuses(h, c.id)).values():
            assert lead.status == LeadStatus.COMPLETED and lead.step == 1  # never past the end
        await h.service.resume(c.id, actor=ADMIN)
        await h.tick()
        assert (await h.service.get_campaign(c.id)).state == CampaignState.COMPLETED


async def test_sender_change_pauses_leads_with_an_email_step_ahead(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path) as h:
        mail = await h.campaign(sequence=[email(0), email(1, DAY)], caller_ids=[])
        voice_next = await h.campaign(
            sequence=[email(0), {"channel": "voice", "delay_seconds": DAY}]
        )
        for c in (mail, voice_next):
            await h.service.leads.add(c.id, leads(1))
            await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        for c in (mail, voice_next):
            await h.service.pause(c.id, actor=ADMIN)
            await h.service.leads.add(c.id, leads(1, start=5))  # pending: nothing sent yet
            await h.service.update_campaign(
                c.id, {"sender": {"email": "new@example.com", "name": "New"}}, actor=ADMIN
            )
        first, pending = (await statuses(h, mail.id)).values()
        assert first.status == LeadStatus.PAUSED and first.pause_reason == "sender_changed"
        assert pending.status == LeadStatus.PENDING
        other = list((await statuses(h, voice_next.id)).values())
        assert other[0].status == LeadStatus.IN_PROGRESS  # only a call is ahead of it


async def test_bulk_actions_follow_the_single_lead_rules(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(sequence=[email(0), email(1, DAY)], caller_ids=[])
        await h.service.leads.add(c.id, leads(14))
        co1 = {"company": "co1"}  # case-insensitive: Co1 is leads 1 and 8
        dry = await h.service.leads.bulk(c.id, "skip", co1, actor=ADMIN, dry_run=True)
        assert (dry.matched, dry.changed) == (2, 2)
        assert all(x.status == LeadStatus.PENDING for x in (await statuses(h, c.id)).values())
        done = await h.service.leads.bulk(c.id, "skip", co1, actor=ADMIN)
        assert (done.matched, done.changed) == (2, 2)
        # Pause applies to in-progress leads only: the pending ones are matched, not changed.
        await h.service.start(c.id, actor=ADMIN)
        await h.service.leads.add(c.id, leads(1, start=40))
        await h.tick()
        await h.service.leads.add(c.id, leads(2, start=50))
        paused = await h.service.leads.bulk(
            c.id, "pause", {}, actor=ADMIN, reason="holiday", until=h.clock.now() + DAY
        )
        assert (paused.matched, paused.changed) == (17, 13)
        by_status: dict[str, int] = {}
        for lead in (await statuses(h, c.id)).values():
            by_status[lead.status] = by_status.get(lead.status, 0) + 1
        assert by_status == {"paused": 13, "skipped": 2, "pending": 2}
        stop = await h.service.leads.bulk(c.id, "stop", {"q": "lead50"}, actor=ADMIN)
        assert (stop.matched, stop.changed) == (1, 1)
        audit = [e for e in await h.service.events(c.id) if e.type == "leads.bulk_action"]
        assert [(e.data["action"], e.data["changed"]) for e in audit] == [
            ("skip", 2),
            ("pause", 13),
            ("stop", 1),
        ]
        assert audit[0].data["filter"] == {"company": "co1"}
        # Bad input names the field.
        with pytest.raises(ValidationFailed) as err:
            await h.service.leads.bulk(c.id, "skip", {"status": "paused"}, actor=ADMIN)
        assert fields(err) == ["filter.status"]
        with pytest.raises(ValidationFailed) as err:
            await h.service.leads.bulk(c.id, "pause", {"colour": "red"}, actor=ADMIN)
        assert fields(err) == ["filter.colour"]
        with pytest.raises(ValidationFailed) as err:
            await h.service.leads.bulk(c.id, "pause", {}, actor=ADMIN, until=h.clock.now() - 1)
        assert fields(err) == ["until"]
        with pytest.raises(ValidationFailed) as err:
            await h.service.leads.bulk(c.id, "resume", {}, actor=ADMIN, at=h.clock.now() - 1)
        assert fields(err) == ["at"]
        with pytest.raises(ValidationFailed) as err:
            await h.service.leads.bulk(c.id, "dial", {}, actor=ADMIN)
        assert fields(err) == ["action"]


async def test_stale_pauses_and_search(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        h.service.leads.stale_pause_days = 0.5  # fractional: twelve hours
        c = await h.campaign(sequence=[email(0), email(1, DAY)], caller_ids=[])
        rows = leads(3)
        rows[2]["last_name"] = "O'Hara"
        await h.service.leads.add(c.id, rows)
        await h.service.start(c.id, actor=ADMIN)
        await h.tick()
        a, b, d = (await statuses(h, c.id)).values()
        await h.service.leads.pause(a.id, actor=ADMIN)
        await h.advance(6 * 3600)
        await h.service.leads.pause(b.id, actor=ADMIN)
        await h.advance(6 * 3600)
        stale, _ = await h.service.leads.page(c.id, filter={"stale": True})
        assert [x.id for x in stale] == [a.id]
        fresh, _ = await h.service.leads.page(c.id, filter={"stale": False})
        assert [x.id for x in fresh] == [b.id, d.id]
        assert (await h.service.stats(c.id)).leads["stale"] == 1
        # Resumed, it is no longer stale; paused again, its age starts over.
        await h.service.leads.resume(a.id, actor=ADMIN)
        await h.service.leads.pause(a.id, actor=ADMIN)
        assert (await h.service.stats(c.id)).leads["stale"] == 0
        for q, expected in (
            ("5550001", [b.id]),
            ("LEAD2@example", [d.id]),
            ("lead0 ", [a.id]),
            ("o'hara", [d.id]),
            ("co1", [b.id]),
            ("%", []),
        ):
            found, _ = await h.service.leads.page(c.id, filter={"q": q})
            assert [x.id for x in found] == expected, q


async def test_archive_scheduled_pause_and_pause_all(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(sequence=[email(0)], caller_ids=[])
        await h.service.leads.add(c.id, leads(1))
        await h.service.start(c.id, actor=ADMIN, at=h.clock.now() + 3600)
        paused = await h.service.pause(c.id, actor=ADMIN)
        assert paused.campaign.state == CampaignState.PAUSED
        assert paused.campaign.start_at is None  # the scheduled start is dropped
        await h.advance(7200)
        await h.tick()
        assert (await h.service.get_campaign(c.id)).state == CampaignState.PAUSED
        await h.service.archive(c.id, actor=ADMIN)
        with pytest.raises(InvalidState):
            await h.service.resume(c.id, actor=ADMIN)
        assert (await h.service.unarchive(c.id, actor=ADMIN)).archived is False
        assert (await h.service.resume(c.id, actor=ADMIN)).state == CampaignState.RUNNING
        other = await h.campaign(sequence=[email(0)], caller_ids=[])
        await h.service.start(other.id, actor=ADMIN, at=h.clock.now() + 3600)
        draft = await h.campaign(sequence=[email(0)], caller_ids=[])
        await h.service.archive(draft.id, actor=ADMIN)
        with pytest.raises(InvalidState):
            await h.service.start(draft.id, actor=ADMIN)
        assert sorted(await h.service.pause_all(actor=ADMIN)) == sorted([c.id, other.id])
