"""The live event stream: state changes arrive, Last-Event-ID resumes exactly, agents see only
their own agent events, 401 without credentials, shutdown ends open streams.

Waits are bounded (`WAIT`) but never decide a test: each read stops at the awaited event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse

from dialer.api.keys import LIVE
from dialer.api.live import Filter, LiveEvent
from tests.api.conftest import Api
from tests.harness import leads

WAIT = 5.0
ROWS = ("campaign.state", "agent.state", "lead.state")  # events with a table row


@dataclass
class Frame:
    id: str | None
    event: str
    data: dict[str, Any]


class Stream:
    """A hand-rolled SSE reader: `id:`, `event:`, `data:` lines, a blank line ends a frame."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.comments: list[str] = []

    async def frame(self) -> Frame | None:
        """The next event (comments and `retry:` skipped); None at end of stream."""
        fields: dict[str, str] = {}
        while True:
            raw = await self.resp.content.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif "event" in fields:
                return Frame(fields.get("id"), fields["event"], json.loads(fields["data"]))
            else:
                fields = {}

    async def until(self, match: Callable[[Frame], bool]) -> list[Frame]:
        """Every frame up to and including the first that matches."""

        async def read() -> list[Frame]:
            seen: list[Frame] = []
            while (f := await self.frame()) is not None:
                seen.append(f)
                if match(f):
                    return seen
            raise AssertionError(f"stream ended before the awaited event; saw {seen}")

        return await asyncio.wait_for(read(), WAIT)


async def connect(api: Api, role: str = "supervisor", **headers: str) -> Stream:
    resp = await api.client.get("/api/v1/events", headers={**api.auth(role), **headers})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    return Stream(resp)


def campaign_in(state: str, cid: str) -> Callable[[Frame], bool]:
    """The row of a change to `state` (its object is the campaign as read when the row was
    fanned out, so after a quick pause + resume both rows carry the running campaign)."""

    def match(f: Frame) -> bool:
        return (
            f.event == "campaign.state"
            and f.data["type"] == "campaign.state"
            and f.data["campaign"]["id"] == cid
            and f.data["to_state"] == state
        )

    return match


async def running_campaign(api: Api) -> str:
    c = await api.campaign()
    await api.runtime.service.leads.add(c["id"], leads(4))
    status, body = await api.call("POST", f"/api/v1/campaigns/{c['id']}/start", role="supervisor")
    assert status == 200, body
    return str(c["id"])


async def test_pause_reaches_the_stream(api: Api) -> None:
    stream = await connect(api)
    cid = await running_campaign(api)
    status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor")
    assert status == 200
    seen = await stream.until(campaign_in("paused", cid))
    paused = seen[-1]
    assert paused.data["campaign"]["state"] == "paused"  # the object as read after the row
    assert paused.data["version"] == paused.data["campaign"]["version"]
    assert paused.data["version"] == body["campaign"]["version"]
    assert paused.id is not None and paused.id == paused.data["event_id"]
    ids = [int(f.id) for f in seen if f.event in ROWS and f.id]
    assert ids == sorted(set(ids))


async def test_last_event_id_resumes_exactly(api: Api) -> None:
    first = await connect(api)
    cid = await running_campaign(api)
    await api.call("POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor")
    await api.call("POST", f"/api/v1/campaigns/{cid}/resume", role="supervisor")
    live = [f for f in await first.until(campaign_in("paused", cid)) if f.event in ROWS]
    live += [f for f in await first.until(campaign_in("running", cid)) if f.event in ROWS]
    assert len(live) >= 3  # started, paused, resumed (and lead and agent rows between)
    ids = [int(f.id or 0) for f in live]
    assert ids == sorted(set(ids))
    resumed = await connect(api, **{"Last-Event-ID": str(ids[0])})
    replay = [f for f in await resumed.until(lambda f: f.id == str(ids[-1])) if f.event in ROWS]
    assert [int(f.id or 0) for f in replay] == ids[1:]
    assert [(f.event, f.data["type"]) for f in replay] == [
        (f.event, f.data["type"]) for f in live[1:]
    ]
    # then live, nothing repeated: the next change's frames all come after the last id
    await api.call("POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor")
    after = [f for f in await resumed.until(campaign_in("paused", cid)) if f.event in ROWS]
    assert all(int(f.id or 0) > ids[-1] for f in after)
    later = [f for f in await first.until(campaign_in("paused", cid)) if f.event in ROWS]
    assert [f.id for f in after] == [f.id for f in later]


