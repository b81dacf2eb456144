"""The database: one async engine, picked by URL, with the pragmas each backend needs.

SQLite runs in WAL mode with a busy timeout, and every transaction begins `IMMEDIATE` so a
claim takes the write lock up front (no lock upgrade deadlock between two writers).
PostgreSQL claims with `FOR UPDATE SKIP LOCKED` (see store/leads.py).

When the database cannot be reached, `unavailable(exc)` tells the callers above (the API's
error middleware, the live hub) that an error means "try again later", not a bug
(docs/architecture.md §15.1). The pool pings a connection that sat idle before lending it, so
after an outage the next request reconnects: no process restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
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

# A connection attempt gives up after this long (asyncpg's default is 60 s): a database that
# does not answer must turn into a 503 quickly, not a hung request.
CONNECT_TIMEOUT = 10.0
PING_TIMEOUT = 2.0

# SQLSTATE classes that mean the server is gone or refusing work, not that the query is wrong:
# 08 connection exception, 57P01-57P03 shutdown / crash / starting up, 53300 too many clients.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.EADDRNOTAVAIL,
    }
)
# SQLite's way of saying the file cannot be used right now (a missing volume, a full disk, a
# writer holding the lock past the busy timeout); other OperationalErrors are bugs.
_SQLITE_UNAVAILABLE = (
    "unable to open database",
    "disk i/o error",
    "database is locked",
    "database or disk is full",
    "readonly database",
)
_CLOSED = ("connection is closed", "connection was closed", "underlying connection is closed")


def unavailable(exc: BaseException) -> bool:
    """Does `exc` mean the database cannot be reached (a 503 and a retry later), rather than
    a bug or a refused write (docs/architecture.md §15.1)? Looks through the exception's
    causes: SQLAlchemy wraps the driver's error, the driver wraps the socket's."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or len(seen) > 16:
            continue
        seen.add(id(e))
        if _unavailable_one(e):
            return True
        if isinstance(e, sa_exc.DBAPIError):
            todo.append(e.orig)
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        todo.extend((e.__cause__, e.__context__))
    return False


def _unavailable_one(e: BaseException) -> bool:
    if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
        return True
    if isinstance(e, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(e, sa_exc.InterfaceError | sa_exc.OperationalError):
        text = str(e.orig).lower()
        return any(m in text for m in (*_CLOSED, *_SQLITE_UNAVAILABLE))
    sqlstate = getattr(e, "sqlstate", None)  # asyncpg's errors carry it
    if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
        return True
    if isinstance(e, sqlite3.OperationalError):
        return any(m in str(e).lower() for m in _SQLITE_UNAVAILABLE)
    if isinstance(e, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError | PermissionError):
        if e.errno in _NETWORK_ERRNOS:
            return True
        # asyncio's connect to several addresses: "Multiple exceptions: [Errno 111] ..."
        return e.errno is None and str(e).startswith(("Multiple exceptions", "Connect call"))
    return False


def describe(exc: BaseException) -> str:
    """A one-line, secret-free account of why the database cannot be used, for /readyz and
    logs: the innermost cause's type and first line (no SQL, no parameters)."""
    inner = exc
    for _ in range(16):
        nxt = inner.orig if isinstance(inner, sa_exc.DBAPIError) else inner.__cause__
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    first = (str(inner).strip().splitlines() or [""])[0][:160]
    return f"{type(inner).__name__}: {first}" if first else type(inner).__name__


IDLE_PING_SECONDS = 1.0


def padded(ids: list[int]) -> list[int]:
    """`ids` (sorted, not empty) padded with its last id to a power of two, for `IN (...)`.

    An `IN` list of n values is a statement of its own on PostgreSQL, prepared (a round trip)
    on first use; batches of every size from 1 to 500 would prepare hundreds of them and keep
    missing asyncpg's statement cache. Padded, there are ten shapes; the repeats change
    nothing (docs/architecture.md §6.5)."""
    size = 1 << (len(ids) - 1).bit_length()
    return ids + [ids[-1]] * (size - len(ids))


def _ping_idle(engine: AsyncEngine) -> None:
    """A pooled connection that sat idle for `IDLE_PING_SECONDS` is pinged before it is lent,
    and replaced if the server is gone (docs/architecture.md §15.1): the dead connections of
    before an outage never reach a request. A connection returned less than that ago is lent
    without the extra round trip (`pool_pre_ping` pays it on every transaction, a tenth of a
    busy engine's time); if the server died within that second, the transaction fails as
    unavailable, the pool drops every connection of before the failure, and the next one
    reconnects."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checkin(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi)
        except Exception as exc:  # the pool replaces it with a new connection
            raise sa_exc.DisconnectionError(describe(exc)) from exc


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # An error's text never carries the statement's parameters (names, numbers, custom
        # fields of leads): it reaches logs (docs/architecture.md §13, §14.10).
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
            # The most recently returned connection is lent first: a busy process keeps a few
            # connections hot and lets the others idle (and be pinged, below).
            kwargs["pool_use_lifo"] = True
            if "+asyncpg" in url.split("://", 1)[0]:
                kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        else:
            _ping_idle(self.engine)
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

    async def ping(self, timeout: float = PING_TIMEOUT) -> bool:
        return await self.check(timeout) is None

    async def check(self, timeout: float = PING_TIMEOUT) -> str | None:
        """None if a `SELECT 1` answers within `timeout` seconds, else why not (/readyz)."""
        try:
            async with asyncio.timeout(timeout):
                async with self.engine.connect() as conn:
                    await conn.exec_driver_sql("SELECT 1")
        except TimeoutError:
            return f"no answer in {timeout:g} s"
        except Exception as exc:
            return describe(exc)
        return None

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
