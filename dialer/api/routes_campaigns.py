"""Campaign routes (docs/api.md §4)."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from dialer.api.auth import READERS, STAFF, principal, requires
from dialer.api.docs import doc, reply
from dialer.api.errors import parse, query_int, read_object
from dialer.api.keys import RUNTIME
from dialer.api.schemas import (
    AtIn,
    CampaignList,
    CampaignOut,
    EventList,
    EventOut,
    PauseAllOut,
    PauseIn,
    PauseOut,
    StatsOut,
    TerminateIn,
    TerminateOut,
)
from dialer.domain.campaign import CampaignPatch, CampaignSpec
from dialer.domain.states import CampaignState
from dialer.errors import invalid
from dialer.store.models import Campaign
from dialer.usecases.campaigns import Service
from dialer.usecases.limits import digits_id

routes = web.RouteTableDef()
ENTITIES = ("campaign", "lead", "agent")


def service(request: web.Request) -> Service:
    return request.app[RUNTIME].service


class _Scheduled(Protocol):
    async def __call__(self, campaign_id: str, *, actor: str, at: float | None) -> Campaign: ...


async def _now_or_at(request: web.Request, action: _Scheduled) -> web.Response:
    """Start or resume: now, or at the body's `at`."""
    body = await parse(request, AtIn, optional=True)
    c = await action(
        request.match_info["id"],
        actor=principal(request).actor,
        at=body.at.timestamp() if body.at else None,
    )
    return reply(CampaignOut.of(c))


@routes.post("/api/v1/campaigns")
@requires(*STAFF)
@doc("Create a draft campaign", body=CampaignSpec, response=CampaignOut, status=201)
async def create(request: web.Request) -> web.Response:
    data = await read_object(request)
    c = await service(request).create_campaign(data, actor=principal(request).actor)
    return reply(CampaignOut.of(c), 201)


@routes.get("/api/v1/campaigns")
@requires(*READERS)
@doc(
    "List campaigns",
    response=CampaignList,
    query={"state": "string", "archived": "string"},
)
async def list_(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state is not None and state not in set(CampaignState):
        raise invalid("state", f"one of {', '.join(CampaignState)}", summary="unknown state")
    archived_q = request.query.get("archived", "false")
    archived: bool | None = {"false": False, "true": True, "all": None}.get(archived_q, False)
    if archived_q not in ("false", "true", "all"):
        raise invalid("archived", "true, false or all", summary="archived is true, false or all")
    svc = service(request)
    items = await svc.list_views(state=state, archived=archived)
    now = svc.clock.now()
    return reply(CampaignList(items=[CampaignOut.of_view(v, now) for v in items]))


@routes.get("/api/v1/campaigns/{id}")
@requires(*READERS)
@doc(
    "One campaign, with its channels' status and, while stopping, what it waits for",
    response=CampaignOut,
)
async def get(request: web.Request) -> web.Response:
    svc = service(request)
    view = await svc.view(request.match_info["id"])
    return reply(CampaignOut.of_view(view, svc.clock.now()))


@routes.patch("/api/v1/campaigns/{id}")
@requires(*STAFF)
@doc(
    "Change a campaign's configuration (draft, scheduled or paused); If-Match: <version>",
    body=CampaignPatch,
    response=CampaignOut,
    errors=(400, 401, 403, 404, 409, 412, 422),
)
async def patch(request: web.Request) -> web.Response:
    if_match = request.headers.get("If-Match")
    version: int | None = None
    if if_match is not None:
        version = digits_id(if_match.strip().removeprefix("W/").strip('"'))
        if version is None:
            raise invalid("If-Match", "not a version", summary="If-Match must be a version number")
    data = await read_object(request)
    c = await service(request).update_campaign(
        request.match_info["id"], data, actor=principal(request).actor, if_version=version
    )
    return reply(CampaignOut.of(c))


@routes.post("/api/v1/campaigns/{id}/start")
@requires(*STAFF)
@doc('Start now, or schedule with {"at": time}', body=AtIn, response=CampaignOut)
async def start(request: web.Request) -> web.Response:
    return await _now_or_at(request, service(request).start)


@routes.post("/api/v1/campaigns/{id}/pause")
@requires(*STAFF)
@doc("Pause: nothing more goes out once this returns", body=PauseIn, response=PauseOut)
async def pause(request: web.Request) -> web.Response:
    body = await parse(request, PauseIn, optional=True)
    result = await service(request).pause(
        request.match_info["id"], actor=principal(request).actor, reason=body.reason
    )
    return reply(PauseOut.of(result))


@routes.post("/api/v1/campaigns/{id}/resume")
@requires(*STAFF)
@doc('Resume now, or at {"at": time}', body=AtIn, response=CampaignOut)
async def resume(request: web.Request) -> web.Response:
    return await _now_or_at(request, service(request).resume)


@routes.post("/api/v1/campaigns/{id}/terminate")
@requires(*STAFF)
@doc(
    "Terminate for good: cancel, or stop after in-flight work drains",
    body=TerminateIn,
    response=TerminateOut,
    other={202: TerminateOut},
)
async def terminate(request: web.Request) -> web.Response:
    body = await parse(request, TerminateIn)
    result = await service(request).terminate(
        request.match_info["id"], confirm=body.confirm, actor=principal(request).actor
    )
    status = 202 if result.campaign.state == CampaignState.STOPPING else 200
    return reply(TerminateOut.of(result), status)


@routes.post("/api/v1/campaigns/{id}/archive")
@requires(*STAFF)
@doc("Hide from default lists (pauses it if running)", response=CampaignOut)
async def archive(request: web.Request) -> web.Response:
    c = await service(request).archive(request.match_info["id"], actor=principal(request).actor)
    return reply(CampaignOut.of(c))


@routes.post("/api/v1/campaigns/{id}/unarchive")
@requires(*STAFF)
@doc("Back in the default lists; it may be resumed or started again", response=CampaignOut)
async def unarchive(request: web.Request) -> web.Response:
    c = await service(request).unarchive(request.match_info["id"], actor=principal(request).actor)
    return reply(CampaignOut.of(c))


@routes.post("/api/v1/campaigns/pause-all")
@requires(*STAFF)
@doc("Pause every running or scheduled campaign", body=PauseIn, response=PauseAllOut)
async def pause_all(request: web.Request) -> web.Response:
    body = await parse(request, PauseIn, optional=True)
    paused = await service(request).pause_all(actor=principal(request).actor, reason=body.reason)
    return reply(PauseAllOut(paused=paused))


@routes.get("/api/v1/campaigns/{id}/stats")
@requires(*READERS)
@doc("Exact figures from the database", response=StatsOut)
async def stats(request: web.Request) -> web.Response:
    return reply(StatsOut.of(await service(request).stats(request.match_info["id"])))


@routes.get("/api/v1/campaigns/{id}/events")
@requires(*READERS)
@doc(
    "Audit trail, oldest first (?entity=campaign|lead|agent filters)",
    response=EventList,
    query={"after": "integer", "limit": "integer", "entity": "string"},
)
async def events(request: web.Request) -> web.Response:
    after = query_int(request, "after", 0, lo=0, hi=2**62)
    limit = query_int(request, "limit", 1000, lo=1, hi=10000)
    entity = request.query.get("entity")
    if entity is not None and entity not in ENTITIES:
        raise invalid("entity", f"one of {', '.join(ENTITIES)}", summary="unknown entity")
    items = await service(request).events(
        request.match_info["id"], after_id=after, limit=limit, entity=entity
    )
    return reply(EventList(items=[EventOut.of(e) for e in items]))
