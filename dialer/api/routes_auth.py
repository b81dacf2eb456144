"""Login, sessions, users and API tokens (docs/api.md §2; docs/architecture.md §13)."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime

from aiohttp import web
from pydantic import Field

from dialer.api.auth import EVERYONE, SESSION_COOKIE, principal, public, requires
from dialer.api.docs import doc, reply
from dialer.api.errors import ApiError, error_response, parse
from dialer.api.guard import SMALL_BODY, body_limit
from dialer.api.keys import ACCOUNTS, LIMITER, RUNTIME, SETTINGS
from dialer.api.login_limit import Refusal, client_address
from dialer.api.schemas import In, Out
from dialer.errors import NotFound, invalid
from dialer.store.auth_models import ApiToken, User
from dialer.usecases.accounts import SESSION_SECONDS, TOKEN_NAME_MAX, Role

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
BAD_CREDENTIALS = "wrong username or password"


def _iso(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class LoginIn(In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(Out):
    username: str
    role: Role
    agent_id: str | None
    csrf_token: str


class MeOut(Out):
    username: str
    role: Role
    agent_id: str | None
    via: str = Field(description="token, session or bootstrap")
    csrf_token: str | None = None  # only for a session: the dashboard recovers it on reload


class UserIn(In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=10, max_length=1024)
    role: Role
    agent_id: str | None = Field(default=None, min_length=1, max_length=64)


class UserOut(Out):
    username: str
    role: Role
    agent_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            username=u.username,
            role=Role(u.role),
            agent_id=u.agent_id,
            created_at=_iso(u.created_at),
        )


class UserList(Out):
    items: list[UserOut]


class TokenIn(In):
    role: Role
    name: str = Field(default="", max_length=TOKEN_NAME_MAX)
    agent_id: str | None = Field(default=None, min_length=1, max_length=64)


class TokenOut(Out):
    id: str
    name: str
    role: Role
    agent_id: str | None
    created_at: datetime
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, t: ApiToken) -> TokenOut:
        return cls(
            id=t.id,
            name=t.name,
            role=Role(t.role),
            agent_id=t.agent_id,
            created_at=_iso(t.created_at),
            revoked_at=_iso(t.revoked_at) if t.revoked_at is not None else None,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="the secret, shown this once and never again")


class TokenList(Out):
    items: list[TokenOut]


async def _known_agent(request: web.Request, agent_id: str | None) -> None:
    if agent_id is None:
        return
    try:
        await request.app[RUNTIME].service.agents.get(agent_id)
    except NotFound:
        raise invalid("agent_id", "unknown agent", summary=f"no agent {agent_id!r}") from None


@routes.post("/api/v1/auth/login")
@public
@body_limit(SMALL_BODY)
@doc(
    "Log in to the dashboard: sets the session cookie, returns the CSRF token",
    body=LoginIn,
    response=SessionOut,
    errors=(400, 401, 413, 422, 429),
)
async def login(request: web.Request) -> web.Response:
    body = await parse(request, LoginIn)
    limiter = request.app[LIMITER]
    address = client_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", []),
        request.app[SETTINGS].trusted_proxy_networks,
    )
    ticket = limiter.reserve(address, body.username)
    if isinstance(ticket, Refusal):
        return _refused(ticket, body.username, address)
    try:
        found = await limiter.check(
            lambda: request.app[ACCOUNTS].login(body.username, body.password)
        )
    except BaseException:
        limiter.cancelled(ticket)  # no verdict: the database is down, the client left
        raise
    if isinstance(found, Refusal):
        limiter.cancelled(ticket)
        return _refused(found, body.username, address)
    if found is None:
        limiter.failed(ticket)
        log.warning("auth.login_failed", extra={"user": body.username, "remote": address})
        return error_response(401, "unauthorized", BAD_CREDENTIALS)
    limiter.succeeded(ticket)
    secret, who = found
    assert who.csrf is not None
    response = reply(
        SessionOut(username=who.subject, role=who.role, agent_id=who.agent_id, csrf_token=who.csrf)
    )
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_SECONDS),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS].public_base_url.startswith("https"),
    )
    log.info("auth.login", extra={"user": who.subject, "role": str(who.role)})
    return response


def _refused(refusal: Refusal, username: str, address: str) -> web.Response:
    """429 with Retry-After; every refusal is in the log (the audit of logins)."""
    retry = max(1, math.ceil(refusal.retry_after))
    log.warning(
        "auth.login_refused",
        extra={"user": username, "remote": address, "scope": refusal.scope, "retry_after": retry},
    )
    response = error_response(
        429,
        "too_many_attempts",
        "too many failed logins; try again later",
        {"retry_after": retry},
    )
    response.headers["Retry-After"] = str(retry)
    return response


@routes.post("/api/v1/auth/logout")
@requires(*EVERYONE)
@doc("Log out: ends the session and clears its cookie", status=204, errors=(401, 403))
async def logout(request: web.Request) -> web.Response:
    if principal(request).via == "session":
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            await request.app[ACCOUNTS].logout(cookie)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/v1/auth/me")
@requires(*EVERYONE)
@doc("Who is asking (with the CSRF token for a session)", response=MeOut, errors=(401,))
async def me(request: web.Request) -> web.Response:
    who = principal(request)
    return reply(
        MeOut(
            username=who.subject,
            role=who.role,
            agent_id=who.agent_id,
            via=who.via,
            csrf_token=who.csrf if who.via == "session" else None,
        )
    )


@routes.post("/api/v1/users")
@requires(Role.ADMIN)
@doc("Create a dashboard user", body=UserIn, response=UserOut, status=201)
async def create_user(request: web.Request) -> web.Response:
    body = await parse(request, UserIn)
    await _known_agent(request, body.agent_id)
    user = await request.app[ACCOUNTS].create_user(
        body.username, body.password, body.role, agent_id=body.agent_id
    )
    log.info(
        "auth.user_created",
        extra={"user": user.username, "role": user.role, "actor": principal(request).actor},
    )
    return reply(UserOut.of(user), 201)


@routes.get("/api/v1/users")
@requires(Role.ADMIN)
@doc("List dashboard users", response=UserList)
async def list_users(request: web.Request) -> web.Response:
    users = await request.app[ACCOUNTS].users()
    return reply(UserList(items=[UserOut.of(u) for u in users]))


@routes.post("/api/v1/tokens")
@requires(Role.ADMIN)
@doc(
    "Create an API token; the secret is in this answer only",
    body=TokenIn,
    response=TokenCreated,
    status=201,
)
async def create_token(request: web.Request) -> web.Response:
    body = await parse(request, TokenIn)
    await _known_agent(request, body.agent_id)
    plain, row = await request.app[ACCOUNTS].create_token(
        body.role, name=body.name, agent_id=body.agent_id
    )
    log.info(
        "auth.token_created",
        extra={"id": row.id, "role": row.role, "actor": principal(request).actor},
    )
    return reply(TokenCreated(token=plain, **TokenOut.of(row).model_dump()), 201)


@routes.get("/api/v1/tokens")
@requires(Role.ADMIN)
@doc("List API tokens (never their secrets)", response=TokenList)
async def list_tokens(request: web.Request) -> web.Response:
    rows = await request.app[ACCOUNTS].tokens()
    return reply(TokenList(items=[TokenOut.of(t) for t in rows]))


@routes.delete("/api/v1/tokens/{id}")
@requires(Role.ADMIN)
@doc("Revoke an API token", status=204)
async def revoke_token(request: web.Request) -> web.Response:
    token_id = request.match_info["id"]
    if not await request.app[ACCOUNTS].revoke_token(token_id):
        raise ApiError(404, "not_found", f"no active token {token_id!r}")
    log.info("auth.token_revoked", extra={"id": token_id, "actor": principal(request).actor})
    return web.Response(status=204)
