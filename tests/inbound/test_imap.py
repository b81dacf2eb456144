"""The IMAP mailbox: a real Dovecot. Messages go through the same pipeline as the webhook
and are moved to `processed` or `unmatched`, never deleted; IDLE wakes the watcher
(docs/architecture.md §9.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from dialer.inbound.imap import ImapWatcher
from tests.inbound import mails
from tests.inbound.conftest import REPLIES, Dovecot, Rig

Make = Callable[[str], Awaitable[Rig]]


async def test_the_mailbox_feeds_the_pipeline(
    make_rig: Make, db_url: str, dovecot: Dovecot
) -> None:
    rig = await make_rig(db_url)
    cid, first = await rig.mailed(("ann", "bo", "cy", "di"))
    reply = mails.plain_reply(
        sender="ann@example.org",
        to=REPLIES,
        in_reply_to=str(first["ann"]["Message-ID"]),
        msgid="r1@example.org",
    )
    ooo = mails.out_of_office(
        sender="bo@example.org",
        to=REPLIES,
        in_reply_to=str(first["bo"]["Message-ID"]),
        msgid="o1@example.org",
    )
    hard = mails.postfix_dsn(
        to=str(first["cy"]["Return-Path"]).strip("<>"),
        rcpt="cy@example.org",
        status="5.1.1",
        returned=first["cy"].as_string(),
        msgid="b1@mx.example.net",
    )
    soft = mails.postfix_dsn(
        to=str(first["di"]["Return-Path"]).strip("<>"),
        rcpt="di@example.org",
        status="4.4.1",
        returned=first["di"].as_string(),
        msgid="b2@mx.example.net",
    )
    junk = mails.plain_reply(
        sender="news@example.net", to=REPLIES, in_reply_to="<x@y>", msgid="n1@example.net"
    )
    for i, raw in enumerate((reply, ooo, hard, soft, junk, reply)):  # the reply twice
        dovecot.deliver(raw, f"{1715000000 + i}.M{i}P1.test")
    watcher = ImapWatcher(dovecot.url(), rig.runtime.inbound)
    try:
        assert await watcher.poll() == 6
        assert await watcher.poll() == 0
    finally:
        await watcher.stop()
    assert dovecot.inbox() == []  # nothing left, nothing deleted
    assert len(dovecot.folder("processed")) == 5
    (kept,) = dovecot.folder("unmatched")
    assert b"n1@example.net" in kept
    rows = (await rig.runtime.service.leads.page(cid))[0]
    assert {x.email: (x.status, x.stop_reason) for x in rows} == {
        "ann@example.org": ("stopped", "replied"),
        "bo@example.org": ("in_progress", None),
        "cy@example.org": ("stopped", "bounced"),
        "di@example.org": ("in_progress", None),
    }
    emails = (await rig.call("GET", f"/api/v1/campaigns/{cid}/stats"))[1]["emails"]
    assert (emails["replied"], emails["bounced"], emails["soft_bounced"]) == (1, 1, 1)


async def test_idle_wakes_the_watcher(make_rig: Make, sqlite_url: str, dovecot: Dovecot) -> None:
    rig = await make_rig(sqlite_url)
    cid, first = await rig.mailed(("ann", "bo", "cy", "di"))
    watcher = ImapWatcher(dovecot.url(), rig.runtime.inbound, idle_seconds=600)
    await watcher.start()
    try:
        # The watcher's first round found nothing; it now waits in IDLE.
        for _ in range(200):
            if watcher._client is not None and watcher._client.has_pending_idle():
                break
            await asyncio.sleep(0.05)
        reply = mails.plain_reply(
            sender="bo@example.org",
            to=REPLIES,
            in_reply_to=str(first["bo"]["Message-ID"]),
            msgid="r9@example.org",
        )
        dovecot.deliver(reply, "1715000100.M1P1.test")
        for _ in range(400):  # an event awaited, not a duration: the deadline is generous
            if dovecot.folder("processed"):
                break
            await asyncio.sleep(0.05)
    finally:
        await watcher.stop()
    assert len(dovecot.folder("processed")) == 1
    rows = (await rig.runtime.service.leads.page(cid))[0]
    assert {x.email: x.stop_reason for x in rows}["bo@example.org"] == "replied"
