"""The mail server dies: a real Dovecot is killed with SIGKILL and started again while the
IMAP watcher runs. Afterwards nothing is stuck, lost or done twice: the watcher reconnects
on its own (its retry delay slept on the test's FakeClock), every message is processed once
and ends in `processed` or `unmatched`, and the outage is reported (docs/architecture.md
§9.1). Conditions are awaited, never durations: each wait has a generous deadline."""

from __future__ import annotations

import asyncio
import logging
import mailbox
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from email.message import Message
from email.parser import BytesParser

import pytest
from sqlalchemy import select

from dialer.inbound.imap import ImapWatcher
from dialer.inbound.service import Received
from dialer.store.models import Event, InboundMessage
from tests.inbound import mails
from tests.inbound.conftest import REPLIES, Dovecot, Rig

Make = Callable[[str], Awaitable[Rig]]
LEADS = ("ann", "bo", "cy", "di", "ed")


def _reply(first: dict[str, Message], name: str) -> bytes:
    return mails.plain_reply(
        sender=f"{name}@example.org",
        to=REPLIES,
        in_reply_to=str(first[name]["Message-ID"]),
        msgid=f"r-{name}@example.org",
    )


def _msgid(raw: bytes) -> str:
    return str(BytesParser().parsebytes(raw, headersonly=True)["Message-ID"]).strip("<>")


def _ids(messages: list[bytes]) -> Counter[str]:
    return Counter(_msgid(raw) for raw in messages)


