"""The application factory: one aiohttp app owning every resource (docs/architecture.md §14.7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from dialer.api import (
    routes_agents,
    routes_auth,
    routes_campaigns,
    routes_clicks,
    routes_dnc,
    routes_events,
    routes_health,
    routes_inbound,
    routes_leads,
    routes_openapi,
    routes_pacing,
    routes_twilio,
    routes_unsubscribe,
    routes_web,
    routes_workers,
)
from dialer.api.auth import auth_middleware
from dialer.api.errors import error_middleware
from dialer.api.guard import MAX_BODY, body_limit_middleware, security_headers
from dialer.api.inputs import input_middleware
from dialer.api.keys import ACCOUNTS, LIMITER, LIVE, RUNTIME, SETTINGS
from dialer.api.live import LiveHub
from dialer.api.login_limit import LoginLimiter
from dialer.config import Settings
from dialer.runtime import Runtime
from dialer.usecases.accounts import Accounts


def create_app(settings: Settings, **runtime_overrides: Any) -> web.Application:
    """`runtime_overrides` go to Runtime.open (tests pass a fake clock and channels)."""
    # error_middleware is outermost: a database outage met by auth_middleware's token or
    # session lookup is a 503 like any handler's (docs/architecture.md §15.1). The body limit
    # comes before authentication (a large body is refused before any work), the path and
    # query check after it (an anonymous caller learns nothing from it); api/guard.py,
    # api/inputs.py.
    app = web.Application(
        middlewares=[error_middleware, body_limit_middleware, auth_middleware, input_middleware],
        client_max_size=MAX_BODY,
    )
    app[SETTINGS] = settings
    app.on_response_prepare.append(security_headers)

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        async with Runtime.open(settings, **runtime_overrides) as rt:
            app[RUNTIME] = rt
            app[LIMITER] = LoginLimiter(rt.clock.now)  # delays on the app's clock
            secret = (
                settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else None
            )
            app[ACCOUNTS] = Accounts(rt.db, rt.clock, bootstrap_token=secret)
            hub = LiveHub(rt)
            app[LIVE] = hub
            await hub.start()
            try:
                yield
            finally:
                await hub.stop()

    async def close_streams(app: web.Application) -> None:
        # on_shutdown runs before aiohttp waits for open handlers: end the live streams now.
        if LIVE in app:
            await app[LIVE].stop()

    app.cleanup_ctx.append(runtime_ctx)
    app.on_shutdown.append(close_streams)
    for module in (
        routes_health,
        routes_auth,
        routes_campaigns,
        routes_leads,
        routes_agents,
        routes_events,
        routes_dnc,
        routes_openapi,
        routes_twilio,
        routes_unsubscribe,
        routes_web,
        routes_workers,
        routes_inbound,  # email that listens (docs/architecture.md §9.1)
        routes_clicks,
        routes_pacing,  # rolling abandon rate and dial level (docs/architecture.md §8)
    ):
        app.router.add_routes(module.routes)
    return app
