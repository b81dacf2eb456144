"""Agent routes: registry, list, self-service state, queue; an agent sees only itself."""

from __future__ import annotations

from typing import Any

from dialer.channels.simulated import SimProfile
from dialer.store import agents as agent_store
from tests.api.conftest import Api, ApiFactory
from tests.harness import leads


def fields(body: Any) -> list[str]:
    return [e["field"] for e in body["error"]["details"]["errors"]]


async def test_create_agents(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/agents", json={"name": "Bo", "id": "a2"})
    assert status == 201 and body["id"] == "a2" and body["state"] == "offline"
    assert body["campaign_id"] is None and body["version"] == 1
    status, body = await api.call("POST", "/api/v1/agents", role="supervisor", json={"name": "Cy"})
    assert status == 201 and body["id"].startswith("a_") and body["name"] == "Cy"
    status, body = await api.call("POST", "/api/v1/agents", json={"name": "Bo 2", "id": "a2"})
    assert status == 409 and body["error"]["details"]["id"] == "a2"
    for bad, name in (
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "X", "id": "no spaces"}, "id"),
        ({"name": "X", "id": 7}, "id"),
        ({"name": "X", "role": "admin"}, "role"),
    ):
        status, body = await api.call("POST", "/api/v1/agents", json=bad)
        assert status == 422 and fields(body) == [name], bad
    assert (await api.call("POST", "/api/v1/agents", role=None, json={"name": "X"}))[0] == 401
    for role in ("viewer", "agent"):
        status, body = await api.call("POST", "/api/v1/agents", role=role, json={"name": "X"})
        assert status == 403 and body["error"]["code"] == "forbidden"


async def test_list_shows_an_agent_only_itself(api: Api) -> None:
    await api.call("POST", "/api/v1/agents", json={"name": "Bo", "id": "a2"})
    for role in ("admin", "supervisor", "viewer"):
        status, body = await api.call("GET", "/api/v1/agents", role=role)
        assert status == 200 and [a["id"] for a in body["items"]] == ["a1", "a2"]
    status, body = await api.call("GET", "/api/v1/agents", role="agent")
    assert status == 200 and [a["id"] for a in body["items"]] == ["a1"]
    assert set(body["items"][0]) >= {"state", "campaign_id", "name", "version"}
    assert (await api.call("GET", "/api/v1/agents", role=None))[0] == 401


async def test_state_changes(api: Api) -> None:
    await api.call("POST", "/api/v1/agents", json={"name": "Bo", "id": "a2"})
    status, body = await api.call("POST", "/api/v1/agents/a1/state", json={"state": "break"})
    assert status == 409 and body["error"]["details"]["state"] == "offline"
    status, body = await api.call(
        "POST", "/api/v1/agents/a1/state", role="agent", json={"state": "available"}
    )
    assert status == 200 and body["state"] == "available" and body["version"] == 2
    status, body = await api.call(
        "POST", "/api/v1/agents/a1/state", role="agent", json={"state": "available"}
    )
    assert status == 200 and body["version"] == 2  # asking again changes nothing
    status, body = await api.call(
        "POST", "/api/v1/agents/a2/state", role="agent", json={"state": "available"}
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await api.call(
        "POST", "/api/v1/agents/a2/state", role="supervisor", json={"state": "available"}
    )
    assert status == 200 and body["state"] == "available"
    status, body = await api.call(
        "POST", "/api/v1/agents/a2/state", role="viewer", json={"state": "offline"}
    )
    assert status == 403
    status, body = await api.call("POST", "/api/v1/agents/a9/state", json={"state": "offline"})
    assert status == 404 and body["error"]["code"] == "not_found"
    for bad in ({"state": "on_call"}, {}, {"state": None}):
        status, body = await api.call("POST", "/api/v1/agents/a1/state", role="agent", json=bad)
        assert status == 422 and fields(body) == ["state"], bad
    status, body = await api.call("POST", "/api/v1/agents/a1/state", role="agent")
    assert status == 422 and fields(body) == ["body"]
    path = "/api/v1/agents/a1/state"
    assert (await api.call("POST", path, role=None, json={"state": "break"}))[0] == 401
    status, body = await api.call("GET", "/api/v1/agents", role="agent")
    assert body["items"][0]["state"] == "available"


async def test_queue_follows_the_campaign(api: Api) -> None:
    await api.call("POST", "/api/v1/agents", json={"name": "Bo", "id": "a2"})
    c = await api.campaign(
        agent_ids=["a1"],
        pacing={"mode": "progressive", "lines_per_agent": 1.0},
        # the first call is an hour away: the agent's queue fills, nothing is dialled yet
        sequence=[{"channel": "voice", "delay_seconds": 3600}],
    )
    cid = c["id"]
    await api.runtime.service.leads.add(cid, leads(12))
    status, body = await api.call(
        "POST", "/api/v1/agents/a1/state", role="agent", json={"state": "available"}
    )
    assert status == 200
    assert (await api.call("POST", f"/api/v1/campaigns/{cid}/start"))[0] == 200
    await api.tick()
    status, queue = await api.call("GET", "/api/v1/agents/a1/queue", role="agent")
    assert status == 200 and queue["campaign_id"] == cid and queue["current"] is None
    assert queue["agent"]["id"] == "a1" and queue["agent"]["campaign_id"] == cid
    assert len(queue["upcoming"]) == 10 and {x["campaign_id"] for x in queue["upcoming"]} == {cid}
    assert api.voice.of(cid) == []
    status, body = await api.call("GET", "/api/v1/agents", role="viewer")
    assert {a["id"]: a["campaign_id"] for a in body["items"]} == {"a1": cid, "a2": None}

    status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor")
    assert status == 200 and body["released_agents"] == ["a1"]
    status, queue = await api.call("GET", "/api/v1/agents/a1/queue", role="agent")
    assert status == 200 and queue["campaign_id"] is None and queue["upcoming"] == []
    assert queue["current"] is None and queue["agent"]["state"] == "available"

    for role in ("admin", "supervisor", "viewer"):
        assert (await api.call("GET", "/api/v1/agents/a1/queue", role=role))[0] == 200
    status, body = await api.call("GET", "/api/v1/agents/a2/queue", role="agent")
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await api.call("GET", "/api/v1/agents/a1/queue", role=None))[0] == 401
    status, body = await api.call("GET", "/api/v1/agents/a9/queue")
    assert status == 404 and body["error"]["code"] == "not_found"


