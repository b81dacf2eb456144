"""The IMAP mailbox watcher (docs/architecture.md §9.1): `DIALER_IMAP_URL`
(`imaps://user:pass@host[:port]/INBOX`, or `imap://` on a trusted network).

Every message in the watched folder goes through the one pipeline (`Inbound.receive`),
then is moved to `processed` (matched, or processed before) or `unmatched`; a message the
pipeline could not take (the database out) stays where it is and is tried again. Nothing is
ever deleted unread, and the same message twice is processed once. Between rounds the
watcher waits in IDLE (RFC 2177) for the server to say something arrived, at most
`idle_seconds`; a lost connection is reopened after a growing delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from urllib.parse import unquote, urlsplit

import aioimaplib

from dialer.inbound.classify import Unparseable
from dialer.inbound.service import Inbound

log = logging.getLogger(__name__)

_FETCHED = re.compile(rb"\(UID (\d+) ")


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
        self._inbound = inbound
        self._task: asyncio.Task[None] | None = None
        self._client: aioimaplib.IMAP4 | None = None

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
        delay = 1.0
        while True:
            try:
                client = await self._connect()
                await self._round(client)
                delay = 1.0
                await self._idle(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server or the database: try again later
                log.warning("imap.error", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
                await self._close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    async def _connect(self) -> aioimaplib.IMAP4:
        if self._client is not None and self._client.get_state() == "SELECTED":
            return self._client
        await self._close()
        if self.tls:
            client = aioimaplib.IMAP4_SSL(
                self.host, self.port, timeout=self._timeout, ssl_context=self._ssl
            )
        else:
            client = aioimaplib.IMAP4(self.host, self.port, timeout=self._timeout)
        self._client = client
        await client.wait_hello_from_server()
        _ok(await client.login(self.user, self._password), "LOGIN")
        for folder in (self.processed, self.unmatched):
            await client.create(folder)  # NO when it exists: fine
        _ok(await client.select(self.folder), "SELECT")
        log.info("imap.connected", extra={"host": self.host, "folder": self.folder})
        return client

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.logout(), 5)

    async def _round(self, client: aioimaplib.IMAP4) -> int:
        found = await client.uid_search("ALL")
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
        response = await client.uid("fetch", uid, "(BODY.PEEK[])")
        _ok(response, "UID FETCH")
        lines = response.lines
        for i, line in enumerate(lines[:-1]):
            if isinstance(line, bytes | bytearray) and line.endswith(b"}") and b"FETCH" in line:
                return bytes(lines[i + 1])
        return None

    async def _move(self, client: aioimaplib.IMAP4, uid: str, folder: str) -> None:
        if client.has_capability("MOVE"):
            _ok(await client.uid("move", uid, folder), "UID MOVE")
            return
        _ok(await client.uid("copy", uid, folder), "UID COPY")  # copied before it is removed
        _ok(await client.uid("store", uid, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE")
        _ok(await client.uid("expunge", uid), "UID EXPUNGE")

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        idle = await client.idle_start(timeout=self.idle_seconds)
        try:
            await client.wait_server_push(timeout=self.idle_seconds + 5)
        except TimeoutError:
            pass
        finally:
            client.idle_done()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle, self._timeout)


def _ok(response: aioimaplib.Response, what: str) -> None:
    if response.result != "OK":
        raise RuntimeError(f"IMAP {what}: {response.result}")
