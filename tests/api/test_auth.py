"""Login, sessions with CSRF, the login rate limit, users and API tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dialer.api.app import create_app
from dialer.api.auth import SESSION_COOKIE
from dialer.api.keys import ACCOUNTS
from dialer.channels.maildir import MaildirEmail
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.config import Settings
from tests.api.conftest import Api
from tests.harness import MONDAY_10_NY, leads

PASSWORD = "correct horse battery"


async def user(api: Api, username: str = "sue", role: str = "supervisor", **extra: Any) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/users",
        json={"username": username, "password": PASSWORD, "role": role, **extra},
    )
    assert status == 201, body


async def login(api: Api, username: str = "sue", password: str = PASSWORD) -> tuple[int, Any]:
    return await api.call(
        "POST", "/api/v1/auth/login", role=None, json={"username": username, "password": password}
    )


def fields(body: Any) -> set[str]:
    return {e["field"] for e in body["error"]["details"]["errors"]}


async def test_login_sets_a_strict_cookie_and_the_session_needs_csrf(api: Api) -> None:
    await user(api)
    resp = await api.client.post(
        "/api/v1/auth/login", json={"username": "sue", "password": PASSWORD}
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["username"] == "sue" and body["role"] == "supervisor"
    assert body["agent_id"] is None and len(body["csrf_token"]) > 20
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # http:// public base URL
    csrf = body["csrf_token"]

    status, me = await api.call("GET", "/api/v1/auth/me", role=None)  # the cookie jar sends it
    assert status == 200 and me["via"] == "session" and me["csrf_token"] == csrf

    c = await api.campaign()
    await api.runtime.service.leads.add(c["id"], leads(3))
    assert (await api.call("POST", f"/api/v1/campaigns/{c['id']}/start"))[0] == 200
    path = f"/api/v1/campaigns/{c['id']}/pause"
    status, body = await api.call("POST", path, role=None)
    assert status == 403 and body["error"]["code"] == "csrf"
    status, body = await api.call("POST", path, role=None, headers={"X-CSRF-Token": "wrong"})
    assert status == 403 and body["error"]["code"] == "csrf"
    status, body = await api.call("POST", path, role=None, headers={"X-CSRF-Token": csrf})
    assert status == 200 and body["campaign"]["state"] == "paused"
    events = (await api.call("GET", f"/api/v1/campaigns/{c['id']}/events"))[1]["items"]
    assert any(e.get("actor") == "supervisor:sue" for e in events), events


async def test_the_cookie_is_secure_behind_https(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], tmp_path: Path
) -> None:
    clock = FakeClock(MONDAY_10_NY)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tls.db'}",
        public_base_url="https://dialer.example.com",
    )
    app = create_app(
        settings,
        clock=clock,
        voice=SimulatedVoice(clock, SimProfile(), seed=1),
        email=MaildirEmail(tmp_path / "maildir", clock),
        run_engine=False,
    )
    client = await aiohttp_client(app)
    await client.app[ACCOUNTS].create_user("sue", PASSWORD, "viewer")
    resp = await client.post("/api/v1/auth/login", json={"username": "sue", "password": PASSWORD})
    assert resp.status == 200
    assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]


async def test_bad_credentials_look_alike_and_are_rate_limited(api: Api) -> None:
    await user(api)
    wrong = await login(api, password="not the password")
    unknown = await login(api, username="nobody")
    assert wrong == unknown
    assert wrong[0] == 401 and wrong[1]["error"]["code"] == "unauthorized"
    for _ in range(4):  # five failures for (address, "sue") in all
        assert (await login(api, password="still wrong"))[0] == 401
    resp = await api.client.post(
        "/api/v1/auth/login", json={"username": "sue", "password": PASSWORD}
    )
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert (await resp.json())["error"]["code"] == "too_many_attempts"
    assert (await login(api, username="nobody"))[0] == 401  # another key is not blocked


async def test_malformed_login_body_names_the_fields(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/auth/login", role=None, json={"user": "x"})
    assert status == 422 and {"username", "password", "user"} <= fields(body)
    status, body = await api.call("POST", "/api/v1/auth/login", role=None, data=b"{nope")
    assert status == 400 and body["error"]["code"] == "bad_json"


async def test_logout_ends_the_session(api: Api) -> None:
    await user(api)
    resp = await api.client.post(
        "/api/v1/auth/login", json={"username": "sue", "password": PASSWORD}
    )
    secret = resp.cookies[SESSION_COOKIE].value
    csrf = (await resp.json())["csrf_token"]
    resp = await api.client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 204
    cleared = resp.headers["Set-Cookie"]
    assert cleared.startswith(f'{SESSION_COOKIE}=""') and "Max-Age=0" in cleared
    replay = {"Cookie": f"{SESSION_COOKIE}={secret}"}
    assert (await api.call("GET", "/api/v1/auth/me", role=None, headers=replay))[0] == 401


async def test_me_with_tokens(api: Api) -> None:
    status, me = await api.call("GET", "/api/v1/auth/me", role="viewer")
    assert status == 200
    assert me == {
        "username": "viewer-test",
        "role": "viewer",
        "agent_id": None,
        "via": "token",
        "csrf_token": None,
    }
    status, me = await api.call("GET", "/api/v1/auth/me", role="agent")
    assert me["role"] == "agent" and me["agent_id"] == "a1"
    assert (await api.call("GET", "/api/v1/auth/me", role="admin"))[1]["via"] == "bootstrap"
    assert (await api.call("GET", "/api/v1/auth/me", role=None))[0] == 401


async def test_users_and_tokens_are_admin_only(api: Api) -> None:
    calls = [
        ("POST", "/api/v1/users", {"username": "x", "password": PASSWORD, "role": "viewer"}),
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/tokens", {"role": "viewer"}),
        ("GET", "/api/v1/tokens", None),
        ("DELETE", "/api/v1/tokens/abc", None),
    ]
    for method, path, body in calls:
        for role in ("supervisor", "viewer", "agent"):
            status, out = await api.call(method, path, role=role, json=body)
            assert status == 403 and out["error"]["code"] == "forbidden", (method, path, role)
        assert (await api.call(method, path, role=None, json=body))[0] == 401


async def test_user_validation(api: Api) -> None:
    await user(api, "ann", "agent", agent_id="a1")
    status, listed = await api.call("GET", "/api/v1/users")
    assert status == 200 and [(u["username"], u["agent_id"]) for u in listed["items"]] == [
        ("ann", "a1")
    ]
    assert "password" not in str(listed) and "hash" not in str(listed)
    status, body = await api.call(
        "POST", "/api/v1/users", json={"username": "ann", "password": PASSWORD, "role": "viewer"}
    )
    assert status == 409
    status, body = await api.call(
        "POST", "/api/v1/users", json={"username": "bob", "password": "short", "role": "king"}
    )
    assert status == 422 and {"password", "role"} <= fields(body)
    status, body = await api.call(
        "POST", "/api/v1/users", json={"username": "bob", "password": PASSWORD, "role": "agent"}
    )
    assert status == 422 and fields(body) == {"agent_id"}
    status, me = await login(api, "ann")
    assert status == 200 and me["role"] == "agent" and me["agent_id"] == "a1"


async def test_token_created_over_the_api_works_until_revoked(api: Api) -> None:
    status, created = await api.call(
        "POST", "/api/v1/tokens", json={"role": "supervisor", "name": "ci"}
    )
    assert status == 201
    assert created["role"] == "supervisor" and created["name"] == "ci"
    assert created["token"].startswith(f"dlr_{created['id']}_")
    bearer = {"Authorization": f"Bearer {created['token']}"}
    status, me = await api.call("GET", "/api/v1/auth/me", role=None, headers=bearer)
    assert status == 200 and me["username"] == "ci" and me["role"] == "supervisor"
    assert (await api.call("GET", "/api/v1/campaigns", role=None, headers=bearer))[0] == 200

    status, listed = await api.call("GET", "/api/v1/tokens")
    mine = next(t for t in listed["items"] if t["id"] == created["id"])
    assert "token" not in mine and mine["revoked_at"] is None
    assert (await api.call("DELETE", f"/api/v1/tokens/{created['id']}"))[0] == 204
    status, body = await api.call("GET", "/api/v1/campaigns", role=None, headers=bearer)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert (await api.call("DELETE", f"/api/v1/tokens/{created['id']}"))[0] == 404
    status, listed = await api.call("GET", "/api/v1/tokens")
    assert next(t for t in listed["items"] if t["id"] == created["id"])["revoked_at"]


async def test_agent_token_is_bound_to_its_agent(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/tokens", json={"role": "agent"})
    assert status == 422 and fields(body) == {"agent_id"}
    status, body = await api.call(
        "POST", "/api/v1/tokens", json={"role": "agent", "agent_id": "ghost"}
    )
    assert status == 422 and fields(body) == {"agent_id"}
    status, body = await api.call("POST", "/api/v1/tokens", json={"role": "pilot"})
    assert status == 422 and fields(body) == {"role"}
    status, created = await api.call(
        "POST", "/api/v1/tokens", json={"role": "agent", "agent_id": "a1"}
    )
    assert status == 201 and created["agent_id"] == "a1"
    bearer = {"Authorization": f"Bearer {created['token']}"}
    status, me = await api.call("GET", "/api/v1/auth/me", role=None, headers=bearer)
    assert me["role"] == "agent" and me["agent_id"] == "a1"
    c = await api.campaign()
    status, _ = await api.call(
        "POST", f"/api/v1/campaigns/{c['id']}/start", role=None, headers=bearer
    )
    assert status == 403
