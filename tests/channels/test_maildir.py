from __future__ import annotations

import mailbox
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from dialer.channels.base import ChannelError, EmailChannel, EmailMessage
from dialer.channels.maildir import MaildirEmail
from dialer.clock import FakeClock


def message(key: str = "k1", to: str = "lead@example.org", **kw: object) -> EmailMessage:
    fields: dict[str, object] = {
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
    return EmailMessage(**fields)  # type: ignore[arg-type]


def stored(root: Path) -> list[mailbox.MaildirMessage]:
    return list(mailbox.Maildir(root, create=False))


async def test_send_writes_a_complete_message(tmp_path: Path) -> None:
    clock = FakeClock()
    channel = MaildirEmail(tmp_path / "mail" / "out", clock)
    message_id = await channel.send(
        message(
            reply_to="reply+att-1@dialer.test",
            unsubscribe_url="https://dialer.test/u/att-1",
            headers={"X-Campaign": "c1"},
        )
    )

    [mail] = stored(tmp_path / "mail" / "out")
    assert mail["Message-ID"] == message_id
    assert message_id.endswith("@dialer.test>")
    assert mail["From"] == "Ada from Sales <sales@dialer.test>"
    assert mail["To"] == "lead@example.org"
    assert mail["Subject"] == "Hello there"
    assert mail["Reply-To"] == "reply+att-1@dialer.test"
    assert mail["List-Unsubscribe"] == "<https://dialer.test/u/att-1>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Dialer-Attempt"] == "att-1"
    assert mail["X-Campaign"] == "c1"
    assert parsedate_to_datetime(mail["Date"]) == clock.utcnow()
    assert "shall we talk?" in mail.get_payload()
    await channel.close()


async def test_optional_headers_are_left_out(tmp_path: Path) -> None:
    await MaildirEmail(tmp_path, FakeClock()).send(message())
    [mail] = stored(tmp_path)
    assert mail["Reply-To"] is None
    assert mail["List-Unsubscribe"] is None


async def test_send_is_idempotent_on_the_key(tmp_path: Path) -> None:
    channel = MaildirEmail(tmp_path, FakeClock())
    first = await channel.send(message("same"))
    again = await channel.send(message("same", subject="changed"))
    other = await channel.send(message("other"))
    assert first == again != other
    assert len(stored(tmp_path)) == 2


async def test_fail_addresses_raise_a_retryable_error(tmp_path: Path) -> None:
    channel = MaildirEmail(tmp_path, FakeClock(), fail_addresses=frozenset({"Full@Example.org"}))
    with pytest.raises(ChannelError, match="mailbox unavailable") as failed:
        await channel.send(message(to="full@example.org"))
    assert failed.value.retryable is True
    assert not (tmp_path / "new").exists() or stored(tmp_path) == []


async def test_extra_headers_cannot_replace_the_channels_own(tmp_path: Path) -> None:
    channel = MaildirEmail(tmp_path, FakeClock())
    with pytest.raises(ChannelError) as refused:
        await channel.send(message(headers={"Message-ID": "<forged@x>"}))
    assert refused.value.retryable is False
    with pytest.raises(ChannelError):
        await channel.send(message(headers={"X-Evil": "a\r\nBcc: everyone@example.org"}))


def test_satisfies_the_email_channel_interface(tmp_path: Path) -> None:
    channel: EmailChannel = MaildirEmail(tmp_path, FakeClock())
    assert channel.name == "simulated"
