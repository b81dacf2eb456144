"""Credential queries: API tokens, dashboard users, their sessions, and server secrets."""

from __future__ import annotations

import secrets
import time

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.store.auth_models import ApiToken, Secret, Session, User


async def token(session: AsyncSession, token_id: str) -> ApiToken | None:
    return await session.get(ApiToken, token_id)


async def tokens(session: AsyncSession) -> list[ApiToken]:
    """Every token, newest first."""
    rows = await session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc()))
    return list(rows.all())


async def user(session: AsyncSession, username: str) -> User | None:
    return await session.get(User, username)


async def users(session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(User.username))).all())


async def login_session(session: AsyncSession, id_hash: str) -> Session | None:
    return await session.get(Session, id_hash)


async def end_sessions_of(session: AsyncSession, username: str) -> None:
    await session.execute(delete(Session).where(Session.username == username))


async def end_expired_sessions(session: AsyncSession, now: float) -> None:
    await session.execute(delete(Session).where(Session.expires_at < now))


async def end_session(session: AsyncSession, id_hash: str) -> None:
    await session.execute(delete(Session).where(Session.id_hash == id_hash))


async def secret(session: AsyncSession, name: str) -> str:
    """A server secret, generated (random, 256 bits) and kept on first use."""
    row = await session.get(Secret, name)
    if row is None:
        row = Secret(name=name, value=secrets.token_hex(32), created_at=time.time())
        session.add(row)
    return row.value
