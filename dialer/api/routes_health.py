"""Health and metrics: no auth (docs/api.md §11, §12)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dialer.api.docs import doc
from dialer.api.errors import RETRY_AFTER_SECONDS
from dialer.api.keys import RUNTIME

routes = web.RouteTableDef()
BUS_TIMEOUT = 2.0


@routes.get("/healthz")
@doc("The process is up", errors=())
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@doc("The database and the bus are reachable; which one is not", other={503: None}, errors=())
async def readyz(request: web.Request) -> web.Response:
    """Each dependency is checked with a short timeout: a database that does not answer makes
    this a quick 503 naming it, never a hung probe (docs/architecture.md §15.1)."""
    rt = request.app[RUNTIME]
    db_error = await rt.db.check()
    try:
        async with asyncio.timeout(BUS_TIMEOUT):
            bus_ok = await rt.bus.healthy()
    except TimeoutError:
        bus_ok = False
    checks: dict[str, dict[str, object]] = {
        "database": {"ok": db_error is None} | ({"error": db_error} if db_error else {}),
        "bus": {"ok": bus_ok} | ({} if bus_ok else {"error": "the bus is not connected"}),
    }
    ok = db_error is None and bus_ok
    body = {
        "status": "ok" if ok else "unavailable",
        "checks": checks,
        "database": db_error is None,  # the flat booleans of before, kept for probes
        "bus": bus_ok,
    }
    response = web.json_response(body, status=200 if ok else 503)
    if not ok:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@routes.get("/metrics")
@doc("Prometheus metrics", produces="text/plain", errors=())
async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[RUNTIME].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
