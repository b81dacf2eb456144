"""Campaign routes: success, 401, 403, 404, 409 with the state, 422 naming the field."""

from __future__ import annotations

from tests.api.conftest import Api
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