async def stuck(api: Api, agent_id: str, state: str, campaign_id: str | None) -> None:
    """The agent as a crash leaves it: on a call (or held) that nothing will end."""
    async with api.runtime.db.session() as s:
        agent = await agent_store.get(s, agent_id, lock=True)
        assert agent is not None
        agent.state, agent.campaign_id, agent.attempt_id = state, campaign_id, 424242
        agent.wrap_up_until = None
        agent.version += 1


async def test_supervisor_forces_a_stuck_agent(api: Api) -> None:
    c = await api.campaign(agent_ids=["a1"])
    await stuck(api, "a1", "on_call", c["id"])
    path = "/api/v1/agents/a1/state"
    status, body = await api.call("POST", path, role="supervisor", json={"state": "offline"})
    assert status == 409 and body["error"]["details"]["state"] == "on_call"
    for role in ("agent", "viewer"):  # the agent itself may not force, nor may a viewer
        status, body = await api.call(
            "POST", path, role=role, json={"state": "available", "force": True}
        )
        assert status == 403 and body["error"]["code"] == "forbidden", role
    for bad, name in (
        ({"state": "break", "force": True}, "state"),
        ({"state": "on_call", "force": True}, "state"),
        ({"state": "offline", "force": "yes please"}, "force"),
        ({"state": "offline", "force": True, "reason": "x" * 501}, "reason"),
    ):
        status, body = await api.call("POST", path, role="supervisor", json=bad)
        assert status == 422 and fields(body) == [name], bad
    status, body = await api.call("GET", "/api/v1/agents/a1/queue", role="agent")
    assert body["agent"]["state"] == "on_call"  # nothing above changed it

    status, body = await api.call(
        "POST",
        path,
        role="supervisor",
        json={"state": "offline", "force": True, "reason": "crashed mid-call"},
    )
    assert status == 200, body
    assert body["state"] == "offline" and body["campaign_id"] is None
    assert body["attempt_id"] is None and body["wrap_up_until"] is None
    status, again = await api.call(
        "POST", path, role="supervisor", json={"state": "offline", "force": True}
    )
    assert status == 200 and again["version"] == body["version"]  # nothing left to end

    status, events = await api.call("GET", f"/api/v1/campaigns/{c['id']}/events?entity=agent")
    forced = [e for e in events["items"] if e["type"] == "agent.forced"]
    assert len(forced) == 1
    e = forced[0]
    assert (e["actor"], e["entity_id"], e["from_state"], e["to_state"], e["reason"]) == (
        "supervisor:supervisor-test",
        "a1",
        "on_call",
        "offline",
        "crashed mid-call",
    )
    assert e["data"]["attempt_id"] == "424242" and e["data"]["released"] is True

    # Forced available from a hold of a campaign that is not running: free for other work.
    await stuck(api, "a1", "reserved", c["id"])
    status, body = await api.call("POST", path, json={"state": "available", "force": True})
    assert status == 200 and body["state"] == "available"
    assert body["campaign_id"] is None and body["attempt_id"] is None


