"""The engine processes of a deployment: `GET /api/v1/workers` (docs/api.md §11.1), read
from the bus's registry of heartbeats (docs/architecture.md §12.2). Admin only."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dialer.api.auth import requires
from dialer.api.docs import doc, reply
from dialer.api.errors import unavailable_response
from dialer.api.keys import RUNTIME
from dialer.api.schemas import WorkerList, WorkerOut
from dialer.usecases.accounts import Role

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
BUS_TIMEOUT = 2.0  # like /readyz: a bus that does not answer is a quick 503


@routes.get("/api/v1/workers")
@requires(Role.ADMIN)
@doc(
    "Live engine processes (serve's engine and every `dialer worker`): host, pid, started, "
    "last heartbeat and the campaigns each dispatched for in its last round",
    response=WorkerList,
    errors=(401, 403, 503),
)
async def list_workers(request: web.Request) -> web.Response:
    bus = request.app[RUNTIME].bus
    try:
        async with asyncio.timeout(BUS_TIMEOUT):
            workers = await bus.workers()
    except Exception as exc:  # Redis unreachable or slow: whatever the client raised
        log.warning("workers.bus_unavailable", extra={"error": type(exc).__name__})
        return unavailable_response("the bus is unavailable; retry later")
    workers.sort(key=lambda w: (str(w["host"]), float(w["started_at"]), str(w["id"])))
    return reply(WorkerList(items=[WorkerOut.of(w) for w in workers]))
