"""The database: one async engine, picked by URL, with the pragmas each backend needs.

SQLite runs in WAL mode with a busy timeout, and every transaction begins `IMMEDIATE` so a
claim takes the write lock up front (no lock upgrade deadlock between two writers).
PostgreSQL claims with `FOR UPDATE SKIP LOCKED` (see store/leads.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# The unit-of-work type the layers above pass to store functions (they import no SQLAlchemy).
DbSession = AsyncSession


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite)."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work: on SQLite it takes no write lock (WAL readers run
        beside the writer); nothing is committed."""
        async with self._sessions() as session:
            await session.connection(execution_options={"dialer_read_only": True})
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            await conn.execution_options(dialer_read_only=True)
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        await self.engine.dispose()


class PinnedReader:
    """Read transactions on a connection of its own, for a long-lived poller that a pool
    drained by busy requests must not hold back. Reopened after any error."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: AsyncConnection | None = None

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """One read transaction: everything read in it is of the same snapshot."""
        if self._conn is None:
            self._conn = await self.db.engine.connect()
            await self._conn.execution_options(dialer_read_only=True)
        try:
            async with self._conn.begin(), AsyncSession(bind=self._conn) as s:
                yield s
        except BaseException:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        # Readers take no write lock (WAL lets them run beside the writer).
        read_only = conn.get_execution_options().get("dialer_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
