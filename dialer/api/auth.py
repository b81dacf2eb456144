"""Authentication and roles on every /api/ route (docs/architecture.md §13).

A handler declares who may call it with `@requires(...)` (or `@public`); the middleware
refuses any /api/ route that declares nothing, so a forgotten decorator fails closed.
Bearer tokens are for scripts; the dashboard uses a session cookie plus an X-CSRF-Token
header on every state-changing request.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from dialer.api.errors import ApiError, error_response
from dialer.api.keys import ACCOUNTS
from dialer.usecases.accounts import Principal, Role

SESSION_COOKIE = "dialer_session"
# What a bearer token or a session secret can look like: anything else is no credential
# (and never reaches the database: PostgreSQL refuses a NUL, nothing encodes a surrogate).
_TOKEN = re.compile(r"[\x21-\x7e]{1,512}")
_SESSION = re.compile(r"[A-Za-z0-9_-]{16,128}")
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
        token = token.strip()
        if scheme.lower() != "bearer" or not _TOKEN.fullmatch(token):
            return None
        return await accounts.verify_token(token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and _SESSION.fullmatch(cookie):
        return await accounts.session(cookie)
    return None


def csrf_matches(sent: str, expected: str | None) -> bool:
    """The session's CSRF token, compared in constant time (as bytes: compare_digest refuses
    non-ASCII strings, and a header may carry anything)."""
    if not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode())


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.match_info.http_exception is not None:
        # Not the API, or no route there: the router's own 404 / 405 answers, unauthenticated.
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
        if not csrf_matches(request.headers.get("X-CSRF-Token", ""), who.csrf):
            return error_response(403, "csrf", "missing or wrong X-CSRF-Token header")
    request[PRINCIPAL] = who
    allowed_response: web.StreamResponse = await handler(request)
    return allowed_response


def own_agent_only(request: web.Request, agent_id: str) -> None:
    """An agent sees and changes only itself."""
    who = principal(request)
    if who.role is Role.AGENT and who.agent_id != agent_id:
        raise ApiError(403, "forbidden", "an agent may act only on itself")