async def test_agent_sees_only_its_own_agent_events(api: Api) -> None:
    mine = await connect(api, role="agent")
    staff = await connect(api)
    await api.call("POST", "/api/v1/agents", json={"name": "Other", "id": "a2"})
    await api.call("POST", "/api/v1/agents/a2/state", json={"state": "available"})
    status, _ = await api.call("POST", "/api/v1/agents/a1/state", json={"state": "available"})
    assert status == 200
    cid = await running_campaign(api)
    await api.call("POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor")
    seen = await mine.until(campaign_in("paused", cid))
    assert {f.event for f in seen} <= {"campaign.state", "agent.state"}
    agents = {f.data["agent"]["id"] for f in seen if f.event == "agent.state"}
    assert agents == {"a1"}
    everything = await staff.until(campaign_in("paused", cid))
    assert {"a1", "a2"} <= {f.data["agent"]["id"] for f in everything if f.event == "agent.state"}


async def test_campaign_filter_and_stats(api: Api) -> None:
    api.client.app[LIVE].stats_seconds = 0.1
    cid = await running_campaign(api)
    other = await running_campaign(api)
    stream = await connect(api)
    filtered = Stream(
        await api.client.get(f"/api/v1/events?campaign={cid}", headers=api.auth("viewer"))
    )
    stats = await stream.until(lambda f: f.event == "campaign.stats")
    assert stats[-1].data["stats"]["campaign_id"] in {cid, other}
    assert stats[-1].data["stats"]["state"] == "running"
    await api.call("POST", f"/api/v1/campaigns/{other}/pause", role="supervisor")
    await api.call("POST", f"/api/v1/campaigns/{cid}/pause", role="supervisor")
    seen = await filtered.until(campaign_in("paused", cid))
    about = {
        "campaign.state": lambda d: d["campaign"]["id"],
        "campaign.stats": lambda d: d["stats"]["campaign_id"],
        "lead.state": lambda d: d["lead"]["campaign_id"],
    }
    assert {about[f.event](f.data) for f in seen if f.event in about} == {cid}
    assert not any(f.event == "campaign.state" and f.data["campaign"]["id"] == other for f in seen)


async def test_refusals(api: Api) -> None:
    resp = await api.client.get("/api/v1/events")
    assert resp.status == 401
    resp = await api.client.get("/api/v1/events?campaign=c_missing", headers=api.auth())
    assert resp.status == 404
    resp = await api.client.get(
        "/api/v1/events", headers={**api.auth(), "Last-Event-ID": "yesterday"}
    )
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["details"]["errors"][0]["field"] == "Last-Event-ID"


async def test_heartbeat(api: Api) -> None:
    api.client.app[LIVE].heartbeat_seconds = 0.05
    stream = await connect(api, role="viewer")
    line = b""
    while not line.startswith(b": keep-alive"):
        line = await asyncio.wait_for(stream.resp.content.readline(), WAIT)
        assert line, "the stream ended"


async def test_shutdown_ends_open_streams(api: Api) -> None:
    streams = [await connect(api), await connect(api, role="agent")]
    hub = api.client.app[LIVE]
    await hub.stop()
    for s in streams:
        assert await asyncio.wait_for(s.frame(), WAIT) is None  # EOF
    resp = await api.client.get("/api/v1/events", headers=api.auth())
    assert resp.status == 503
    await hub.stop()  # idempotent


async def test_a_subscriber_that_falls_behind_is_cut_off(api: Api) -> None:
    hub = api.client.app[LIVE]
    hub.queue_size = 2
    slow = hub.subscribe(Filter())
    hub.queue_size = 100
    fast = hub.subscribe(Filter())
    events = [LiveEvent("lead.state", hub.cursor + i, "{}", "c1") for i in (1, 2, 3)]
    hub.publish(events)
    assert slow.closed and slow.queue.get_nowait() is None and slow.queue.empty()
    assert fast.queue.qsize() == 3 and not fast.closed
    assert hub.dropped == 1
    hub.unsubscribe(fast)
