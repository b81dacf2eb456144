"""Authentication and roles on every /api/ route (docs/architecture.md §13).

A handler declares who may call it with `@requires(...)` (or `@public`); the middleware
refuses any /api/ route that declares nothing, so a forgotten decorator fails closed.
Bearer tokens are for scripts; the dashboard uses a session cookie plus an X-CSRF-Token
header on every state-changing request.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from dialer.api.errors import ApiError, error_response
from dialer.api.keys import ACCOUNTS
from dialer.usecases.accounts import Principal, Role

SESSION_COOKIE = "dialer_session"
PRINCIPAL = web.RequestKey("principal", Principal)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STAFF = (Role.ADMIN, Role.SUPERVISOR)
READERS = (Role.ADMIN, Role.SUPERVISOR, Role.VIEWER)
EVERYONE = (Role.ADMIN, Role.SUPERVISOR, Role.VIEWER, Role.AGENT)

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def requires(*roles: Role) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        handler.__dict__["dialer_roles"] = frozenset(roles)
        return handler

    return mark


def public(handler: H) -> H:
    handler.__dict__["dialer_public"] = True
    return handler


def roles_of(handler: Any) -> frozenset[Role] | None:
    fn = getattr(handler, "__func__", handler)
    roles: frozenset[Role] | None = getattr(fn, "dialer_roles", None)
    return roles


def is_public(handler: Any) -> bool:
    return bool(getattr(getattr(handler, "__func__", handler), "dialer_public", False))


def principal(request: web.Request) -> Principal:
    p: Principal = request[PRINCIPAL]
    return p


async def resolve(request: web.Request) -> Principal | None:
    accounts = request.app[ACCOUNTS]
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await accounts.verify_token(token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await accounts.session(cookie)
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        response: web.StreamResponse = await handler(request)
        return response
    route_handler = request.match_info.handler
    if is_public(route_handler):
        public_response: web.StreamResponse = await handler(request)
        return public_response
    who = await resolve(request)
    if who is None:
        return error_response(401, "unauthorized", "valid credentials are required")
    allowed = roles_of(route_handler)
    if allowed is None:  # a route without a declared policy: fail closed
        return error_response(403, "forbidden", "this route declares no access policy")
    if who.role not in allowed:
        return error_response(403, "forbidden", f"the {who.role} role may not do this")
    if who.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get("X-CSRF-Token", "")
        if not who.csrf or sent != who.csrf:
            return error_response(403, "csrf", "missing or wrong X-CSRF-Token header")
    request[PRINCIPAL] = who
    allowed_response: web.StreamResponse = await handler(request)
    return allowed_response


def own_agent_only(request: web.Request, agent_id: str) -> None:
    """An agent sees and changes only itself."""
    who = principal(request)
    if who.role is Role.AGENT and who.agent_id != agent_id:
        raise ApiError(403, "forbidden", "an agent may act only on itself")


class LoginLimiter:
    """At most `attempts` failed logins per `window` seconds per (address, username)."""

    def __init__(
        self,
        attempts: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self._clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        q = self._failures[key]
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def blocked(self, key: str) -> float:
        """Seconds until `key` may try again (0 when it may)."""
        q = self._recent(key)
        if len(q) < self.attempts:
            return 0.0
        return max(0.0, self.window - (self._clock() - q[0]))

    def failed(self, key: str) -> None:
        self._recent(key).append(self._clock())

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
