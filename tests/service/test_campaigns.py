"""Campaign use cases: validation, config changes, scheduling, pause-all, archive."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from dialer.domain.states import CampaignState
from dialer.errors import InvalidState, NotFound, ValidationFailed, VersionMismatch
from dialer.store.models import Campaign, Event
from tests.harness import ADMIN, harness, leads


async def test_bad_campaign_names_the_fields_and_writes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path) as h:
        with pytest.raises(ValidationFailed) as err:
            await h.service.create_campaign(
                {
                    "name": "x",
                    "sequence": [{"channel": "voice", "ring_timeout_seconds": 5}],
                    "caller_ids": ["not a number"],
                },
                actor=ADMIN,
            )
        fields = {e["field"] for e in err.value.errors}
        assert "sequence.0.voice.ring_timeout_seconds" in fields
        with pytest.raises(ValidationFailed) as err:
            await h.service.create_campaign(
                {"name": "x", "sequence": [{"channel": "voice"}], "caller_ids": ["12"]},
                actor=ADMIN,
            )
        assert [e["field"] for e in err.value.errors] == ["caller_ids.0"]
        with pytest.raises(ValidationFailed) as err:
            await h.service.create_campaign(
                {"name": "x", "sequence": [{"channel": "email", "subject": "s", "body": "b"}]},
                actor=ADMIN,
            )
        assert [e["field"] for e in err.value.errors] == ["sender"]
        async with h.rt.db.session() as s:
            assert await s.scalar(select(func.count()).select_from(Campaign)) == 0
            assert await s.scalar(select(func.count()).select_from(Event)) == 0


async def test_unknown_ids_and_wrong_states_are_typed(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        with pytest.raises(NotFound):
            await h.service.pause("c_nope", actor=ADMIN)
        with pytest.raises(NotFound):
            await h.service.leads.get(424242)
        with pytest.raises(NotFound):
            await h.service.agents.queue("nobody")
        c = await h.campaign()
        with pytest.raises(InvalidState) as err:
            await h.service.pause(c.id, actor=ADMIN)
        assert err.value.state == CampaignState.DRAFT
        with pytest.raises(InvalidState):
            await h.service.resume(c.id, actor=ADMIN)
        await h.service.start(c.id, actor=ADMIN)
        again = await h.service.start(c.id, actor=ADMIN)  # no-op, same version
        assert again.state == CampaignState.RUNNING and again.version == 2
        await h.service.pause(c.id, actor=ADMIN)
        noop = await h.service.pause(c.id, actor=ADMIN)
        assert noop.changed is False and noop.campaign.version == 3


async def test_config_changes_only_when_editable_and_at_the_right_version(
    db_url: str, tmp_path: Path
) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign()
        changed = await h.service.update_campaign(
            c.id, {"name": "Renamed", "wrap_up_seconds": 30}, actor=ADMIN, if_version=1
        )
        assert changed.name == "Renamed" and changed.version == 2
        assert changed.config["wrap_up_seconds"] == 30
        with pytest.raises(VersionMismatch):
            await h.service.update_campaign(c.id, {"name": "B"}, actor=ADMIN, if_version=1)
        with pytest.raises(ValidationFailed) as err:
            await h.service.update_campaign(c.id, {"wrap_up_seconds": -1}, actor=ADMIN)
        assert err.value.errors[0]["field"] == "wrap_up_seconds"
        await h.service.start(c.id, actor=ADMIN)
        with pytest.raises(InvalidState):
            await h.service.update_campaign(c.id, {"name": "C"}, actor=ADMIN)
        await h.service.pause(c.id, actor=ADMIN)
        with pytest.raises(ValidationFailed) as err:  # nobody has that id
            await h.service.update_campaign(c.id, {"agent_ids": ["a9"]}, actor=ADMIN)
        assert err.value.errors[0]["field"].startswith("agent_ids")
        await h.service.agents.create("Agent Nine", agent_id="a9")
        paused = await h.service.update_campaign(c.id, {"agent_ids": ["a9"]}, actor=ADMIN)
        assert paused.config["agent_ids"] == ["a9"]
        assert paused.config["sequence"][1]["subject"] == "Hello {first_name}"  # kept
        with pytest.raises(ValidationFailed):
            await h.service.update_campaign(c.id, {"resume_policy": "deadline"}, actor=ADMIN)


async def test_scheduled_start_and_resume(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        c = await h.campaign(
            sequence=[{"channel": "email", "subject": "s", "body": "b"}], caller_ids=[]
        )
        await h.service.leads.add(c.id, [{"email": "a@example.com"}, {"email": "b@example.com"}])
        at = h.clock.now() + 3600
        c = await h.service.start(c.id, actor=ADMIN, at=at)
        assert c.state == CampaignState.SCHEDULED
        await h.advance(3599)
        assert (await h.tick()).started == []
        await h.advance(2)
        report = await h.tick()
        assert report.started == [c.id] and report.dispatched == 2
        c = await h.service.get_campaign(c.id)
        assert c.state in (CampaignState.RUNNING, CampaignState.COMPLETED)


async def test_pause_all_and_archive(db_url: str, tmp_path: Path) -> None:
    async with harness(db_url, tmp_path) as h:
        ids = []
        for i in range(3):
            c = await h.campaign(name=f"C{i}")
            await h.service.leads.add(c.id, leads(1, start=i))
            ids.append(c.id)
        await h.service.start(ids[0], actor=ADMIN)
        await h.service.start(ids[1], actor=ADMIN)
        assert sorted(await h.service.pause_all(actor=ADMIN)) == sorted(ids[:2])
        assert await h.service.pause_all(actor=ADMIN) == []
        await h.service.resume(ids[0], actor=ADMIN)
        archived = await h.service.archive(ids[0], actor=ADMIN)
        assert archived.archived and archived.state == CampaignState.PAUSED
        listed = [c.id for c in await h.service.list_campaigns()]
        assert ids[0] not in listed and ids[1] in listed
        events = await h.service.events(ids[0])
        assert [e.actor for e in events if e.type == "campaign.state"] == [ADMIN] * 4
