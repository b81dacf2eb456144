from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from dialer.channels.base import ChannelError, EmailChannel, EmailMessage
from dialer.channels.smtp import SmtpEmail
from dialer.clock import FakeClock


class Handler:
    """Collects delivered messages and the client ports they came from; replies on demand."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.peers: list[Any] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.drop_next_mail = False

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.drop_next_mail:  # the server silently dropped the idle connection we reuse
            self.drop_next_mail = False
            server.transport.close()
        envelope.mail_from = address
        return "250 OK"

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
        self.messages.append(message_from_bytes(envelope.content))
        self.peers.append(session.peer)
        return "250 Message accepted for delivery"


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
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
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
