"""Turning a channel `EmailMessage` into a MIME message, shared by the SMTP and Maildir channels."""

from __future__ import annotations

import email.message
from datetime import datetime
from email.utils import format_datetime, formataddr, make_msgid

from dialer.channels.base import EmailMessage

# Headers the channel owns: extra headers may not replace them (tracking depends on them).
_RESERVED = frozenset({"message-id", "date", "from", "to", "x-dialer-attempt"})


def new_message_id(msg: EmailMessage) -> str:
    """A fresh Message-ID on the sender's domain (no DNS lookup of our own host name)."""
    return make_msgid(domain=msg.sender.rpartition("@")[2] or "dialer.invalid")


def build_message(msg: EmailMessage, message_id: str, date: datetime) -> email.message.EmailMessage:
    """The MIME message for `msg`; ValueError on a reserved or malformed extra header."""
    out = email.message.EmailMessage()
    out["From"] = formataddr((msg.sender_name, msg.sender))
    out["To"] = msg.to
    out["Subject"] = msg.subject
    out["Message-ID"] = message_id
    out["Date"] = format_datetime(date)
    if msg.reply_to:
        out["Reply-To"] = msg.reply_to
    if msg.unsubscribe_url:
        # RFC 8058 one-click unsubscribe: mailbox providers POST to the URL.
        out["List-Unsubscribe"] = f"<{msg.unsubscribe_url}>"
        out["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    out["X-Dialer-Attempt"] = msg.attempt_id
    for name, value in msg.headers.items():
        if name.lower() in _RESERVED:
            raise ValueError(f"header {name!r} is set by the channel")
        del out[name]
        out[name] = value
    out.set_content(msg.body)
    return out
