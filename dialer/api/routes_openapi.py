"""GET /api/v1/openapi.json: the OpenAPI document of this server (docs/api.md).

Public on purpose: it describes the API and holds no data, and clients (schemathesis, code
generators, the dashboard) need it before they have credentials.
"""

from __future__ import annotations

from aiohttp import web

from dialer.api.auth import public
from dialer.api.docs import doc
from dialer.api.openapi import OPENAPI_PATH, build_openapi

routes = web.RouteTableDef()


@routes.get(OPENAPI_PATH)
@public
@doc("This OpenAPI 3.1 document", errors=())
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request.app))
