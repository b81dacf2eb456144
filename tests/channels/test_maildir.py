from __future__ import annotations

import asyncio
import mailbox
import os
import re
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage as ParsedMessage
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


class GatedMaildir(MaildirEmail):
    """Holds the write of a message whose subject is `held` until the test opens the gate
    (the write runs in a worker thread)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, FakeClock())
        self.gate = threading.Event()
        self.writing = threading.Event()

    def _write(self, name: str, data: bytes) -> None:
        if b"Subject: held" in data:
            self.writing.set()
            if not self.gate.wait(10):  # bounded: a bug fails the test instead of hanging it
                raise OSError("gate never opened")
        super()._write(name, data)


async def test_a_slow_write_holds_neither_the_loop_nor_other_keys(tmp_path: Path) -> None:
    channel = GatedMaildir(tmp_path)
    held = asyncio.create_task(channel.send(message("slow", subject="held")))
    await asyncio.to_thread(channel.writing.wait, 10)
    again = asyncio.create_task(channel.send(message("slow", subject="changed")))

    other = await asyncio.wait_for(channel.send(message("fast")), 10)  # while "slow" waits
    [mail] = stored(tmp_path)
    assert mail["Message-ID"] == other
    assert not held.done() and not again.done()  # the same key waits for the first write

    channel.gate.set()
    first, second = await asyncio.gather(held, again)
    assert first == second != other
    assert sorted(m["Message-ID"] for m in stored(tmp_path)) == sorted([first, other])
    assert os.listdir(tmp_path / "tmp") == []


async def test_concurrent_sends_write_every_message_once(tmp_path: Path) -> None:
    channel = MaildirEmail(tmp_path, FakeClock())
    keys = [f"k{i % 25}" for i in range(50)]  # every key twice, at the same time
    ids = await asyncio.gather(*(channel.send(message(k, attempt_id=k)) for k in keys))

    by_key = dict(zip(keys, ids, strict=False))
    assert all(by_key[k] == i for k, i in zip(keys, ids, strict=True))
    mails = stored(tmp_path)
    assert sorted(m["Message-ID"] for m in mails) == sorted(by_key.values())
    assert {m["X-Dialer-Attempt"] for m in mails} == set(by_key)
    assert os.listdir(tmp_path / "tmp") == []
    for name in os.listdir(tmp_path / "new"):  # <seconds>.M<usec>P<pid>Q<n>.<host>
        assert re.fullmatch(rf"\d+\.M\d+P{os.getpid()}Q\d+\..+", name)
        assert b"\r" not in (tmp_path / "new" / name).read_bytes()  # a file has LF line ends


class CountingMaildir(MaildirEmail):
    """Counts the thread calls; the write of a message whose subject is `broken` fails."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, FakeClock())
        self.calls: list[int] = []

    def _write_all(self, files: list[tuple[str, bytes]]) -> list[BaseException | None]:
        self.calls.append(len(files))
        return super()._write_all(files)

    def _write(self, name: str, data: bytes) -> None:
        if b"Subject: broken" in data:
            raise OSError(28, "No space left on device")
        super()._write(name, data)


async def test_concurrent_sends_share_thread_calls_and_fail_one_by_one(tmp_path: Path) -> None:
    channel = CountingMaildir(tmp_path)
    subjects = ["broken" if i == 17 else f"s{i}" for i in range(60)]
    results = await asyncio.gather(
        *(channel.send(message(f"k{i}", subject=s)) for i, s in enumerate(subjects)),
        return_exceptions=True,
    )

    [error] = [r for r in results if isinstance(r, BaseException)]
    assert results.index(error) == 17
    assert isinstance(error, ChannelError) and error.unavailable and "No space" in str(error)
    assert len(stored(tmp_path)) == 59  # every other message written, once
    assert sum(channel.calls) == 60
    assert len(channel.calls) <= 4  # 60 sends at once: one thread call per writer, not per send
    await channel.send(message("k17", subject="fixed"))  # the failed key can be sent again
    assert len(stored(tmp_path)) == 60


async def test_a_non_ascii_message_round_trips(tmp_path: Path) -> None:
    subject = "Grüße, Zoë — über Ihr Konto 🎉"
    body = "Hallo Zoë,\nkönnen wir sprechen?\n"
    await MaildirEmail(tmp_path, FakeClock()).send(
        message(subject=subject, sender_name="Zoë Ærø", body=body)
    )
    [name] = os.listdir(tmp_path / "new")
    mail = message_from_bytes((tmp_path / "new" / name).read_bytes(), policy=policy.default)
    assert isinstance(mail, ParsedMessage)
    assert mail["Subject"] == subject
    assert mail["From"].addresses[0].display_name == "Zoë Ærø"
    assert mail.get_content() == body


async def test_a_failed_write_is_an_outage_and_leaves_the_key_free(tmp_path: Path) -> None:
    root = tmp_path / "box"
    root.write_text("not a directory")
    channel = MaildirEmail(root, FakeClock())
    with pytest.raises(ChannelError) as failed:
        await channel.send(message())
    assert failed.value.unavailable
    root.unlink()
    message_id = await channel.send(message())
    [mail] = stored(root)
    assert mail["Message-ID"] == message_id


async def test_idempotency_remembers_the_latest_keys_only(tmp_path: Path) -> None:
    """Memory stays flat: the channel remembers the last `remember` keys (a resend comes
    within a lease of its first send); an older key is a new message."""
    channel = MaildirEmail(tmp_path, FakeClock(), remember=2)
    ids = [await channel.send(message(k)) for k in ("a", "b", "c")]
    assert await channel.send(message("c")) == ids[2]
    assert await channel.send(message("b")) == ids[1]
    assert len(stored(tmp_path)) == 3
    assert await channel.send(message("a")) != ids[0]  # forgotten: written again
    assert len(stored(tmp_path)) == 4
