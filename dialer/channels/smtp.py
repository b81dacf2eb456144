"""Email over SMTP (aiosmtplib): a small pool of persistent connections (docs/architecture.md §9).

Concurrent sends go out on different connections, at most `pool_size` open at once; a
connection is reused across sends, and one that fails is dropped and reopened by the next
send that needs it. aiosmtplib has no RFC 2920 PIPELINING: on one connection each MAIL, RCPT
and DATA waits for its reply, so a message costs four round trips there; the pool's
connections side by side are what keeps the server busy.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import unquote, urlsplit

import aiosmtplib

from dialer.channels.base import ChannelError, EmailMessage
from dialer.channels.mime import build_message, needs_smtputf8, new_message_id, with_addresses
from dialer.clock import Clock

log = logging.getLogger(__name__)

# scheme -> (use_tls, start_tls, default port)
_SCHEMES: dict[str, tuple[bool, bool, int]] = {
    "smtp": (False, False, 25),
    "smtps": (True, False, 465),
    "smtp+starttls": (False, True, 587),
}


class MailRefused(ChannelError):
    """The server refused the message for good (a 5xx at RCPT or DATA): a synchronous
    bounce, counted as `bounced` (docs/architecture.md §9.1)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, retryable=False)
        self.code = code
        self.bounce = True


class _Disconnected(Exception):
    """The server closed the connection under a send; the connection is gone."""


class SmtpEmail:
    """Sends through `url`: `smtp://`, `smtps://` (implicit TLS) or `smtp+starttls://`,
    with optional `user:password@`. The password is never logged nor shown in `repr`.

    Not idempotent on `idempotency_key`: each send is a new message with a new Message-ID
    (SMTP cannot ask whether a message went out, docs/architecture.md §9). A retry after a
    kept connection turned out dead sends the same bytes, so the same Message-ID.
    """

    name = "smtp"

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        timeout: float = 30.0,
        pool_size: int = 4,
        bounce_address: str | None = None,
        reply_address: str | None = None,
    ) -> None:
        """`bounce_address`: the envelope sender, with each message's VERP token
        (`bounces+<token>@example.com`); `reply_address`: the Reply-To, the same way
        (docs/architecture.md §9.1)."""
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError("SMTP url must be smtp://, smtps:// or smtp+starttls://host[:port]")
        if pool_size < 1:
            raise ValueError("SMTP pool_size must be at least 1")
        self._use_tls, self._start_tls, default_port = _SCHEMES[parts.scheme]
        self.host = parts.hostname
        self.port = parts.port or default_port
        self.username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._clock = clock
        self._bounce_address = bounce_address
        self._reply_address = reply_address
        self._timeout = timeout
        self.pool_size = pool_size
        # A send holds a slot for its whole transaction, and at most one connection per slot:
        # open connections (idle + in use) never exceed pool_size.
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[aiosmtplib.SMTP] = []  # last in, first out: the warmest first

    def __repr__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"SmtpEmail({user}{self.host}:{self.port}, pool={self.pool_size})"

    async def send(self, message: EmailMessage) -> str:
        message_id = new_message_id(message)
        try:
            message, envelope = with_addresses(message, self._bounce_address, self._reply_address)
            data = build_message(message, message_id, self._clock.utcnow())
        except ValueError as exc:
            raise ChannelError(str(exc), retryable=False) from exc
        options = ["SMTPUTF8"] if needs_smtputf8(message) else []
        async with self._slots:
            smtp = self._idle.pop() if self._idle else None
            try:
                await self._send(smtp, envelope, message, data, options)
            except _Disconnected:
                if smtp is None:
                    raise self._error_for_disconnect() from None
                # The server dropped the idle connection we kept: one fresh try, same bytes.
                try:
                    await self._send(None, envelope, message, data, options)
                except _Disconnected:
                    raise self._error_for_disconnect() from None
        return message_id

    async def _send(
        self,
        smtp: aiosmtplib.SMTP | None,
        envelope: str,
        message: EmailMessage,
        data: bytes,
        options: list[str],
    ) -> None:
        """One transaction on `smtp` (a new connection when None). The connection goes back
        to the idle list when it is still good, and is closed otherwise."""
        try:
            if smtp is None:
                smtp = await self._open()
            await smtp.sendmail(envelope, [message.to], data, mail_options=options)
        except aiosmtplib.SMTPServerDisconnected:
            self._discard(smtp)
            raise _Disconnected from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._keep(smtp)  # aiosmtplib reset the envelope: the connection serves on
            codes = [r.code for r in exc.recipients]
            if any(500 <= c < 600 for c in codes):
                raise MailRefused(f"recipient refused: {codes}", max(codes)) from None
            raise ChannelError(f"recipient refused: {codes}", retryable=True) from None
        except aiosmtplib.SMTPNotSupported as exc:
            self._keep(smtp)
            raise ChannelError(f"SMTP server cannot: {exc}", retryable=False) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 421: the server is closing the channel (busy, shutting down): an outage.
            if exc.code == 421:
                self._discard(smtp)
            else:
                self._keep(smtp)
            if 550 <= exc.code < 560 and isinstance(exc, aiosmtplib.SMTPDataError):
                raise MailRefused(f"SMTP {exc.code}: {exc.message}", exc.code) from None
            raise ChannelError(
                f"SMTP {exc.code}: {exc.message}",
                retryable=400 <= exc.code < 500,
                unavailable=exc.code == 421,
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Cannot connect, timed out, TLS failed: the server is unreachable, an outage
            # that uses no try (docs/architecture.md §15.3).
            self._discard(smtp)
            raise ChannelError(
                f"SMTP connection failed: {type(exc).__name__}", unavailable=True
            ) from None
        except ValueError as exc:  # an address aiosmtplib will not put on a command line
            self._keep(smtp)
            raise ChannelError(f"SMTP address refused: {exc}", retryable=False) from None
        except BaseException:  # cancelled mid-transaction: the connection's state is unknown
            self._discard(smtp)
            raise
        self._keep(smtp)

    async def _open(self) -> aiosmtplib.SMTP:
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
        return smtp

    def _keep(self, smtp: aiosmtplib.SMTP | None) -> None:
        if smtp is None:
            return
        if smtp.is_connected:
            self._idle.append(smtp)
        else:
            smtp.close()

    @staticmethod
    def _discard(smtp: aiosmtplib.SMTP | None) -> None:
        if smtp is not None:
            smtp.close()

    def _error_for_disconnect(self) -> ChannelError:
        return ChannelError("SMTP server disconnected", unavailable=True)

    async def close(self) -> None:
        """Wait for the sends in flight, then say QUIT on every kept connection. A send after
        `close` opens connections again."""
        held = 0
        try:
            for _ in range(self.pool_size):
                await self._slots.acquire()
                held += 1
            idle, self._idle = self._idle, []
            await asyncio.gather(*(self._quit(smtp) for smtp in idle))
        finally:
            for _ in range(held):
                self._slots.release()

    @staticmethod
    async def _quit(smtp: aiosmtplib.SMTP) -> None:
        if not smtp.is_connected:
            smtp.close()
            return
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()