HUMAN = SimProfile(answer_rate=1.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)


async def test_preview_dial_and_skip(make_api: ApiFactory) -> None:
    api = await make_api(profile=HUMAN)
    c = await api.campaign(agent_ids=["a1"], pacing={"mode": "preview"})
    cid = c["id"]
    await api.runtime.service.leads.add(cid, leads(3))
    await api.call("POST", "/api/v1/agents/a1/state", role="agent", json={"state": "available"})
    assert (await api.call("POST", f"/api/v1/campaigns/{cid}/start"))[0] == 200
    await api.run(5)
    assert api.voice.of(cid) == []  # preview: the engine never dials on its own
    status, queue = await api.call("GET", "/api/v1/agents/a1/queue", role="agent")
    assert status == 200 and queue["preview"] is not None
    first = queue["preview"]["id"]

    status, queue = await api.call("POST", "/api/v1/agents/a1/skip", role="agent")
    assert status == 200 and queue["preview"]["id"] != first  # the next lead is offered
    second = queue["preview"]["id"]
    status, body = await api.call(
        "POST", "/api/v1/agents/a1/skip", role="agent", json={"lead_id": int(first)}
    )
    assert status == 409 and body["error"]["details"]["lead_id"] == int(first)  # held back

    status, queue = await api.call("POST", "/api/v1/agents/a1/dial", role="agent")
    assert status == 202 and queue["agent"]["state"] == "reserved"
    assert queue["current"]["lead_id"] == second and queue["preview"] is None
    assert [d.attempt_id for d in api.voice.of(cid)] == [queue["current"]["id"]]
    status, body = await api.call("POST", "/api/v1/agents/a1/dial", role="agent")
    assert status == 409 and body["error"]["details"]["state"] == "reserved"  # not free
    await api.advance(60)  # the person answers: bridged to this agent
    await api.tick()
    status, queue = await api.call("GET", "/api/v1/agents/a1/queue", role="agent")
    assert queue["agent"]["state"] == "on_call"
    assert [call.bridged_to for call in api.sim.record.values()] == ["a1"]

    for role, code in (("viewer", 403), (None, 401)):
        assert (await api.call("POST", "/api/v1/agents/a1/dial", role=role))[0] == code
    status, body = await api.call(
        "POST", "/api/v1/agents/a1/skip", role="agent", json={"lead_id": "x"}
    )
    assert status == 422 and fields(body) == ["lead_id"]


async def test_paused_preview_campaign_dials_nothing(make_api: ApiFactory) -> None:
    api = await make_api(profile=HUMAN)
    c = await api.campaign(agent_ids=["a1"], pacing={"mode": "preview"})
    cid = c["id"]
    await api.runtime.service.leads.add(cid, leads(2))
    await api.call("POST", "/api/v1/agents/a1/state", role="agent", json={"state": "available"})
    assert (await api.call("POST", f"/api/v1/campaigns/{cid}/start"))[0] == 200
    await api.tick()
    status, queue = await api.call("GET", "/api/v1/agents/a1/queue", role="agent")
    lead_id = int(queue["preview"]["id"])
    assert (await api.call("POST", f"/api/v1/campaigns/{cid}/pause"))[0] == 200
    status, body = await api.call(
        "POST", "/api/v1/agents/a1/dial", role="agent", json={"lead_id": lead_id}
    )
    assert status == 409 and body["error"]["code"] == "invalid_state"
    # Even past the use case's check, the engine's claim is fenced: nothing is dialled.
    placed = await api.runtime.engine.dispatcher.dial_preview(cid, lead_id, "a1", actor="t")
    assert placed is None and api.voice.of(cid) == []


async def test_dial_outside_preview_mode_is_refused(api: Api) -> None:
    c = await api.campaign(agent_ids=["a1"], pacing={"mode": "progressive"})
    await api.runtime.service.leads.add(c["id"], leads(1))
    await api.call("POST", "/api/v1/agents/a1/state", role="agent", json={"state": "available"})
    assert (await api.call("POST", f"/api/v1/campaigns/{c['id']}/start"))[0] == 200
    await api.tick()
    status, queue = await api.call("GET", "/api/v1/agents/a1/queue", role="agent")
    assert queue["campaign_id"] == c["id"] and queue["preview"] is None
    status, body = await api.call("POST", "/api/v1/agents/a1/dial", role="agent")
    assert status == 409 and "preview" in body["error"]["message"]
