"""Simulated email for the demo: messages go to a local Maildir a user can open and read."""

from __future__ import annotations

import asyncio
import email.message
import mailbox
from pathlib import Path

from dialer.channels.base import ChannelError, EmailMessage
from dialer.channels.mime import build_message, new_message_id
from dialer.clock import Clock


class MaildirEmail:
    """Writes each message to `root` (a Maildir, created if missing).

    Idempotent on `idempotency_key` within the process: sending a key again returns the first
    Message-ID and writes nothing. Addresses in `fail_addresses` fail with a retryable error.
    """

    name = "simulated"

    def __init__(
        self, root: Path, clock: Clock, *, fail_addresses: frozenset[str] = frozenset()
    ) -> None:
        self.root = root
        self._clock = clock
        self._fail = frozenset(a.lower() for a in fail_addresses)
        self._sent: dict[str, str] = {}
        self._lock = asyncio.Lock()  # one write at a time keeps the idempotency check simple
        self._box: mailbox.Maildir | None = None

    async def send(self, message: EmailMessage) -> str:
        async with self._lock:
            known = self._sent.get(message.idempotency_key)
            if known is not None:
                return known
            if message.to.lower() in self._fail:
                raise ChannelError("mailbox unavailable", retryable=True)
            message_id = new_message_id(message)
            try:
                mime = build_message(message, message_id, self._clock.utcnow())
            except ValueError as exc:
                raise ChannelError(str(exc), retryable=False) from exc
            try:
                await asyncio.to_thread(self._write, mime)
            except OSError as exc:
                raise ChannelError(f"maildir write failed: {exc}", unavailable=True) from exc
            self._sent[message.idempotency_key] = message_id
            return message_id

    def _write(self, mime: email.message.EmailMessage) -> None:
        if self._box is None:
            # Maildir(create=True) leaves an existing empty directory without its subfolders.
            for sub in ("tmp", "new", "cur"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            self._box = mailbox.Maildir(self.root, create=False)
        self._box.add(mime)

    async def close(self) -> None:
        self._box = None
