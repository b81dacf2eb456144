"""The live event stream (docs/api.md §9): `GET /api/v1/events`, text/event-stream.

Frames are `id:` (an events-table id), `event:` and one `data:` line of JSON; `: keep-alive`
comment lines keep idle connections open. With `Last-Event-ID` the stream first replays the
rows after it from the table, then goes live: nothing missed, nothing repeated.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from dialer.api.auth import EVERYONE, principal, requires
from dialer.api.docs import doc
from dialer.api.errors import ApiError
from dialer.api.keys import LIVE, RUNTIME
from dialer.api.live import Filter, LiveEvent, LiveHub, Subscriber
from dialer.errors import invalid
from dialer.usecases.accounts import Role

routes = web.RouteTableDef()

WRITE_TIMEOUT = 10.0  # a client that takes no bytes for this long is cut off
BATCH = 256  # frames coalesced into one write
RETRY_MS = 2000  # what EventSource waits before reconnecting after the stream ends


def _last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise invalid(
            "Last-Event-ID",
            "not an event id",
            summary="Last-Event-ID must be an id this stream sent",
        )
    return int(raw)


async def _filter(request: web.Request) -> Filter:
    who = principal(request)
    campaign = request.query.get("campaign") or None
    if campaign is not None:
        await request.app[RUNTIME].service.get_campaign(campaign)  # 404 when unknown
    if who.role is Role.AGENT:
        return Filter(campaign, agent_view=True, agent_id=who.agent_id)
    return Filter(campaign)


async def _write(resp: web.StreamResponse, text: str) -> None:
    async with asyncio.timeout(WRITE_TIMEOUT):
        await resp.write(text.encode())


async def _replay(hub: LiveHub, resp: web.StreamResponse, flt: Filter, sent: int) -> int:
    """Replay rows after `sent` until caught up with the hub; returns the last id sent."""
    while sent < hub.cursor and hub.running:
        async for page, upto in hub.history(sent, hub.cursor):
            frames = [ev.frame() for ev in page if flt.wants(ev)]
            if frames:
                await _write(resp, "".join(frames))
            sent = upto
    return sent


async def _pump(hub: LiveHub, resp: web.StreamResponse, sub: Subscriber, sent: int) -> None:
    """Queue -> socket until the hub closes the subscription or the client goes away."""
    while True:
        try:
            async with asyncio.timeout(hub.heartbeat_seconds):
                first = await sub.queue.get()
        except TimeoutError:
            await _write(resp, ": keep-alive\n\n")
            continue
        batch: list[LiveEvent | None] = [first]
        while len(batch) < BATCH and not sub.queue.empty():
            batch.append(sub.queue.get_nowait())
        frames: list[str] = []
        for ev in batch:
            if ev is None:
                return
            if ev.row and ev.seq <= sent:
                continue  # already replayed (the client resumed from past the cursor)
            frames.append(ev.frame(sent))
            sent = max(sent, ev.seq)
        if frames:
            await _write(resp, "".join(frames))


@routes.get("/api/v1/events")
@requires(*EVERYONE)
@doc(
    "Live events (Server-Sent Events): campaign.state, campaign.stats, agent.state, "
    "lead.state; resume with Last-Event-ID",
    query={"campaign": "string"},
    produces="text/event-stream",
    errors=(401, 403, 404, 422),
)
async def events(request: web.Request) -> web.StreamResponse:
    hub = request.app[LIVE]
    last = _last_event_id(request)
    flt = await _filter(request)
    if not hub.running:
        raise ApiError(503, "unavailable", "the server is shutting down")
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    sub: Subscriber | None = None
    try:
        await _write(resp, f"retry: {RETRY_MS}\n\n")
        sent = hub.cursor if last is None else await _replay(hub, resp, flt, last)
        if not hub.running:
            return resp
        sub = hub.subscribe(flt)  # no await since _replay's last look at the cursor
        await _pump(hub, resp, sub, sent)
    except (ConnectionError, TimeoutError):
        return resp  # the client went away or stopped reading
    finally:
        if sub is not None:
            hub.unsubscribe(sub)
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
