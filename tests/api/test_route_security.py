"""Every /api/ route declares who may call it, and the middleware enforces it: 401 without
credentials, 403 for a role it does not name, 403 for a cookie session without its CSRF token.

The routes are read from the router, so a route added later is covered without editing this.
"""

from __future__ import annotations

import re

import pytest
from aiohttp import web

from dialer.api.app import create_app
from dialer.api.auth import SAFE_METHODS, SESSION_COOKIE, is_public, roles_of
from dialer.api.keys import ACCOUNTS
from dialer.config import Settings
from dialer.usecases.accounts import Role
from tests.api.conftest import Api

DUMMY = "x_dummy_0"
PASSWORD = "correct horse battery staple"


def _routes() -> list[web.AbstractRoute]:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return [
        r for r in app.router.routes() if r.method not in ("HEAD", "*") and r.resource is not None
    ]


ROUTES = _routes()
API_ROUTES = [
    r for r in ROUTES if r.resource is not None and r.resource.canonical.startswith("/api/")
]


def route_id(route: web.AbstractRoute) -> str:
    assert route.resource is not None
    return f"{route.method} {route.resource.canonical}"


def url_of(route: web.AbstractRoute) -> str:
    assert route.resource is not None
    return re.sub(r"\{[^}]+\}", DUMMY, route.resource.canonical)


def secured(route: web.AbstractRoute) -> bool:
    return not is_public(route.handler)


SECURED = [r for r in API_ROUTES if secured(r)]
CHANGING = [r for r in SECURED if r.method not in SAFE_METHODS]


def test_there_are_routes_to_check() -> None:
    assert len(SECURED) >= 12 and CHANGING


@pytest.mark.parametrize("route", API_ROUTES, ids=route_id)
def test_route_declares_a_policy(route: web.AbstractRoute) -> None:
    roles = roles_of(route.handler)
    if is_public(route.handler):
        assert roles is None, "a route is either @public or @requires(...), not both"
        return
    assert roles is not None, "an /api/ route needs @requires(...) or @public"
    assert roles, "@requires() with no role lets nobody in"
    assert all(isinstance(r, Role) for r in roles)
    assert Role.ADMIN in roles, "admin may do anything"


@pytest.mark.parametrize("route", SECURED, ids=route_id)
async def test_no_credentials_is_401(api: Api, route: web.AbstractRoute) -> None:
    status, body = await api.call(route.method, url_of(route), role=None)
    assert status == 401, body
    assert body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("route", SECURED, ids=route_id)
async def test_bad_credentials_are_401(api: Api, route: web.AbstractRoute) -> None:
    for headers in (
        {"Authorization": "Bearer dlr_not_a_token"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Cookie": f"{SESSION_COOKIE}=not-a-session"},
    ):
        status, body = await api.call(route.method, url_of(route), role=None, headers=headers)
        assert status == 401, (headers, body)


@pytest.mark.parametrize("route", SECURED, ids=route_id)
async def test_other_roles_are_403(api: Api, route: web.AbstractRoute) -> None:
    allowed = roles_of(route.handler) or frozenset()
    for role in set(Role) - allowed:
        status, body = await api.call(route.method, url_of(route), role=role.value)
        assert status == 403, (role, body)
        assert body["error"]["code"] == "forbidden"


async def _session(api: Api, role: Role) -> tuple[str, str]:
    accounts = api.client.app[ACCOUNTS]
    username = f"user-{role.value}"
    agent_id = "a1" if role is Role.AGENT else None
    await accounts.create_user(username, PASSWORD, role.value, agent_id=agent_id)
    logged_in = await accounts.login(username, PASSWORD)
    assert logged_in is not None
    secret, who = logged_in
    assert who.csrf
    return secret, who.csrf


@pytest.mark.parametrize("route", CHANGING, ids=route_id)
async def test_session_without_csrf_is_403(api: Api, route: web.AbstractRoute) -> None:
    role = min(roles_of(route.handler) or {Role.ADMIN})
    secret, csrf = await _session(api, role)
    cookie = {"Cookie": f"{SESSION_COOKIE}={secret}"}
    for headers in (cookie, {**cookie, "X-CSRF-Token": csrf[::-1]}):
        status, body = await api.call(route.method, url_of(route), role=None, headers=headers)
        assert status == 403, (headers, body)
        assert body["error"]["code"] == "csrf"
    # the same session with its token gets past the middleware (any answer but 401/403)
    status, body = await api.call(
        route.method, url_of(route), role=None, headers={**cookie, "X-CSRF-Token": csrf}
    )
    assert status not in (401, 403) or body["error"]["code"] not in ("csrf", "unauthorized")


async def test_session_reads_need_no_csrf(api: Api) -> None:
    secret, _ = await _session(api, Role.VIEWER)
    status, body = await api.call(
        "GET", "/api/v1/campaigns", role=None, headers={"Cookie": f"{SESSION_COOKIE}={secret}"}
    )
    assert status == 200, body


def test_public_routes_are_few() -> None:
    public = {route_id(r) for r in API_ROUTES if is_public(r.handler)}
    assert public <= {"POST /api/v1/auth/login", "GET /api/v1/openapi.json"}, public
