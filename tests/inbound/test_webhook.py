"""Replies, auto-replies and bounces by webhook do exactly what docs/architecture.md §9.1
says, on SQLite and PostgreSQL: the real app, the engine ticked by the test, mail read
from the Maildir it wrote."""

from __future__ import annotations

import mailbox
from collections.abc import Awaitable, Callable
from email.message import Message

from tests.inbound import mails
from tests.inbound.conftest import BOUNCES, REPLIES, Rig, sign

Make = Callable[[str], Awaitable[Rig]]

LEADS = ["ann", "bo", "cy", "di", "ed", "fay", "gus", "hal"]
CAMPAIGN = {
    "name": "Listening",
    "sequence": [
        {"channel": "email", "subject": "Hi {first_name}", "body": "Hello {first_name}"},
        {"channel": "email", "delay_seconds": 3600, "subject": "Again", "body": "Follow-up"},
    ],
    "sender": {"email": "sales@mail.example.com", "name": "Sales"},
}


def sent(rig: Rig) -> dict[str, list[Message]]:
    by_to: dict[str, list[Message]] = {}
    for msg in mailbox.Maildir(rig.maildir):
        by_to.setdefault(str(msg["To"]).split("@")[0], []).append(msg)
    return by_to


async def start(rig: Rig) -> tuple[str, dict[str, Message]]:
    status, c = await rig.call("POST", "/api/v1/campaigns", json=CAMPAIGN)
    assert status == 201, c
    await rig.runtime.service.leads.add(
        c["id"], [{"email": f"{n}@example.org", "first_name": n.title()} for n in LEADS]
    )
    assert (await rig.call("POST", f"/api/v1/campaigns/{c['id']}/start"))[0] == 200
    await rig.tick()
    first = {to: msgs[0] for to, msgs in sent(rig).items()}
    assert sorted(first) == sorted(LEADS)
    return c["id"], first


async def leads_of(rig: Rig, cid: str) -> dict[str, tuple[str, str | None]]:
    rows = (await rig.runtime.service.leads.page(cid))[0]
    return {x.email.split("@")[0]: (x.status, x.stop_reason) for x in rows}


