"""RFC 8058 one-click unsubscribe: POST /u/{token} (no login; the signed token is the proof).

GET shows a page with one button (mail clients and link scanners prefetch GETs, so a GET
never unsubscribes); POST, from the mail client's one-click or the button, does it at once.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from dialer.api.docs import doc
from dialer.api.keys import RUNTIME
from dialer.errors import NotFound

routes = web.RouteTableDef()

PAGE = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem">
<h1>{title}</h1>{body}</body></html>"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=PAGE.format(title=escape(title), body=body), status=status, content_type="text/html"
    )


@routes.get("/u/{token}")
@doc("Unsubscribe confirmation page (a GET never unsubscribes)", produces="text/html", errors=())
async def confirm(request: web.Request) -> web.Response:
    token = escape(request.match_info["token"], quote=True)
    form = (
        f'<form method="post" action="/u/{token}"><p>Stop receiving these messages?</p>'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return page("Unsubscribe", form)


@routes.post("/u/{token}")
@doc(
    "RFC 8058 one-click unsubscribe",
    content_types=("application/x-www-form-urlencoded",),
    produces="text/html",
    other={404: None},
    errors=(),
)
async def unsubscribe(request: web.Request) -> web.Response:
    try:
        await request.app[RUNTIME].service.unsubscribe(request.match_info["token"])
    except NotFound:
        return page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 404)
    return page("Unsubscribed", "<p>You will not receive these messages any more.</p>")