async def _until(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


def _idling(watcher: ImapWatcher) -> bool:
    return watcher._client is not None and watcher._client.has_pending_idle()


def _connected(rig: Rig) -> float:
    value: float = rig.runtime.metrics.imap_connected.labels("INBOX")._value.get()
    return value


async def _effects(rig: Rig) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """The inbound rows by key, and the lead events of email kinds by (lead, type)."""
    async with rig.runtime.db.reader() as s:
        keys = Counter((await s.scalars(select(InboundMessage.key))).all())
        rows = (
            await s.execute(
                select(Event.entity_id, Event.type).where(
                    Event.entity == "lead", Event.type.startswith("email.")
                )
            )
        ).all()
    return keys, Counter((str(lead), str(kind)) for lead, kind in rows)


async def _stops(rig: Rig, cid: str) -> dict[str, tuple[str, str | None]]:
    rows = (await rig.runtime.service.leads.page(cid))[0]
    return {x.email.split("@")[0]: (x.status, x.stop_reason) for x in rows}


async def test_mail_delivered_while_the_server_is_down_is_processed_once(
    make_rig: Make, db_url: str, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dialer.inbound.imap")
    rig = await make_rig(db_url)
    cid, first = await rig.mailed(LEADS)
    lead_ids = {
        x.email.split("@")[0]: str(x.id) for x in (await rig.runtime.service.leads.page(cid))[0]
    }
    dovecot.deliver(_reply(first, "ann"), "1715000000.M0P1.test")
    watcher = ImapWatcher(dovecot.url(), rig.runtime.inbound, idle_seconds=600)
    await watcher.start()
    try:
        await _until(
            lambda: len(dovecot.folder("processed")) == 1 and _idling(watcher),
            "ann's reply is processed and the watcher waits in IDLE",
        )
        assert _connected(rig) == 1

        dovecot.kill()
        # The dropped connection fails the IDLE at once: the watcher waits its retry delay.
        await _until(lambda: watcher.failures == 1, "the watcher sees the server gone")
        assert _connected(rig) == 0

        # Mail keeps arriving: the delivery agent writes the Maildir while Dovecot is down.
        # cy's reply is delivered twice (two files, one Message-ID).
        hard = mails.postfix_dsn(
            to=str(first["di"]["Return-Path"]).strip("<>"),
            rcpt="di@example.org",
            status="5.1.1",
            returned=first["di"].as_string(),
            msgid="b-di@mx.example.net",
        )
        junk = mails.plain_reply(
            sender="news@example.net", to=REPLIES, in_reply_to="<x@y>", msgid="n1@example.net"
        )
        down = [_reply(first, "bo"), _reply(first, "cy"), _reply(first, "cy"), hard, junk]
        for i, raw in enumerate(down, start=1):
            dovecot.deliver(raw, f"{1715000000 + i}.M{i}P1.test")

        await rig.clock.advance(1.0)  # the first retry: refused, the next delay doubles
        await _until(lambda: watcher.failures == 2, "the first retry has failed")
        assert _connected(rig) == 0

        dovecot.restart()
        await rig.clock.advance(2.0)
        await _until(
            lambda: dovecot.inbox() == [] and _idling(watcher),
            "the watcher is back, the INBOX empty",
        )
        assert (_connected(rig), watcher.failures) == (1, 0)
    finally:
        await watcher.stop()

    assert _ids(dovecot.folder("processed")) == {
        "r-ann@example.org": 1,
        "r-bo@example.org": 1,
        "r-cy@example.org": 2,  # both files moved; the second is a duplicate
        "b-di@mx.example.net": 1,
    }
    assert _ids(dovecot.folder("unmatched")) == {"n1@example.net": 1}
    assert await _stops(rig, cid) == {
        "ann": ("stopped", "replied"),
        "bo": ("stopped", "replied"),
        "cy": ("stopped", "replied"),
        "di": ("stopped", "bounced"),
        "ed": ("in_progress", None),
    }
    keys, events = await _effects(rig)
    ids = ["r-ann@example.org", "r-bo@example.org", "r-cy@example.org", "b-di@mx.example.net"]
    assert keys == {f"mid:<{m}>": 1 for m in [*ids, "n1@example.net"]}  # one row each
    assert events == {
        (lead_ids["ann"], "email.reply"): 1,
        (lead_ids["bo"], "email.reply"): 1,
        (lead_ids["cy"], "email.reply"): 1,
        (lead_ids["di"], "email.bounce"): 1,
    }
    received = rig.runtime.metrics.emails_received
    assert {k: received.labels(k)._value.get() for k in ("reply", "bounce", "unmatched")} == {
        "reply": 3,
        "bounce": 1,
        "unmatched": 1,
    }
    errors = [r for r in caplog.records if r.getMessage() == "imap.error"]
    assert [getattr(r, "retry_in", None) for r in errors] == [1.0, 2.0]
    assert "ConnectionError" in getattr(errors[0], "error", "")


async def test_killed_between_record_and_move_the_message_is_applied_once(
    make_rig: Make, db_url: str, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await make_rig(db_url)
    cid, first = await rig.mailed(LEADS)
    for i, name in enumerate(("ann", "bo", "cy")):
        dovecot.deliver(_reply(first, name), f"{1715000000 + i}.M{i}P1.test")
    inbound = rig.runtime.inbound
    pipeline = inbound.receive
    taken: list[tuple[str, Received]] = []

    async def dies_after_the_second(raw: bytes, *, source: str) -> Received:
        result = await pipeline(raw, source=source)  # committed
        taken.append((_msgid(raw), result))
        if len(taken) == 2:
            dovecot.kill()  # before the watcher moves it
        return result

    monkeypatch.setattr(inbound, "receive", dies_after_the_second)
    watcher = ImapWatcher(dovecot.url(), inbound, idle_seconds=600)
    await watcher.start()
    try:
        await _until(lambda: watcher.failures == 1, "the MOVE fails on the dead server")
        recorded_not_moved = taken[1][0]
        keys, _ = await _effects(rig)
        assert set(keys) == {f"mid:<{taken[0][0]}>", f"mid:<{recorded_not_moved}>"}
        assert _ids(dovecot.folder("processed")) == {taken[0][0]: 1}
        assert recorded_not_moved in _ids(dovecot.inbox())  # not moved, not lost

        dovecot.restart()
        await rig.clock.advance(1.0)
        await _until(
            lambda: dovecot.inbox() == [] and _idling(watcher),
            "the watcher is back, the INBOX empty",
        )
    finally:
        await watcher.stop()

    replies = {f"r-{n}@example.org" for n in ("ann", "bo", "cy")}
    assert _ids(dovecot.folder("processed")) == dict.fromkeys(replies, 1)
    assert dovecot.folder("unmatched") == []
    # The pipeline saw the interrupted message again, and knew it.
    assert sorted(m for m, r in taken if r.duplicate) == [recorded_not_moved]
    assert Counter(m for m, _ in taken) == {**dict.fromkeys(replies, 1), recorded_not_moved: 2}
    keys, events = await _effects(rig)
    assert keys == {f"mid:<{m}>": 1 for m in replies}
    assert sorted(events.values()) == [1, 1, 1]
    assert {kind for _, kind in events} == {"email.reply"}
    assert await _stops(rig, cid) == {
        **{n: ("stopped", "replied") for n in ("ann", "bo", "cy")},
        **{n: ("in_progress", None) for n in ("di", "ed")},
    }
    assert rig.runtime.metrics.emails_received.labels("reply")._value.get() == 3


async def test_the_outage_is_reported_and_the_rest_keeps_working(
    make_rig: Make, sqlite_url: str, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dialer.inbound.imap")
    rig = await make_rig(sqlite_url)
    cid, first = await rig.mailed(LEADS)
    watcher = ImapWatcher(dovecot.url(), rig.runtime.inbound, idle_seconds=600)

    async def gauge() -> str:
        status, text = await rig.call("GET", "/metrics", auth=False)
        assert status == 200
        (line,) = [x for x in text.splitlines() if x.startswith("dialer_imap_connected{")]
        return str(line)

    await watcher.start()
    try:
        await _until(lambda: _idling(watcher), "the watcher waits in IDLE")
        assert await gauge() == 'dialer_imap_connected{folder="INBOX"} 1.0'

        dovecot.kill()
        await _until(lambda: watcher.failures == 1, "the watcher sees the server gone")
        assert await gauge() == 'dialer_imap_connected{folder="INBOX"} 0.0'
        assert [r.levelno for r in caplog.records if r.getMessage() == "imap.error"] == [
            logging.WARNING
        ]

        # The rest of the process goes on: the webhook takes a reply, the engine sends the
        # follow-ups of the others.
        assert await rig.post_mail(_reply(first, "ann")) == 204
        await rig.clock.advance(3601)  # also the watcher's retries: refused, still down
        await rig.tick()
        await _until(lambda: watcher.failures >= 2, "a retry has failed")
        followed = Counter(str(m["To"]).split("@")[0] for m in mailbox.Maildir(rig.maildir))
        assert followed == {"ann": 1, **{n: 2 for n in LEADS[1:]}}
        assert (await _stops(rig, cid))["ann"] == ("stopped", "replied")
        assert await gauge() == 'dialer_imap_connected{folder="INBOX"} 0.0'

        dovecot.restart()
        await rig.clock.advance(watcher.max_retry_seconds)
        await _until(lambda: _idling(watcher), "the watcher is back in IDLE")
        assert await gauge() == 'dialer_imap_connected{folder="INBOX"} 1.0'
    finally:
        await watcher.stop()
