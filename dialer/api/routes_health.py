"""Health and metrics: no auth (docs/api.md §11, §12)."""

from __future__ import annotations

from aiohttp import web

from dialer.api.docs import doc
from dialer.api.keys import RUNTIME

routes = web.RouteTableDef()


@routes.get("/healthz")
@doc("The process is up", errors=())
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@doc("The database and the bus are reachable", other={503: None}, errors=())
async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    checks = {"database": await rt.db.ping(), "bus": await rt.bus.healthy()}
    status = 200 if all(checks.values()) else 503
    return web.json_response(
        {"status": "ok" if status == 200 else "unavailable", **checks}, status=status
    )


@routes.get("/metrics")
@doc("Prometheus metrics", produces="text/plain", errors=())
async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[RUNTIME].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
