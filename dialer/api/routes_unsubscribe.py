"""RFC 8058 one-click unsubscribe: POST /u/{token} (no login; the signed token is the proof).

GET shows a page with one button (mail clients and link scanners prefetch GETs, so a GET
never unsubscribes); POST, from the mail client's one-click or the button, does it at once.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from aiohttp import web

from dialer.api.docs import doc
from dialer.api.guard import SMALL_BODY, body_limit
from dialer.api.keys import RUNTIME
from dialer.errors import NotFound

routes = web.RouteTableDef()

STYLE = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}"
PAGE = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>
<style>{style}</style><body><h1>{title}</h1>{body}</body></html>"""
# The page runs nothing, loads nothing, posts only to itself and cannot be framed: its one
# style sheet is allowed by its hash (docs/architecture.md §13).
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "no-store",
}


def page(title: str, body: str, status: int = 200) -> web.Response:
    text = PAGE.format(title=escape(title), style=STYLE, body=body)
    return web.Response(text=text, status=status, content_type="text/html", headers=HEADERS)


def not_valid() -> web.Response:
    return page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 404)


@routes.get("/u/{token}")
@body_limit(SMALL_BODY)
@doc(
    "Unsubscribe confirmation page (a GET never unsubscribes)",
    produces="text/html",
    other={404: None},
    errors=(413,),
)
async def confirm(request: web.Request) -> web.Response:
    raw = request.match_info["token"]
    if request.app[RUNTIME].service.unsubscribe_lead(raw) is None:
        return not_valid()
    token = escape(raw, quote=True)
    form = (
        f'<form method="post" action="/u/{token}"><p>Stop receiving these messages?</p>'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return page("Unsubscribe", form)


@routes.post("/u/{token}")
@body_limit(SMALL_BODY)
@doc(
    "RFC 8058 one-click unsubscribe",
    content_types=("application/x-www-form-urlencoded",),
    produces="text/html",
    other={404: None},
    errors=(413,),
)
async def unsubscribe(request: web.Request) -> web.Response:
    # RFC 8058's body says "List-Unsubscribe=One-Click"; it is read (at most SMALL_BODY, a
    # larger one is a 413) and not needed: the signed token is the proof.
    await request.read()
    try:
        await request.app[RUNTIME].service.unsubscribe(request.match_info["token"])
    except NotFound:
        return not_valid()
    return page("Unsubscribed", "<p>You will not receive these messages any more.</p>")
