"""The IMAP mailbox watcher (docs/architecture.md §9.1): `DIALER_IMAP_URL`
(`imaps://user:pass@host[:port]/INBOX`, or `imap://` on a trusted network).

Every message in the watched folder goes through the one pipeline (`Inbound.receive`),
then is moved to `processed` (matched, or processed before) or `unmatched`; a message the
pipeline could not take (the database out) stays where it is and is tried again. Nothing is
ever deleted unread, and the same message twice is processed once. Between rounds the
watcher waits in IDLE (RFC 2177) for the server to say something arrived, at most
`idle_seconds`; a lost connection is reopened after a growing delay (`retry_seconds`,
doubled per failure up to `max_retry_seconds`, slept on the pipeline's clock). A connection
the server drops (it died) fails the call in progress at once, and
`dialer_imap_connected{folder}` is 0 until the watcher is logged in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import aioimaplib

from dialer.inbound.classify import Unparseable
from dialer.inbound.service import Inbound

log = logging.getLogger(__name__)

_FETCHED = re.compile(rb"\(UID (\d+) ")
T = TypeVar("T")


class ImapWatcher:
    def __init__(
        self,
        url: str,
        inbound: Inbound,
        *,
        processed: str = "processed",
        unmatched: str = "unmatched",
        idle_seconds: float = 300.0,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        retry_seconds: float = 1.0,
        max_retry_seconds: float = 300.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError("DIALER_IMAP_URL must be imap:// or imaps://user:pass@host/FOLDER")
        self.host = parts.hostname
        self.tls = parts.scheme == "imaps"
        self.port = parts.port or (993 if self.tls else 143)
        self.user = unquote(parts.username or "")
        self._password = unquote(parts.password or "")
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.processed = processed
        self.unmatched = unmatched
        self.idle_seconds = idle_seconds
        self._ssl = ssl_context
        self._timeout = timeout
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.failures = 0  # failed rounds in a row: each one is followed by a retry delay
        self._inbound = inbound
        self._task: asyncio.Task[None] | None = None
        self._client: aioimaplib.IMAP4 | None = None
        # Resolved when the server closes the connection (aioimaplib only reports it here).
        self._lost: asyncio.Future[Exception | None] | None = None
        self._connected = inbound.metrics.imap_connected.labels(self.folder)
        self._connected.set(0)

    def __repr__(self) -> str:  # never the password
        return f"ImapWatcher({self.user}@{self.host}:{self.port}/{self.folder})"

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="imap-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def poll(self) -> int:
        """One round now (tests, and each wake-up): process every message of the folder;
        returns how many were moved."""
        client = await self._connect()
        return await self._round(client)

    async def _run(self) -> None:
        delay = self.retry_seconds
        while True:
            try:
                client = await self._connect()
                await self._round(client)
                delay = self.retry_seconds
                self.failures = 0
                await self._idle(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server or the database: try again later
                log.warning(
                    "imap.error",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:300], "retry_in": delay},
                )
                await self._close()
                self.failures += 1
                await self._inbound.clock.sleep(delay)
                delay = min(delay * 2, self.max_retry_seconds)

    async def _connect(self) -> aioimaplib.IMAP4:
        if (
            self._client is not None
            and self._client.get_state() == "SELECTED"
            and not (self._lost is None or self._lost.done())
        ):
            return self._client
        await self._close()
        lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

        def dropped(exc: Exception | None) -> None:
            if not lost.done():
                lost.set_result(exc)
            if self._lost is lost:  # not an older connection closing late
                self._connected.set(0)

        if self.tls:
            client = aioimaplib.IMAP4_SSL(
                self.host,
                self.port,
                timeout=self._timeout,
                ssl_context=self._ssl,
                conn_lost_cb=dropped,
            )
        else:
            client = aioimaplib.IMAP4(
                self.host, self.port, timeout=self._timeout, conn_lost_cb=dropped
            )
        self._client, self._lost = client, lost
        await self._io(client.wait_hello_from_server())
        _ok(await self._io(client.login(self.user, self._password)), "LOGIN")
        for folder in (self.processed, self.unmatched):
            await self._io(client.create(folder))  # NO when it exists: fine
        _ok(await self._io(client.select(self.folder)), "SELECT")
        self._connected.set(1)
        log.info("imap.connected", extra={"host": self.host, "folder": self.folder})
        return client

    async def _close(self) -> None:
        client, self._client = self._client, None
        lost, self._lost = self._lost, None
        self._connected.set(0)
        if client is None:
            return
        if lost is not None and not lost.done():  # else nobody to say goodbye to
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.logout(), 5)
        if client.protocol.transport is not None:
            client.protocol.transport.close()  # the server's close may come after the loop's

    async def _io(self, call: Awaitable[T]) -> T:
        """`call` on the current connection, or ConnectionError as soon as the server drops
        it: aioimaplib would wait on the dead socket until the call's timeout (IDLE's:
        `idle_seconds`)."""
        task = asyncio.ensure_future(call)
        lost = self._lost
        if lost is None:
            return await task
        waiting: set[asyncio.Future[Any]] = {task, lost}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        raise ConnectionError(f"IMAP connection lost: {lost.result() or 'closed by the server'}")

    async def _round(self, client: aioimaplib.IMAP4) -> int:
        found = await self._io(client.uid_search("ALL"))
        _ok(found, "UID SEARCH")
        uids = [u for line in found.lines[:1] for u in line.decode().split() if u.isdigit()]
        moved = 0
        for uid in uids:
            raw = await self._fetch(client, uid)
            if raw is None:
                continue
            try:
                result = await self._inbound.receive(raw, source="imap")
                folder = self.processed if result.matched or result.duplicate else self.unmatched
            except Unparseable:
                folder = self.unmatched
            # A failure of the pipeline (the database) raises: the message stays unread.
            await self._move(client, uid, folder)
            moved += 1
        return moved

    async def _fetch(self, client: aioimaplib.IMAP4, uid: str) -> bytes | None:
        response = await self._io(client.uid("fetch", uid, "(BODY.PEEK[])"))
        _ok(response, "UID FETCH")
        lines = response.lines
        for i, line in enumerate(lines[:-1]):
            if isinstance(line, bytes | bytearray) and line.endswith(b"}") and b"FETCH" in line:
                return bytes(lines[i + 1])
        return None

    async def _move(self, client: aioimaplib.IMAP4, uid: str, folder: str) -> None:
        if client.has_capability("MOVE"):
            _ok(await self._io(client.uid("move", uid, folder)), "UID MOVE")
            return
        # Copied before it is removed.
        _ok(await self._io(client.uid("copy", uid, folder)), "UID COPY")
        _ok(await self._io(client.uid("store", uid, "+FLAGS.SILENT", r"(\Deleted)")), "UID STORE")
        _ok(await self._io(client.uid("expunge", uid)), "UID EXPUNGE")

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        idle = await self._io(client.idle_start(timeout=self.idle_seconds))
        try:
            await self._io(client.wait_server_push(timeout=self.idle_seconds + 5))
        except TimeoutError:
            pass
        finally:
            client.idle_done()
            # A connection lost here is found by the next round's `_connect`.
            with contextlib.suppress(TimeoutError, ConnectionError):
                await self._io(asyncio.wait_for(idle, self._timeout))


def _ok(response: aioimaplib.Response, what: str) -> None:
    if response.result != "OK":
        raise RuntimeError(f"IMAP {what}: {response.result}")
