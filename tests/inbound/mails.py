"""Messages as common mail systems send them back (written for these tests): DSNs in the
layouts of Postfix, Exchange and Gmail, replies in plain text and HTML, an out-of-office,
a forwarded message. CRLF line ends, as on the wire."""

from __future__ import annotations


def _crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


def postfix_dsn(*, to: str, rcpt: str, status: str, returned: str, msgid: str) -> bytes:
    """Postfix's bounce: the VERP address as To, the whole message returned."""
    action = "failed" if status.startswith("5") else "delayed"
    return _crlf(f"""
Return-Path: <>
Delivered-To: {to}
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: Mon, 6 May 2024 14:01:02 +0000 (UTC)
Message-Id: <{msgid}>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="8A1B2C3D.1715004062/mx.example.net"

This is a MIME-encapsulated message.

--8A1B2C3D.1715004062/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{rcpt}>: host mail.example.org said: 550 5.1.1 <{rcpt}>: Recipient
    address rejected: User unknown in virtual mailbox table

--8A1B2C3D.1715004062/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 8A1B2C3D
Arrival-Date: Mon,  6 May 2024 14:01:01 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: {action}
Status: {status}
Remote-MTA: dns; mail.example.org
Diagnostic-Code: smtp; 550 {status} <{rcpt}>: Recipient address rejected

--8A1B2C3D.1715004062/mx.example.net
Content-Description: Undelivered Message
Content-Type: message/rfc822

{returned.strip()}

--8A1B2C3D.1715004062/mx.example.net--
""")


def exchange_dsn(*, rcpt: str, returned_headers: str, msgid: str) -> bytes:
    """Exchange's NDR: to the plain bounce address (no VERP), headers only returned."""
    return _crlf(f"""
From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com>
To: <bounces@mail.example.com>
Subject: Undeliverable: Hello
Date: Mon, 6 May 2024 14:05:00 +0000
Message-ID: <{msgid}>
Auto-Submitted: auto-replied
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
MIME-Version: 1.0
Content-Type: multipart/report; report-type="delivery-status";
	boundary="_000_NDR_contoso_"

--_000_NDR_contoso_
Content-Type: multipart/alternative; boundary="_001_alt_"

--_001_alt_
Content-Type: text/plain; charset="us-ascii"

Your message to {rcpt} couldn't be delivered.
{rcpt.split("@")[0]} wasn't found at contoso.com.

--_001_alt_
Content-Type: text/html; charset="us-ascii"

<html><body><p>Your message to {rcpt} couldn't be delivered.</p></body></html>

--_001_alt_--

--_000_NDR_contoso_
Content-Type: message/delivery-status

Reporting-MTA: dns;DM6PR11MB4691.namprd11.prod.outlook.com
Received-From-MTA: dns;mx.example.net
Arrival-Date: Mon, 6 May 2024 14:04:59 +0000

Final-Recipient: rfc822;{rcpt}
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found
 by SMTP address lookup
X-Display-Name: {rcpt}

--_000_NDR_contoso_
Content-Type: text/rfc822-headers

{returned_headers.strip()}

--_000_NDR_contoso_--
""")


def gmail_dsn(*, rcpt: str, returned_headers: str, msgid: str, to: str) -> bytes:
    """Gmail's bounce of a message it could not deliver out: the original's headers only."""
    return _crlf(f"""
Delivered-To: {to}
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {to}
Subject: Delivery Status Notification (Failure)
Date: Mon, 06 May 2024 07:10:00 -0700 (PDT)
Message-ID: <{msgid}>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000gmail"; report-type=delivery-status

--000000000000gmail
Content-Type: text/plain; charset="UTF-8"

** Address not found **

Your message wasn't delivered to {rcpt} because the address couldn't be found.

--000000000000gmail
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; sender@mail.example.com
Arrival-Date: Mon, 06 May 2024 07:09:59 -0700 (PDT)
X-Original-Message-ID: <unknown@example.com>

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.org. (203.0.113.5, the server for the domain example.org.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.
Last-Attempt-Date: Mon, 06 May 2024 07:10:00 -0700 (PDT)

--000000000000gmail
Content-Type: text/rfc822-headers

{returned_headers.strip()}

--000000000000gmail--
""")


def plain_reply(*, sender: str, to: str, in_reply_to: str, msgid: str) -> bytes:
    return _crlf(f"""
From: Ann Lee <{sender}>
To: {to}
Subject: Re: Hi Ann
Date: Mon, 6 May 2024 15:00:00 +0000
Message-ID: <{msgid}>
In-Reply-To: {in_reply_to}
References: {in_reply_to}
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Sounds good, call me tomorrow.

> Hello Ann
""")


def html_reply(*, sender: str, to: str, references: str, msgid: str) -> bytes:
    """Outlook's HTML reply: no In-Reply-To, our Message-ID deep in References."""
    return _crlf(f"""
From: "Bo Diaz" <{sender}>
To: "Sales" <{to}>
Subject: RE: Hi Bo
Date: Mon, 6 May 2024 15:10:00 +0000
Message-ID: <{msgid}>
References: <older-thread@example.org> {references}
Thread-Topic: Hi Bo
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="_alt_outlook_"

--_alt_outlook_
Content-Type: text/plain; charset="utf-8"

Not interested, thanks.

--_alt_outlook_
Content-Type: text/html; charset="utf-8"

<html><body><p>Not interested, thanks.</p></body></html>

--_alt_outlook_--
""")


def out_of_office(*, sender: str, to: str, in_reply_to: str, msgid: str) -> bytes:
    """Exchange's automatic reply: names our Message-ID like a reply, marked automatic."""
    return _crlf(f"""
From: Cy Park <{sender}>
To: {to}
Subject: Automatic reply: Hi Cy
Date: Mon, 6 May 2024 15:20:00 +0000
Message-ID: <{msgid}>
In-Reply-To: {in_reply_to}
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

I am out of the office until Monday.
""")


def forwarded(*, sender: str, to: str, original: str, msgid: str) -> bytes:
    """The lead forwards our mail (attached) to our plain reply address."""
    return _crlf(f"""
From: {sender}
To: {to}
Subject: Fwd: Hi
Date: Mon, 6 May 2024 16:00:00 +0000
Message-ID: <{msgid}>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd-boundary"

--fwd-boundary
Content-Type: text/plain; charset=utf-8

Please talk to my colleague instead.

--fwd-boundary
Content-Type: message/rfc822

{original.strip()}

--fwd-boundary--
""")


def headers_of(raw: bytes) -> str:
    """The header block of a sent message (what a DSN returns)."""
    return raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode()
