"""Campaign routes: success, 401, 403, 404, 409 with the state, 422 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialer.bus.base import BusUnavailable, ControlMessage
from dialer.channels.simulated import SimProfile
from dialer.store import events
from dialer.store.attempts import TAKEOVER_GRACE
from dialer.store.models import Attempt, Lead
from tests.api.conftest import Api, ApiFactory
from tests.harness import leads


async def test_create_get_list_and_errors(api: Api) -> None:
    c = await api.campaign()
    assert c["state"] == "draft" and c["version"] == 1 and c["resume_policy"] == "freeze"
    status, one = await api.call("GET", f"/api/v1/campaigns/{c['id']}", role="viewer")
    assert status == 200 and one["id"] == c["id"]
    status, listed = await api.call("GET", "/api/v1/campaigns?state=draft", role="viewer")
    assert [x["id"] for x in listed["items"]] == [c["id"]]
    assert (await api.call("GET", "/api/v1/campaigns", role=None))[0] == 401
    bad = {"Authorization": "Bearer dlr_nope_nope"}
    assert (await api.call("GET", "/api/v1/campaigns", role=None, headers=bad))[0] == 401
    status, body = await api.call("POST", "/api/v1/campaigns", role="viewer", json={})
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await api.call("POST", "/api/v1/campaigns", role="agent", json={}))[0] == 403
    status, body = await api.call("GET", "/api/v1/campaigns/c_missing")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await api.call(
        "POST", "/api/v1/campaigns", json={"name": "", "sequence": [{"channel": "fax"}]}
    )
    assert status == 422
    fields = {e["field"] for e in body["error"]["details"]["errors"]}
    assert "name" in fields and any(f.startswith("sequence.0") for f in fields)
    status, body = await api.call("POST", "/api/v1/campaigns", data=b"{not json")
    assert status == 400 and body["error"]["code"] == "bad_json"
    status, body = await api.call("GET", "/api/v1/campaigns?state=bogus")
    assert status == 422 and body["error"]["details"]["errors"][0]["field"] == "state"


async def test_control_over_http(api: Api) -> None:
    c = await api.campaign()
    cid = c["id"]
    await api.runtime.service.leads.add(cid, leads(8))
    status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor")
    assert status == 409 and body["error"]["details"]["state"] == "draft"
    status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/start", role="supervisor")
    assert status == 200 and body["state"] == "running"
    await api.tick()  # five calls go out (agentless capacity 5)
    dialled = [d.attempt_id for d in api.voice.of(cid)]
    assert len(dialled) == 5
    await api.clock.advance(1)  # ringing: in flight, not cancellable
    status, body = await api.call(
        "POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor", json={"reason": "lunch"}
    )
    assert status == 200
    assert body["campaign"]["state"] == "paused"
    assert sorted(a["id"] for a in body["in_flight"]) == sorted(dialled)
    assert body["released_agents"] == []
    status, again = await api.call("POST", f"/api/v1/campaigns/{cid}/pause")
    assert status == 200 and again["campaign"]["version"] == body["campaign"]["version"]
    status, body = await api.call(
        "PATCH",
        f"/api/v1/campaigns/{cid}",
        json={"wrap_up_seconds": 20},
        headers={"If-Match": "1"},
    )
    assert status == 412
    version = (await api.call("GET", f"/api/v1/campaigns/{cid}"))[1]["version"]
    status, body = await api.call(
        "PATCH",
        f"/api/v1/campaigns/{cid}",
        json={"wrap_up_seconds": 20},
        headers={"If-Match": str(version)},
    )
    assert status == 200 and body["wrap_up_seconds"] == 20
    status, body = await api.call(
        "POST", f"/api/v1/campaigns/{cid}/terminate", json={"confirm": "nope"}
    )
    assert status == 422 and body["error"]["details"]["errors"][0]["field"] == "confirm"
    status, body = await api.call(
        "POST", f"/api/v1/campaigns/{cid}/terminate", json={"confirm": cid}
    )
    assert status == 202 and body["campaign"]["state"] == "stopping"
    assert body["steps"][0]["step"] == "terminate.claims_stopped"
    for _ in range(60):
        await api.clock.advance(1)
        await api.tick()
    status, body = await api.call("GET", f"/api/v1/campaigns/{cid}/stats", role="viewer")
    assert status == 200 and body["state"] == "stopped"
    assert body["calls"]["dialed"] == 5 and body["calls"]["in_flight"] == 0
    status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/resume")
    assert status == 409 and body["error"]["details"]["state"] == "stopped"
    status, body = await api.call("GET", f"/api/v1/campaigns/{cid}/events", role="viewer")
    actors = {e["actor"] for e in body["items"] if e["type"] == "campaign.state"}
    assert "supervisor:supervisor-test" in actors and "admin:bootstrap" in actors


async def test_audit_trail_filters_by_entity(api: Api) -> None:
    c = await api.campaign()
    await api.runtime.service.leads.add(c["id"], leads(2))
    await api.call("POST", f"/api/v1/campaigns/{c['id']}/start")
    await api.tick()
    status, body = await api.call("GET", f"/api/v1/campaigns/{c['id']}/events?entity=campaign")
    assert status == 200 and {e["entity"] for e in body["items"]} == {"campaign"}
    status, body = await api.call("GET", f"/api/v1/campaigns/{c['id']}/events?entity=lead")
    assert status == 200 and body["items"] and {e["entity"] for e in body["items"]} == {"lead"}
    status, body = await api.call("GET", f"/api/v1/campaigns/{c['id']}/events?entity=bogus")
    assert status == 422 and body["error"]["details"]["errors"][0]["field"] == "entity"


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


def epoch(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time).timestamp()


async def test_channels_follow_the_engines_reports(api: Api) -> None:
    """`channels` comes from the latest campaign.channel_(un)available event per channel
    (docs/api.md §4.5); a channel never reported on is up."""
    c, other = await api.campaign(), await api.campaign()
    cid = c["id"]
    status, one = await api.call("GET", f"/api/v1/campaigns/{cid}", role="viewer")
    assert status == 200 and one["channels"] == {
        "email": {"up": True, "since": None, "error": None, "retry_at": None},
        "voice": {"up": True, "since": None, "error": None, "retry_at": None},
    }
    assert one["waiting_for"] is None

    t0 = api.clock.now()

    async def report(campaign_id: str, type_: str, at: float, **data: object) -> None:
        async with api.runtime.db.session() as s:
            events.record(
                s,
                at=at,
                entity="campaign",
                entity_id=campaign_id,
                campaign_id=campaign_id,
                type=type_,
                actor="engine",
                data=dict(data),
            )

    down, up = "campaign.channel_unavailable", "campaign.channel_available"
    await report(cid, down, t0, channel="voice", error="first", retry_at=t0 + 5)
    await report(cid, down, t0 + 10, channel="voice", error="connect refused", retry_at=t0 + 40)
    await report(cid, down, t0 + 11, channel="email", error="smtp refused", retry_at=t0 + 71)
    await report(cid, up, t0 + 12, channel="email")
    status, one = await api.call("GET", f"/api/v1/campaigns/{cid}", role="viewer")
    voice, email = one["channels"]["voice"], one["channels"]["email"]
    assert voice["up"] is False and voice["error"] == "connect refused"
    assert epoch(voice["since"]) == t0 + 10 and epoch(voice["retry_at"]) == t0 + 40
    assert email["up"] is True and epoch(email["since"]) == t0 + 12 and email["error"] is None
    status, listed = await api.call("GET", "/api/v1/campaigns", role="viewer")
    by_id = {x["id"]: x for x in listed["items"]}
    assert by_id[cid]["channels"] == one["channels"]
    assert by_id[other["id"]]["channels"]["voice"]["up"] is True  # not another's report

    await report(cid, up, t0 + 50, channel="voice")
    status, one = await api.call("GET", f"/api/v1/campaigns/{cid}")
    assert one["channels"]["voice"]["up"] is True and epoch(one["channels"]["voice"]["since"]) == (
        t0 + 50
    )


async def test_stopping_campaign_says_what_it_waits_for(make_api: ApiFactory) -> None:
    api = await make_api(profile=ANSWER)
    status, _ = await api.call(
        "POST", "/api/v1/agents/a1/state", role="agent", json={"state": "available"}
    )
    assert status == 200
    c = await api.campaign(agent_ids=["a1"], pacing={"mode": "progressive", "lines_per_agent": 1.0})
    cid = c["id"]
    await api.runtime.service.leads.add(cid, leads(3))
    await api.call("POST", f"/api/v1/campaigns/{cid}/start")
    await api.tick()
    await api.clock.advance(10)  # answered
    await api.tick()  # bridged to a1
    status, running = await api.call("GET", f"/api/v1/campaigns/{cid}")
    assert running["state"] == "running" and running["waiting_for"] is None
    [dial] = api.voice.of(cid)
    await api.clock.advance(5)
    status, body = await api.call(
        "POST", f"/api/v1/campaigns/{cid}/terminate", json={"confirm": cid}
    )
    assert status == 202 and body["campaign"]["state"] == "stopping"

    await api.clock.advance(7)
    status, one = await api.call("GET", f"/api/v1/campaigns/{cid}", role="viewer")
    assert status == 200 and one["state"] == "stopping"
    waiting = one["waiting_for"]
    async with api.runtime.db.session() as s:
        attempt = await s.get(Attempt, int(dial.attempt_id))
        assert attempt is not None
        lead = await s.get(Lead, attempt.lead_id)
        assert lead is not None
    assert waiting["attempts"] == 1 and waiting["by_status"] == {"in_progress": 1}
    assert epoch(waiting["oldest_at"]) == attempt.created_at
    assert waiting["oldest_age_seconds"] == api.clock.now() - attempt.created_at
    assert waiting["agents"] == [
        {"id": "a1", "name": "Agent One", "state": "on_call", "attempt_id": dial.attempt_id}
    ]
    lease = api.runtime.settings.lease_seconds
    stale = (
        lead.lease_until + lease * TAKEOVER_GRACE
        if lead.active_attempt_id == attempt.id and lead.lease_until is not None
        else attempt.updated_at + lease
    )
    ring = one["sequence"][0]["ring_timeout_seconds"]
    assert epoch(waiting["expected_by"]) == stale + ring

    for _ in range(400):  # the call ends: nothing is left, the campaign stops
        await api.clock.advance(1)
        await api.tick()
        status, one = await api.call("GET", f"/api/v1/campaigns/{cid}")
        if one["state"] == "stopped":
            break
    assert one["state"] == "stopped" and one["waiting_for"] is None


async def test_a_pause_whose_fan_out_failed_is_503_and_its_retry_publishes_again(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bus fails while a pause is published (Redis restarting): the pause is written but
    not confirmed by every engine, so it answers 503 with Retry-After, never 200 nor 500;
    the retry finds the campaign paused and publishes again before it answers 200."""
    c = await api.campaign()
    cid = c["id"]
    await api.call("POST", f"/api/v1/campaigns/{cid}/start", role="supervisor")
    bus = api.runtime.bus
    real = bus.publish
    published: list[ControlMessage] = []

    async def failing(msg: ControlMessage) -> None:
        raise BusUnavailable("Redis is restarting")

    async def recording(msg: ControlMessage) -> None:
        published.append(msg)
        await real(msg)

    monkeypatch.setattr(bus, "publish", failing)
    resp = await api.client.post(f"/api/v1/campaigns/{cid}/pause", headers=api.auth("supervisor"))
    assert resp.status == 503 and resp.headers["Retry-After"]
    error = (await resp.json())["error"]
    assert error["code"] == "unavailable" and "bus" in error["message"]
    status, stored = await api.call("GET", f"/api/v1/campaigns/{cid}")
    assert stored["state"] == "paused"
    monkeypatch.setattr(bus, "publish", recording)
    status, again = await api.call("POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor")
    assert status == 200 and again["campaign"]["state"] == "paused"
    assert [(m.campaign_id, m.state, m.version) for m in published] == [
        (cid, "paused", stored["version"])
    ]


