"""Tracked links (docs/api.md §10, §4.6): `GET /c/{token}` and the click map.

`GET /c/{token}` answers 302 to the link's current target and records the click (a HEAD
or a link scanner's follow is recorded as a bot click, docs/architecture.md §9.1); a token
we did not sign is a 404 page. The click map lists a campaign's links with their figures;
PATCH gives a link a new target, which mails already sent lead to as well.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from dialer.api.auth import READERS, STAFF, principal, public, requires
from dialer.api.docs import doc, reply
from dialer.api.errors import parse
from dialer.api.guard import SMALL_BODY, body_limit
from dialer.api.keys import RUNTIME
from dialer.api.routes_unsubscribe import page
from dialer.errors import NotFound
from dialer.usecases.limits import digits_id

routes = web.RouteTableDef()


class LinkOut(BaseModel):
    id: int
    step: int
    url: str
    clicks: int
    unique_clicks: int
    bot_clicks: int

    @classmethod
    def of(cls, view: Any) -> LinkOut:
        return cls(
            id=view.id,
            step=view.step,
            url=view.url,
            clicks=view.clicks,
            unique_clicks=view.unique_clicks,
            bot_clicks=view.bot_clicks,
        )


class LinkList(BaseModel):
    items: list[LinkOut]


class LinkPatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)


def not_valid() -> web.Response:
    return page("Link not valid", "<p>This link is not valid.</p>", 404)


@routes.get("/c/{token}")
@public
@body_limit(SMALL_BODY)
@doc(
    "Tracked link: records the click, 302 to the current target",
    produces="text/html",
    status=302,
    other={404: None},
    errors=(413,),
)
async def follow(request: web.Request) -> web.StreamResponse:
    target = await request.app[RUNTIME].inbound.click(
        request.match_info["token"],
        head=request.method == "HEAD",
        user_agent=request.headers.get("User-Agent"),
    )
    if target is None:
        return not_valid()
    return web.Response(
        status=302,
        headers={"Location": target, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@routes.get("/api/v1/campaigns/{id}/links")
@requires(*READERS)
@doc("The click map: a campaign's tracked links and their clicks", response=LinkList)
async def links(request: web.Request) -> web.Response:
    views = await request.app[RUNTIME].inbound.link_map(request.match_info["id"])
    return reply(LinkList(items=[LinkOut.of(v) for v in views]))


@routes.patch("/api/v1/campaigns/{id}/links/{link_id}")
@requires(*STAFF)
@doc(
    "A new target for a link, for mails already sent too (audited)",
    body=LinkPatchIn,
    response=LinkOut,
)
async def set_link(request: web.Request) -> web.Response:
    link_id = digits_id(request.match_info["link_id"])
    if link_id is None:
        raise NotFound("no such link", {"id": request.match_info["link_id"]})
    body = await parse(request, LinkPatchIn)
    view = await request.app[RUNTIME].inbound.set_link(
        request.match_info["id"], link_id, body.url, actor=principal(request).actor
    )
    return reply(LinkOut.of(view))
