"""Simulated email for the demo: messages go to a local Maildir a user can open and read.

Each message is written the Maildir way, in a worker thread so the event loop never waits on
the disk: the whole file into `tmp/`, then renamed into `new/` (atomic: a reader never sees a
half-written message). Names are `<seconds>.M<usec>P<pid>Q<n>.<host>`, unique per process.

Concurrent sends share the thread hops: a message is handed to a writer at once (no timer),
and a writer takes every message queued when it starts; up to `WRITERS` write side by side, so
a slow file holds no other send while a writer is free. Each send still gets its own outcome:
one file that cannot be written fails its send alone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from dialer.channels.base import ChannelError, EmailMessage
from dialer.channels.mime import build_message, new_message_id, with_addresses
from dialer.clock import Clock

log = logging.getLogger(__name__)

REMEMBER_KEYS = 100_000  # idempotency keys kept (about 15 MB)
WRITERS = 4  # thread calls in flight at once


@dataclass(slots=True)
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class MaildirEmail:
    """Writes each message to `root` (a Maildir, created if missing).

    Idempotent on `idempotency_key` within the process (the last `remember` keys: a resend
    comes within a lease of the first send, memory stays flat): sending a key again returns
    the first Message-ID and writes nothing; a send of a key already being written waits
    for that write and returns its Message-ID. Sends of different keys write side by side.
    Addresses in `fail_addresses` fail with a retryable error. Each file starts with the
    `Return-Path` (the envelope sender).
    """

    name = "simulated"
    _seq = itertools.count(1)  # shared by every instance: names stay unique in the process

    def __init__(
        self,
        root: Path,
        clock: Clock,
        *,
        fail_addresses: frozenset[str] = frozenset(),
        remember: int = REMEMBER_KEYS,
        bounce_address: str | None = None,
        reply_address: str | None = None,
    ) -> None:
        self.root = root
        self._clock = clock
        self._fail = frozenset(a.lower() for a in fail_addresses)
        # The VERP envelope sender goes in as Return-Path, as a delivering server writes it
        # (docs/architecture.md §9.1).
        self._bounce_address = bounce_address
        self._reply_address = reply_address
        self._sent: OrderedDict[str, str] = OrderedDict()
        self._remember = remember
        self._writing: dict[str, _KeyLock] = {}  # keys with a send in flight
        self._ready = False  # tmp/, new/ and cur/ exist
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        self._queue: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def send(self, message: EmailMessage) -> str:
        key = message.idempotency_key
        known = self._sent.get(key)
        if known is not None:
            return known
        entry = self._writing.get(key)
        if entry is None:
            entry = self._writing[key] = _KeyLock()
        entry.users += 1
        try:
            async with entry.lock:
                known = self._sent.get(key)  # the send we waited for wrote it
                if known is not None:
                    return known
                message_id = await self._write_new(message)
                self._sent[key] = message_id
                if len(self._sent) > self._remember:
                    self._sent.popitem(last=False)
                return message_id
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._writing[key]

    async def _write_new(self, message: EmailMessage) -> str:
        if message.to.lower() in self._fail:
            raise ChannelError("mailbox unavailable", retryable=True)
        message_id = new_message_id(message)
        try:
            message, envelope = with_addresses(message, self._bounce_address, self._reply_address)
            data = build_message(
                message, message_id, self._clock.utcnow(), linesep="\n", return_path=envelope
            )
        except ValueError as exc:
            raise ChannelError(str(exc), retryable=False) from exc
        now = time.time()
        name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(self._seq)}.{self._host}"
        try:
            await self._store(name, data)
        except OSError as exc:
            raise ChannelError(f"maildir write failed: {exc}", unavailable=True) from exc
        return message_id

    async def _store(self, name: str, data: bytes) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((name, data, done))
        if len(self._writers) < WRITERS:  # every writer is in its thread call: start one
            self._writers.add(asyncio.create_task(self._write_queued()))
        await done

    async def _write_queued(self) -> None:
        batch: list[tuple[str, bytes, asyncio.Future[None]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                errors = await asyncio.to_thread(self._write_all, [(n, d) for n, d, _ in batch])
                for (_, _, done), error in zip(batch, errors, strict=True):
                    _settle(done, error)
                batch = []
        except Exception as exc:  # not a file's error (those are per send): fail its batch
            log.error("maildir.writer_failed", extra={"error": repr(exc)})
        finally:
            # Out of the set before anything else runs: a send queued from now on starts a
            # writer of its own (a writer that is done never looks at the queue again).
            self._writers.discard(asyncio.current_task())
            for _, _, done in batch:  # never leave a send waiting
                _settle(done, OSError("maildir writer stopped"))
            if self._queue and not self._writers:
                self._writers.add(asyncio.create_task(self._write_queued()))

    def _write_all(self, files: list[tuple[str, bytes]]) -> list[BaseException | None]:
        errors: list[BaseException | None] = []
        for name, data in files:
            try:
                self._write(name, data)
                errors.append(None)
            except OSError as exc:
                errors.append(exc)
        return errors

    def _write(self, name: str, data: bytes) -> None:
        if not self._ready:
            # An existing empty directory gets its subfolders too.
            for sub in ("tmp", "new", "cur"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            self._ready = True
        tmp = self.root / "tmp" / name
        f = open(tmp, "xb")  # "x": a name is never reused, never overwritten
        try:
            with f:
                f.write(data)
            os.rename(tmp, self.root / "new" / name)
        except BaseException:
            tmp.unlink(missing_ok=True)  # no half-written file left behind
            raise

    async def close(self) -> None:
        if self._writers:  # the sends in flight finish first
            await asyncio.wait(self._writers)
        self._ready = False  # the directory may be gone before the next send


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