async def test_unarchive_and_archived_campaigns_refuse_to_run(api: Api) -> None:
    cid = (await api.campaign())["id"]
    status, c = await api.call("POST", f"/api/v1/campaigns/{cid}/archive", role="supervisor")
    assert status == 200 and c["archived"] is True
    status, out = await api.call("POST", f"/api/v1/campaigns/{cid}/start", role="supervisor")
    assert status == 409, out
    status, c = await api.call("POST", f"/api/v1/campaigns/{cid}/unarchive", role="supervisor")
    assert status == 200 and c["archived"] is False
    status, listed = await api.call("GET", "/api/v1/campaigns")
    assert cid in [x["id"] for x in listed["items"]]
    status, c = await api.call("POST", f"/api/v1/campaigns/{cid}/start", role="supervisor")
    assert status == 200 and c["state"] == "running"


async def test_a_scheduled_campaign_pauses_and_pause_all_includes_it(api: Api) -> None:
    cid = (await api.campaign())["id"]
    at = datetime.fromtimestamp(api.clock.now() + 3600, UTC).isoformat()
    status, c = await api.call(
        "POST", f"/api/v1/campaigns/{cid}/start", role="supervisor", json={"at": at}
    )
    assert status == 200 and c["state"] == "scheduled"
    status, out = await api.call("POST", "/api/v1/campaigns/pause-all", role="supervisor")
    assert status == 200 and out["paused"] == [cid]
    status, c = await api.call("GET", f"/api/v1/campaigns/{cid}")
    assert c["state"] == "paused" and c["scheduled_at"] is None
