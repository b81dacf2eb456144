"""Do-not-call list queries. Adding is an insert that ignores numbers already listed, in
each backend's own dialect."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dialer.store.models import DoNotCall

_CHUNK = 500


async def add(conn: AsyncConnection, numbers: list[str], *, reason: str | None, now: float) -> int:
    """List the numbers (E.164); how many were new. One already listed, or listed meanwhile
    by another request, is left as it is."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    added = 0
    for lo in range(0, len(numbers), _CHUNK):
        rows = [{"phone": p, "reason": reason, "added_at": now} for p in numbers[lo : lo + _CHUNK]]
        stmt = (
            insert(DoNotCall)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["phone"])
            .returning(DoNotCall.phone)
        )
        added += len((await conn.execute(stmt)).all())
    return added


async def page(session: AsyncSession, *, limit: int, after: str | None) -> list[DoNotCall]:
    """Up to `limit` listed numbers in E.164 order, after the number `after`."""
    stmt = select(DoNotCall).order_by(DoNotCall.phone).limit(limit)
    if after:
        stmt = stmt.where(DoNotCall.phone > after)
    return list((await session.scalars(stmt)).all())


async def remove(session: AsyncSession, phone: str) -> bool:
    """Take a number off the list; False if it was not on it."""
    gone = await session.execute(
        delete(DoNotCall).where(DoNotCall.phone == phone).returning(DoNotCall.phone)
    )
    return gone.first() is not None
