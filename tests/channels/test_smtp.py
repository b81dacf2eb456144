from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage as EmailMessageParsed
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from dialer.channels.base import ChannelError, EmailChannel, EmailMessage
from dialer.channels.smtp import SmtpEmail
from dialer.clock import FakeClock
from dialer.config import Settings
from dialer.runtime import make_email


class Handler:
    """Collects delivered messages and the client ports they came from; replies on demand.

    Runs in the server's thread and event loop; the test reads what it recorded once the
    sends it awaited are done.
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.raw: list[bytes] = []
        self.peers: list[Any] = []
        self.rcpt_tos: list[list[str]] = []
        self.connections = 0  # EHLOs: each connection says it once, before its first MAIL
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.drop_next_mail = False
        # Every connection serves one transaction, then drops on its second: at MAIL on
        # odd connections, after the message is stored (its reply lost) on even ones.
        self.drop_second = False
        self._transactions: dict[Any, int] = {}
        self._numbers: dict[Any, int] = {}
        # DATA waits until this many transactions are in DATA at the same time.
        self.gather = 0
        self._gathered: asyncio.Event | None = None
        self.in_data = 0
        self.most_in_data = 0
        self.hang_data = False  # DATA never answers until cleared

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        self._numbers[session.peer] = self.connections
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.drop_next_mail:  # the server silently dropped the idle connection we reuse
            self.drop_next_mail = False
            server.transport.close()
        self._transactions[session.peer] = self._transactions.get(session.peer, 0) + 1
        if self.drop_second and self._dropping(session) and self._numbers[session.peer] % 2:
            server.transport.close()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    def _dropping(self, session: Any) -> bool:
        return self._transactions[session.peer] == 2

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        if self.hang_data:
            while self.hang_data:
                await asyncio.sleep(0.01)
            return "451 4.3.0 Too late"  # the client gave up long ago: nothing stored
        self.in_data += 1
        self.most_in_data = max(self.most_in_data, self.in_data)
        try:
            if self.gather:
                await self._gather()
        finally:
            self.in_data -= 1
        self.raw.append(envelope.content)
        self.messages.append(message_from_bytes(envelope.content))
        self.peers.append(session.peer)
        self.rcpt_tos.append(list(envelope.rcpt_tos))
        if self.drop_second and self._dropping(session):  # stored, but the reply is lost
            server.transport.close()
        return "250 Message accepted for delivery"

    async def _gather(self) -> None:
        if self._gathered is None:
            self._gathered = asyncio.Event()
        if self.in_data >= self.gather:
            self._gathered.set()
        # Bounded so that a channel sending one at a time fails the test, not hangs it.
        await asyncio.wait_for(self._gathered.wait(), 10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def server(handler: Handler) -> Iterator[Controller]:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    controller.start()
    yield controller
    controller.stop()


def message(key: str = "k1", to: str = "lead@example.org", **kw: Any) -> EmailMessage:
    fields: dict[str, Any] = {
        "attempt_id": "att-1",
        "idempotency_key": key,
        "campaign_id": "c1",
        "to": to,
        "sender": "sales@dialer.test",
        "sender_name": "Ada from Sales",
        "subject": "Hello there",
        "body": "Hi,\nshall we talk?\n",
    }
    fields.update(kw)
    return EmailMessage(**fields)


def url_of(controller: Controller, auth: str = "") -> str:
    return f"smtp://{auth}127.0.0.1:{controller.port}"


async def test_delivers_with_the_right_headers(server: Controller, handler: Handler) -> None:
    channel = SmtpEmail(url_of(server), FakeClock())
    message_id = await channel.send(
        message(reply_to="reply+att-1@dialer.test", unsubscribe_url="https://dialer.test/u/1")
    )
    await channel.close()

    [mail] = handler.messages
    assert mail["Message-ID"] == message_id
    assert mail["Subject"] == "Hello there"
    assert mail["From"] == "Ada from Sales <sales@dialer.test>"
    assert mail["Reply-To"] == "reply+att-1@dialer.test"
    assert mail["List-Unsubscribe"] == "<https://dialer.test/u/1>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Dialer-Attempt"] == "att-1"


async def test_one_connection_serves_several_sends(server: Controller, handler: Handler) -> None:
    channel = SmtpEmail(url_of(server), FakeClock())
    for i in range(5):
        await channel.send(message(f"k{i}", to=f"lead{i}@example.org"))
    await channel.close()
    assert len(handler.messages) == 5
    assert len(set(handler.peers)) == 1


async def test_a_refused_recipient_is_not_retryable(server: Controller, handler: Handler) -> None:
    handler.rcpt_reply = "550 5.1.1 No such user"
    channel = SmtpEmail(url_of(server), FakeClock())
    with pytest.raises(ChannelError) as refused:
        await channel.send(message())
    assert refused.value.retryable is False
    assert not refused.value.unavailable  # an answer about the recipient, not an outage

    handler.rcpt_reply = None  # the connection is still good for the next message
    await channel.send(message("k2"))
    await channel.close()
    assert len(handler.messages) == 1


async def test_a_temporary_failure_is_retryable(server: Controller, handler: Handler) -> None:
    handler.data_reply = "451 4.3.0 Try again later"
    channel = SmtpEmail(url_of(server), FakeClock())
    with pytest.raises(ChannelError) as deferred:
        await channel.send(message())
    assert deferred.value.retryable is True
    assert not deferred.value.unavailable  # retried by the step's policy, using a try
    await channel.close()


async def test_a_server_that_is_down_is_an_outage_not_an_outcome() -> None:
    """Connection refused: the channel is unavailable (no try used, docs/architecture.md
    §15.3), and the same holds for a server closing the channel with 421."""
    channel = SmtpEmail(f"smtp://127.0.0.1:{free_port()}", FakeClock(), timeout=5)
    with pytest.raises(ChannelError) as down:
        await channel.send(message())
    assert down.value.retryable is True and down.value.unavailable
    await channel.close()


async def test_a_server_closing_the_channel_is_an_outage(
    server: Controller, handler: Handler
) -> None:
    handler.data_reply = "421 4.3.2 Service not available, closing channel"
    channel = SmtpEmail(url_of(server), FakeClock())
    with pytest.raises(ChannelError) as closing:
        await channel.send(message())
    assert closing.value.unavailable
    await channel.close()


async def test_reconnects_after_the_server_restarts(handler: Handler) -> None:
    first = Controller(handler, hostname="127.0.0.1", port=free_port())
    first.start()
    channel = SmtpEmail(url_of(first), FakeClock())
    await channel.send(message("k1"))
    first.stop()  # drops the connection the channel keeps
    second = Controller(handler, hostname="127.0.0.1", port=first.port)
    second.start()
    try:
        await channel.send(message("k2"))
        await channel.close()
    finally:
        second.stop()
    assert len(handler.messages) == 2
    assert len(set(handler.peers)) == 2


async def test_a_stale_connection_is_retried_once_on_a_new_one(
    server: Controller, handler: Handler
) -> None:
    channel = SmtpEmail(url_of(server), FakeClock())
    await channel.send(message("k1"))
    handler.drop_next_mail = True
    await channel.send(message("k2"))
    await channel.close()
    assert len(handler.messages) == 2
    assert len(set(handler.peers)) == 2


async def test_concurrent_sends_share_a_pool_of_connections(
    server: Controller, handler: Handler
) -> None:
    """40 sends at once: 4 connections opened, 4 transactions in DATA side by side (the
    server holds the first ones until 4 are there), every message delivered once."""
    handler.gather = 4
    channel = SmtpEmail(url_of(server), FakeClock(), pool_size=4)
    ids = await asyncio.gather(
        *(channel.send(message(f"k{i}", to=f"lead{i}@example.org")) for i in range(40))
    )
    assert handler.connections == 4
    assert len(set(handler.peers)) == 4
    assert handler.most_in_data == 4
    assert sorted(m["Message-ID"] for m in handler.messages) == sorted(ids)
    assert len(set(ids)) == 40
    assert sorted(r[0] for r in handler.rcpt_tos) == sorted(
        f"lead{i}@example.org" for i in range(40)
    )

    await channel.close()  # QUIT on every kept connection; a later send opens one again
    await channel.send(message("after"))
    await channel.close()
    assert handler.connections == 5 and len(handler.messages) == 41


async def test_a_pool_of_one_sends_one_at_a_time(server: Controller, handler: Handler) -> None:
    channel = SmtpEmail(url_of(server), FakeClock(), pool_size=1)
    await asyncio.gather(*(channel.send(message(f"k{i}")) for i in range(8)))
    await channel.close()
    assert (handler.connections, handler.most_in_data, len(handler.messages)) == (1, 1, 8)


async def test_connections_dropped_mid_run_lose_nothing_and_send_nothing_twice(
    server: Controller, handler: Handler
) -> None:
    """Every connection drops on its second message, at MAIL (nothing delivered) or after
    the message is stored and before the reply (delivered, the sender cannot know). Each
    send retries once on a fresh connection, with the same bytes: every message arrives, and
    what arrives twice carries the same Message-ID."""
    handler.drop_second = True
    channel = SmtpEmail(url_of(server), FakeClock(), pool_size=4)
    sends = [message(f"k{i}", attempt_id=str(i)) for i in range(30)]
    ids = await asyncio.gather(*(channel.send(m) for m in sends))
    await channel.close()

    assert handler.connections > 4  # connections were dropped and reopened
    assert len(set(ids)) == 30
    delivered: dict[str, set[str]] = {}
    for mail in handler.messages:
        delivered.setdefault(mail["X-Dialer-Attempt"], set()).add(mail["Message-ID"])
    assert delivered == {m.attempt_id: {i} for m, i in zip(sends, ids, strict=True)}
    assert len(handler.messages) > 30  # some replies were lost after the message was stored


async def test_a_fresh_connection_dropped_is_an_outage(
    server: Controller, handler: Handler
) -> None:
    handler.drop_next_mail = True  # on the very first connection: no stale one to blame
    channel = SmtpEmail(url_of(server), FakeClock())
    with pytest.raises(ChannelError) as dropped:
        await channel.send(message())
    assert dropped.value.unavailable
    await channel.send(message("k2"))
    await channel.close()
    assert len(handler.messages) == 1 and handler.connections == 2


async def test_a_timeout_mid_data_is_an_outage_and_the_connection_is_replaced(
    server: Controller, handler: Handler
) -> None:
    channel = SmtpEmail(url_of(server), FakeClock(), timeout=0.5)
    await channel.send(message("k1"))
    handler.hang_data = True  # the server never answers the message's data
    with pytest.raises(ChannelError) as timed_out:
        await channel.send(message("k2"))
    assert timed_out.value.unavailable and not timed_out.value.maybe_placed
    handler.hang_data = False
    await channel.send(message("k3"))
    await channel.close()
    assert len(handler.messages) == 2 and len(set(handler.peers)) == 2


async def test_non_ascii_subject_and_name_round_trip(server: Controller, handler: Handler) -> None:
    subject = "Grüße, Zoë — ¿qué tal? 🎉"
    channel = SmtpEmail(url_of(server), FakeClock())
    await channel.send(
        message(subject=subject, sender_name="Zoë Ærø", body="Schön, dich zu sehen\n")
    )
    await channel.close()

    [raw] = handler.raw
    assert raw.isascii()  # RFC 2047 headers, quoted-printable body: no 8BITMIME needed
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == subject
    assert mail["From"].addresses[0].display_name == "Zoë Ærø"
    assert isinstance(mail, EmailMessageParsed)
    assert mail.get_content().replace("\r\n", "\n") == "Schön, dich zu sehen\n"


async def test_a_non_ascii_address_is_sent_with_smtputf8(
    server: Controller, handler: Handler
) -> None:
    channel = SmtpEmail(url_of(server), FakeClock())
    await channel.send(message(to="zoë@example.org"))
    await channel.close()
    assert handler.rcpt_tos == [["zoë@example.org"]]
    assert message_from_bytes(handler.raw[0], policy=policy.default)["To"] == "zoë@example.org"


async def test_header_injection_is_refused_before_anything_is_sent(
    server: Controller, handler: Handler
) -> None:
    channel = SmtpEmail(url_of(server), FakeClock())
    for evil in (
        message(subject="Hi\r\nBcc: everyone@example.org"),
        message(sender_name="Ada\nBcc: everyone@example.org"),
        message(headers={"X-Evil": "a\r\nBcc: everyone@example.org"}),
    ):
        with pytest.raises(ChannelError) as refused:
            await channel.send(evil)
        assert refused.value.retryable is False
    await channel.close()
    assert handler.messages == [] and handler.connections == 0


def test_the_pool_size_comes_from_the_settings() -> None:
    settings = Settings(
        email_provider="smtp", smtp_url=SecretStr("smtp://mail.example.org"), smtp_pool_size=7
    )
    channel = make_email(settings, FakeClock())
    assert isinstance(channel, SmtpEmail) and channel.pool_size == 7
    assert SmtpEmail("smtp://mail.example.org", FakeClock()).pool_size == 4
    with pytest.raises(ValueError):
        SmtpEmail("smtp://mail.example.org", FakeClock(), pool_size=0)


def test_url_parsing_keeps_the_password_out_of_repr() -> None:
    channel = SmtpEmail("smtps://mailer:s%40cret@mail.example.org", FakeClock())
    assert (channel.host, channel.port, channel.username) == ("mail.example.org", 465, "mailer")
    assert "s@cret" not in repr(channel) and "cret" not in repr(channel)
    assert SmtpEmail("smtp+starttls://mail.example.org", FakeClock()).port == 587
    assert SmtpEmail("smtp://mail.example.org:2525", FakeClock()).port == 2525
    with pytest.raises(ValueError):
        SmtpEmail("http://mail.example.org", FakeClock())


def test_satisfies_the_email_channel_interface() -> None:
    channel: EmailChannel = SmtpEmail("smtp://mail.example.org", FakeClock())
    assert channel.name == "smtp"
