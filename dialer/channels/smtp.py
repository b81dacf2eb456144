"""Email over SMTP (aiosmtplib): one connection, reused across sends and reopened when lost."""

from __future__ import annotations

import asyncio
import email.message
import logging
from urllib.parse import unquote, urlsplit

import aiosmtplib

from dialer.channels.base import ChannelError, EmailMessage
from dialer.channels.mime import build_message, new_message_id
from dialer.clock import Clock

log = logging.getLogger(__name__)

# scheme -> (use_tls, start_tls, default port)
_SCHEMES: dict[str, tuple[bool, bool, int]] = {
    "smtp": (False, False, 25),
    "smtps": (True, False, 465),
    "smtp+starttls": (False, True, 587),
}


class SmtpEmail:
    """Sends through `url`: `smtp://`, `smtps://` (implicit TLS) or `smtp+starttls://`,
    with optional `user:password@`. The password is never logged nor shown in `repr`.
    """

    name = "smtp"

    def __init__(self, url: str, clock: Clock, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError("SMTP url must be smtp://, smtps:// or smtp+starttls://host[:port]")
        self._use_tls, self._start_tls, default_port = _SCHEMES[parts.scheme]
        self.host = parts.hostname
        self.port = parts.port or default_port
        self.username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._clock = clock
        self._timeout = timeout
        self._smtp: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()  # one connection, one transaction at a time

    def __repr__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"SmtpEmail({user}{self.host}:{self.port})"

    async def send(self, message: EmailMessage) -> str:
        message_id = new_message_id(message)
        try:
            mime = build_message(message, message_id, self._clock.utcnow())
        except ValueError as exc:
            raise ChannelError(str(exc), retryable=False) from exc
        async with self._lock:
            reused = self._smtp is not None and self._smtp.is_connected
            try:
                await self._send(mime)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise self._error_for_disconnect() from None
                # The server dropped the idle connection we kept: one fresh try.
                await self._drop()
                try:
                    await self._send(mime)
                except aiosmtplib.SMTPServerDisconnected:
                    raise self._error_for_disconnect() from None
        return message_id

    async def _send(self, mime: email.message.EmailMessage) -> None:
        try:
            smtp = await self._connection()
            await smtp.send_message(mime)
        except aiosmtplib.SMTPServerDisconnected:
            await self._drop()
            raise
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise ChannelError(
                f"recipient refused: {codes}", retryable=all(400 <= c < 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise ChannelError(f"SMTP server cannot: {exc}", retryable=False) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 421: the server is closing the channel (busy, shutting down): an outage.
            raise ChannelError(
                f"SMTP {exc.code}: {exc.message}",
                retryable=400 <= exc.code < 500,
                unavailable=exc.code == 421,
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Cannot connect, timed out, TLS failed: the server is unreachable, an outage
            # that uses no try (docs/architecture.md §15.3).
            await self._drop()
            raise ChannelError(
                f"SMTP connection failed: {type(exc).__name__}", unavailable=True
            ) from None

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self._password,
            use_tls=self._use_tls,
            start_tls=self._start_tls,
            timeout=self._timeout,
        )
        try:
            await smtp.connect()
        except BaseException:
            smtp.close()
            raise
        log.info("smtp connected", extra={"host": self.host, "port": self.port})
        self._smtp = smtp
        return smtp

    def _error_for_disconnect(self) -> ChannelError:
        return ChannelError("SMTP server disconnected", unavailable=True)

    async def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    async def close(self) -> None:
        async with self._lock:
            smtp, self._smtp = self._smtp, None
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()
