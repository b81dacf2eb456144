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
from dialer.errors import ValidationFailed, invalid
from dialer.store import events as event_store
from dialer.usecases.accounts import Role
from dialer.usecases.limits import digits_id, is_id

routes = web.RouteTableDef()

WRITE_TIMEOUT = 10.0  # a client that takes no bytes for this long is cut off
BATCH = 256  # frames coalesced into one write
RETRY_MS = 2000  # what EventSource waits before reconnecting after the stream ends


def _bad_last_event_id() -> ValidationFailed:
    return invalid(
        "Last-Event-ID", "not an event id", summary="Last-Event-ID must be an id this stream sent"
    )


async def _last_event_id(request: web.Request, hub: LiveHub) -> int | None:
    """The id to resume after: ASCII digits (`isdigit()` takes '²', which int() refuses) of
    an event that exists. An id past the last event would silently skip every event up to
    it, so it is refused; one past this process's cursor (another process streamed it) is
    checked against the table."""
    raw = request.headers.get("Last-Event-ID", "").strip()
    if not raw:
        return None
    last = digits_id(raw)
    if last is None:
        raise _bad_last_event_id()
    if last > hub.cursor:
        async with request.app[RUNTIME].db.reader() as s:
            if last > await event_store.last_id(s):
                raise _bad_last_event_id()
    return last


async def _filter(request: web.Request) -> Filter:
    who = principal(request)
    campaign = request.query.get("campaign") or None
    if campaign is not None and not is_id(campaign):
        raise ApiError(404, "not_found", f"no campaign {campaign!r}", {"id": campaign})
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
    last = await _last_event_id(request, hub)
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
