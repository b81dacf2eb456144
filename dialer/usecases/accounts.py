"""Credentials: API tokens, dashboard users and sessions. Secrets are random, stored only
as hashes; passwords with scrypt (hashlib), compared in constant time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from dialer.clock import Clock
from dialer.errors import Conflict, ValidationFailed
from dialer.store import accounts as store
from dialer.store.auth_models import ApiToken, Session, User
from dialer.store.db import Database
from dialer.usecases.limits import text_problem

SESSION_SECONDS = 12 * 3600.0
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# A token's name is its actor in the audit trail ("<role>:<name>", events.actor holds 100).
TOKEN_NAME_MAX = 64
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class Role(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: from a bearer token, a session cookie or the bootstrap secret."""

    subject: str
    role: Role
    agent_id: str | None = None
    via: str = "token"  # token / session / bootstrap
    csrf: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.subject}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


# Checked against when the user does not exist, so a miss costs what a hit costs.
_DUMMY_HASH = hash_password("not-a-password", salt=b"0" * 16)


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationFailed(
            "unknown role", [{"field": "role", "message": "admin, supervisor, agent or viewer"}]
        ) from None


class Accounts:
    def __init__(self, db: Database, clock: Clock, *, bootstrap_token: str | None = None) -> None:
        self.db = db
        self.clock = clock
        self._bootstrap = bootstrap_token

    # -- tokens ----------------------------------------------------------------------------
    async def create_token(
        self, role: str, *, name: str = "", agent_id: str | None = None
    ) -> tuple[str, ApiToken]:
        """A new token; the plain secret is returned once and never stored."""
        r = _role(role)
        if r is Role.AGENT and not agent_id:
            raise ValidationFailed(
                "an agent token names its agent", [{"field": "agent_id", "message": "required"}]
            )
        problem = text_problem(name, single_line=True, max_length=TOKEN_NAME_MAX)
        if problem:
            raise ValidationFailed(f"name: {problem}", [{"field": "name", "message": problem}])
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiToken(
            id=token_id,
            name=name or f"{r}-{token_id}",
            role=r,
            agent_id=agent_id,
            secret_hash=sha256(secret),
            created_at=self.clock.now(),
        )
        async with self.db.session() as s:
            s.add(row)
        return f"dlr_{token_id}_{secret}", row

    async def verify_token(self, token: str) -> Principal | None:
        if self._bootstrap and hmac.compare_digest(token.encode(), self._bootstrap.encode()):
            return Principal("bootstrap", Role.ADMIN, via="bootstrap")
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "dlr":
            return None
        async with self.db.reader() as s:
            row = await store.token(s, parts[1])
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, sha256(parts[2])):
            return None
        return Principal(row.name, Role(row.role), row.agent_id, via="token")

    async def tokens(self) -> list[ApiToken]:
        """Every token, newest first (hashes only; the secrets were never stored)."""
        async with self.db.reader() as s:
            return await store.tokens(s)

    async def revoke_token(self, token_id: str) -> bool:
        async with self.db.session() as s:
            row = await store.token(s, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self.clock.now()
            return True

    # -- users and sessions ----------------------------------------------------------------
    async def create_user(
        self, username: str, password: str, role: str, *, agent_id: str | None = None
    ) -> User:
        r = _role(role)
        errors = []
        if not USERNAME.match(username):
            errors.append({"field": "username", "message": "1-64 of letters, digits, _ . @ -"})
        if len(password) < 10:
            errors.append({"field": "password", "message": "at least 10 characters"})
        if r is Role.AGENT and not agent_id:
            errors.append({"field": "agent_id", "message": "required for an agent"})
        if errors:
            raise ValidationFailed("invalid user", errors)
        async with self.db.session() as s:
            if await store.user(s, username) is not None:
                raise Conflict(f"user {username!r} exists", {"username": username})
            user = User(
                username=username,
                password_hash=await asyncio.to_thread(hash_password, password),
                role=r,
                agent_id=agent_id,
                created_at=self.clock.now(),
            )
            s.add(user)
        return user

    async def set_password(self, username: str, password: str) -> bool:
        """A new password for an existing user (False if there is no such user)."""
        digest = await asyncio.to_thread(hash_password, password)
        async with self.db.session() as s:
            user = await store.user(s, username)
            if user is None:
                return False
            user.password_hash = digest
            await store.end_sessions_of(s, username)
            return True

    async def login(self, username: str, password: str) -> tuple[str, Principal] | None:
        """A new session for good credentials: (session secret, principal with csrf)."""
        async with self.db.session() as s:
            user = await store.user(s, username)
        # scrypt takes tens of milliseconds: run it off the event loop.
        if user is None:
            await asyncio.to_thread(verify_password, password, _DUMMY_HASH)
            return None
        if not await asyncio.to_thread(verify_password, password, user.password_hash):
            return None
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = self.clock.now()
        async with self.db.session() as s:
            await store.end_expired_sessions(s, now)
            s.add(
                Session(
                    id_hash=sha256(secret),
                    username=username,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + SESSION_SECONDS,
                )
            )
        return secret, Principal(username, Role(user.role), user.agent_id, "session", csrf)

    async def session(self, secret: str) -> Principal | None:
        async with self.db.reader() as s:
            row = await store.login_session(s, sha256(secret))
            if row is None or row.expires_at < self.clock.now():
                return None
            user = await store.user(s, row.username)
        if user is None:
            return None
        return Principal(user.username, Role(user.role), user.agent_id, "session", row.csrf)

    async def logout(self, secret: str) -> None:
        async with self.db.session() as s:
            await store.end_session(s, sha256(secret))

    async def users(self) -> list[User]:
        async with self.db.reader() as s:
            return await store.users(s)
