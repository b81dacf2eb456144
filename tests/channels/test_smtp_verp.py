"""The SMTP channel's mail identity (docs/architecture.md §9.1): the envelope sender is the
VERP bounce address, Reply-To the VERP reply address, the Message-ID the attempt's own;
a 5xx refusal is a synchronous bounce. A real SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from dialer.channels.base import EmailMessage
from dialer.channels.smtp import MailRefused, SmtpEmail
from dialer.clock import FakeClock
from dialer.domain.links import LinkSigner


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.refuse: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _message(signer: LinkSigner, attempt: int) -> EmailMessage:
    return EmailMessage(
        attempt_id=str(attempt),
        idempotency_key=f"k{attempt}",
        campaign_id="c1",
        to="lead@example.org",
        sender="sales@mail.example.com",
        sender_name="Sales",
        subject="Hi",
        body="Hello",
        message_id=signer.message_id(attempt, "mail.example.com"),
        verp_token=signer.verp_token(attempt),
    )


async def test_envelope_sender_reply_to_and_message_id(recorder: tuple[Recorder, int]) -> None:
    handler, port = recorder
    signer = LinkSigner(b"k" * 32)
    smtp = SmtpEmail(
        f"smtp://127.0.0.1:{port}",
        FakeClock(1_700_000_000),
        bounce_address="bounces@mail.example.com",
        reply_address="replies@mail.example.com",
    )
    try:
        message_id = await smtp.send(_message(signer, 42))
    finally:
        await smtp.close()
    ((mail_from, rcpts, data),) = handler.envelopes
    token = signer.verp_token(42)
    assert mail_from == f"bounces+{token}@mail.example.com"
    assert rcpts == ["lead@example.org"]
    parsed = message_from_bytes(data)
    assert parsed["Reply-To"] == f"replies+{token}@mail.example.com"
    assert parsed["Message-ID"] == message_id == signer.message_id(42, "mail.example.com")
    assert signer.attempt_of_message_id(message_id) == 42
    assert signer.attempt_of_verp_token(token) == 42
    assert signer.attempt_of_verp_token(token[:-1] + "0") in (None, 42) and (
        signer.attempt_of_verp_token("a42-" + "0" * 20) is None
    )


async def test_a_5xx_refusal_is_a_bounce_and_a_4xx_is_not(
    recorder: tuple[Recorder, int],
) -> None:
    handler, port = recorder
    smtp = SmtpEmail(f"smtp://127.0.0.1:{port}", FakeClock(1_700_000_000))
    signer = LinkSigner(b"k" * 32)
    try:
        handler.refuse = "550 5.1.1 No such user"
        with pytest.raises(MailRefused) as refused:
            await smtp.send(_message(signer, 1))
        assert refused.value.bounce and not refused.value.retryable
        handler.refuse = "451 4.3.0 Try later"
        with pytest.raises(Exception) as later:
            await smtp.send(_message(signer, 2))
        assert not isinstance(later.value, MailRefused) and later.value.retryable
    finally:
        await smtp.close()