async def test_every_kind_of_message_does_what_it_says(make_rig: Make, db_url: str) -> None:
    rig = await make_rig(db_url)
    cid, first = await start(rig)
    ann = first["ann"]
    # The mail's identity: our signed Message-ID, the attempt, VERP return path and Reply-To.
    attempt = ann["X-Dialer-Attempt"]
    assert ann["Message-ID"].startswith(f"<a{attempt}.")
    assert ann["Message-ID"].endswith("@mail.example.com>")
    assert ann["Return-Path"].startswith(f"<bounces+a{attempt}-")
    assert ann["Reply-To"].startswith(f"replies+a{attempt}-")
    verp = ann["Return-Path"].strip("<>")
    signer = rig.runtime.inbound.links
    assert signer.attempt_of_message_id(ann["Message-ID"]) == int(attempt)

    def ids(name: str) -> str:
        return str(first[name]["Message-ID"])

    def raw(name: str) -> str:
        return first[name].as_string()

    # ann: a plain-text reply naming our Message-ID -> replied.
    reply = mails.plain_reply(
        sender="ann@example.org", to=REPLIES, in_reply_to=ids("ann"), msgid="r1@example.org"
    )
    assert await rig.post_mail(reply) == 204
    assert await rig.post_mail(reply) == 204  # the same message twice: processed once
    # bo: an HTML reply whose References name us (no In-Reply-To) -> replied.
    html = mails.html_reply(
        sender="bo@example.org", to=REPLIES, references=ids("bo"), msgid="r2@example.org"
    )
    assert await rig.post_mail(html) == 204
    # cy: an out-of-office -> recorded, no stop.
    ooo = mails.out_of_office(
        sender="cy@example.org", to=REPLIES, in_reply_to=ids("cy"), msgid="o1@example.org"
    )
    assert await rig.post_mail(ooo) == 204
    # di: Postfix hard bounce to the VERP address -> bounced.
    hard = mails.postfix_dsn(
        to=first["di"]["Return-Path"].strip("<>"),
        rcpt="di@example.org",
        status="5.1.1",
        returned=raw("di"),
        msgid="b1@mx.example.net",
    )
    assert await rig.post_mail(hard) == 204
    # ed: Postfix soft bounce (4.x.x) -> recorded, no stop.
    soft = mails.postfix_dsn(
        to=first["ed"]["Return-Path"].strip("<>"),
        rcpt="ed@example.org",
        status="4.2.2",
        returned=raw("ed"),
        msgid="b2@mx.example.net",
    )
    assert await rig.post_mail(soft) == 204
    # fay: Exchange NDR to the plain bounce address: matched by the returned Message-ID.
    ndr = mails.exchange_dsn(
        rcpt="fay@example.org",
        returned_headers=mails.headers_of(first["fay"].as_bytes()),
        msgid="ndr1@contoso.com",
    )
    assert await rig.post_mail(ndr) == 204
    # gus: Gmail bounce with the Message-ID stripped: matched by Final-Recipient within
    # the campaign of the returned X-Dialer-Attempt.
    headers = "\n".join(
        line
        for line in mails.headers_of(first["gus"].as_bytes()).splitlines()
        if not line.lower().startswith("message-id")
    )
    gmail = mails.gmail_dsn(
        rcpt="gus@example.org", returned_headers=headers, msgid="g1@google.com", to=BOUNCES
    )
    assert await rig.post_mail(gmail) == 204
    # A reply to a forged Message-ID (our form, a wrong MAC) matches nothing.
    forged_id = f"<a{first['hal']['X-Dialer-Attempt']}.0123456789abcdef@mail.example.com>"
    forged = mails.plain_reply(
        sender="stranger@example.net",
        to="sales@mail.example.com",
        in_reply_to=forged_id,
        msgid="f1@example.net",
    )
    assert await rig.post_mail(forged) == 204

    assert await leads_of(rig, cid) == {
        "ann": ("stopped", "replied"),
        "bo": ("stopped", "replied"),
        "cy": ("in_progress", None),
        "di": ("stopped", "bounced"),
        "ed": ("in_progress", None),
        "fay": ("stopped", "bounced"),
        "gus": ("stopped", "bounced"),
        "hal": ("in_progress", None),
    }
    status, stats = await rig.call("GET", f"/api/v1/campaigns/{cid}/stats")
    assert status == 200
    emails = stats["emails"]
    assert (emails["replied"], emails["bounced"], emails["soft_bounced"]) == (2, 3, 1)
    assert emails["sent"] == 8
    metrics = rig.runtime.metrics
    received = {
        k: metrics.emails_received.labels(k)._value.get()
        for k in ("reply", "auto_reply", "bounce", "unmatched")
    }
    assert received == {"reply": 2, "auto_reply": 1, "bounce": 4, "unmatched": 1}
    assert verp.startswith("bounces+")

    # Stopped leads get no follow-up; the others (cy, ed, hal) do.
    await rig.clock.advance(3601)
    await rig.tick()
    follow_ups = sorted(to for to, msgs in sent(rig).items() if len(msgs) == 2)
    assert follow_ups == ["cy", "ed", "hal"]


async def test_the_webhook_refuses_what_it_cannot_trust(make_rig: Make, sqlite_url: str) -> None:
    rig = await make_rig(sqlite_url)
    body = mails.plain_reply(
        sender="x@example.org", to=REPLIES, in_reply_to="<x@y>", msgid="z@example.org"
    )
    assert await rig.post_mail(body, signature="") == 403
    assert await rig.post_mail(body, signature=sign(body, "another-secret")) == 403
    assert await rig.post_mail(body, signature="sha256=zz") == 403
    assert await rig.post_mail(b"") == 400
    assert await rig.post_mail(b"\r\n\r\njust a body") == 400
    big = body + b"x" * (10 * 1024 * 1024)
    assert await rig.post_mail(big) == 413
    assert await rig.post_mail(body) == 204  # unmatched: kept and counted
    assert await rig.post_mail(body) == 204
    assert rig.runtime.metrics.emails_received.labels("unmatched")._value.get() == 1


async def test_forwarded_by_the_lead_is_a_reply(make_rig: Make, sqlite_url: str) -> None:
    rig = await make_rig(sqlite_url)
    cid, first = await start(rig)
    fwd = mails.forwarded(
        sender="hal@example.org", to=REPLIES, original=first["hal"].as_string(), msgid="w@x"
    )
    assert await rig.post_mail(fwd) == 204
    # The same forward by someone else is not the lead's reply.
    other = mails.forwarded(
        sender="boss@example.org", to=REPLIES, original=first["cy"].as_string(), msgid="w2@x"
    )
    assert await rig.post_mail(other) == 204
    states = await leads_of(rig, cid)
    assert states["hal"] == ("stopped", "replied")
    assert states["cy"] == ("in_progress", None)
