"""Turning a channel `EmailMessage` into the bytes of a MIME message, shared by the SMTP and
Maildir channels (docs/architecture.md §9).

The message is written out directly rather than through `email.message.EmailMessage`, whose
header registry parses every header it is given (about 0.6 ms a message, the largest part of
a send to a local mail server). What the wire needs is kept:

- a header value that is not plain ASCII (a subject, a display name, an extra header) is an
  RFC 2047 encoded-word, folded by `email.header.Header`; so is an ASCII value that holds
  `=?` (a reader would otherwise decode it) or that is too long for one line;
- a CR or LF in any header value is refused (ValueError): it could otherwise start a header
  of its own (header injection);
- the body is `text/plain; charset="utf-8"`, 7bit when it is plain ASCII in short lines, else
  quoted-printable (readable in the raw file, unlike base64, and safe on any server).

An address outside ASCII (RFC 6531/6532) is written as UTF-8, as the standard library did;
the SMTP channel asks for SMTPUTF8 for such a message (`needs_smtputf8`).
"""

from __future__ import annotations

import binascii
import functools
import re
from dataclasses import replace
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, make_msgid

from dialer.channels.base import EmailMessage
from dialer.domain.links import verp_address

# Headers the channel owns: extra headers may not replace them (tracking depends on them, the
# body is described by the channel, and the message goes to `to` alone).
_RESERVED = frozenset(
    {
        "message-id",
        "date",
        "from",
        "to",
        "cc",
        "bcc",
        "x-dialer-attempt",
        "return-path",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
# RFC 5322 §3.6.8: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# RFC 5322 §3.2.3 specials that make a display name need quoting (as email.utils.formataddr).
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_ESCAPES = re.compile(r'([\\"])')
_MAX_LINE = 78  # RFC 5322 §2.1.1: lines SHOULD be no longer than 78 characters
_MAX_BODY_LINE = 998  # ... and MUST be no longer than 998 (a 7bit body line as well)

_CHARSET = "utf-8"


def new_message_id(msg: EmailMessage) -> str:
    """The attempt's own Message-ID when the engine gave one, else a fresh one on the
    sender's domain (no DNS lookup of our own host name)."""
    if msg.message_id:
        return msg.message_id
    return make_msgid(domain=msg.sender.rpartition("@")[2] or "dialer.invalid")


def with_addresses(
    msg: EmailMessage, bounce_address: str | None, reply_address: str | None
) -> tuple[EmailMessage, str]:
    """(the message with its Reply-To, the envelope sender) under the channel's settings
    (docs/architecture.md §9.1): the envelope sender is `bounce_address` with the
    message's VERP token (`bounces+<token>@example.com`), so a bounce names the attempt;
    Reply-To is `reply_address` with the token, unless the message has one of its own.
    Without a bounce address the envelope sender is the From address."""
    token = msg.verp_token
    sender = msg.sender
    if bounce_address:
        sender = verp_address(bounce_address, token) if token else bounce_address
    if reply_address and not msg.reply_to:
        reply_to = verp_address(reply_address, token) if token else reply_address
        msg = replace(msg, reply_to=reply_to)
    return msg, sender


def needs_smtputf8(msg: EmailMessage) -> bool:
    """True when an address of the envelope is not ASCII (RFC 6531)."""
    return not (msg.to.isascii() and msg.sender.isascii())


@functools.lru_cache(maxsize=8)
def _date_header(date: datetime) -> str:
    # The same second for every message of a round: format it once (format_datetime is slow).
    return format_datetime(date)


def build_message(
    msg: EmailMessage,
    message_id: str,
    date: datetime,
    *,
    linesep: str = "\r\n",
    return_path: str | None = None,
) -> bytes:
    """The MIME message for `msg`, lines ended by `linesep` (CRLF for SMTP, LF for a file).
    `return_path`: a `Return-Path` first, as the delivering server writes it (a Maildir).

    ValueError on a reserved or malformed extra header, or a CR/LF in any header value.
    """
    headers: dict[str, tuple[str, str]] = {}  # lower-cased name -> (name, value as written)

    def put(name: str, value: str, *, written: str | None = None) -> None:
        """Set header `name` to `value`; `written` is how it goes out when the caller
        encoded it (an address), else it is encoded here."""
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r}: a value may not hold CR or LF")
        if written is None:
            written = _header_value(name, value, linesep)
        headers[name.lower()] = (name, written)

    if return_path is not None:
        put("Return-Path", f"<{return_path}>", written=f"<{return_path}>")
    from_ = f"{msg.sender_name} <{msg.sender}>"  # what is checked; written encoded below
    put("From", from_, written=_address(msg.sender_name, msg.sender, linesep))
    put("To", msg.to, written=msg.to)  # an address as is: UTF-8 beyond ASCII (RFC 6532)
    put("Subject", msg.subject)
    put("Message-ID", message_id)
    put("Date", _date_header(date.replace(microsecond=0)))
    if msg.reply_to:
        put("Reply-To", msg.reply_to, written=msg.reply_to)
    if msg.unsubscribe_url:
        # RFC 8058 one-click unsubscribe: mailbox providers POST to the URL.
        put("List-Unsubscribe", f"<{msg.unsubscribe_url}>")
        put("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    put("X-Dialer-Attempt", msg.attempt_id)
    for name, value in msg.headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r} is malformed")
        if name.lower() in _RESERVED:
            raise ValueError(f"header {name!r} is set by the channel")
        headers.pop(name.lower(), None)  # an extra header replaces ours, at the end
        put(name, value)
    cte, body = _body(msg.body, linesep)
    lines = [f"{name}: {line}" for name, line in headers.values()]
    lines.append("MIME-Version: 1.0")
    lines.append('Content-Type: text/plain; charset="utf-8"')
    lines.append(f"Content-Transfer-Encoding: {cte}")
    lines.append("")
    lines.append(body)
    return linesep.join(lines).encode(_CHARSET)


def _header_value(name: str, value: str, linesep: str) -> str:
    """`value` as it goes after `name: `: as is when it can, else RFC 2047 and folded."""
    if value.isascii() and "=?" not in value:
        if len(name) + 2 + len(value) <= _MAX_LINE:
            return value
        return _fold(len(name) + 2, value, linesep)
    return _encoded(value, name, linesep)


def _encoded(value: str, name: str, linesep: str) -> str:
    """RFC 2047 encoded-words, folded; never an empty first line (which a long header name
    would get, and some readers take as a leading space)."""
    return Header(value, _CHARSET, header_name=name).encode(linesep=linesep).lstrip(linesep + " ")


def _fold(offset: int, value: str, linesep: str) -> str:
    """A long ASCII value folded at its spaces (RFC 5322 §2.2.3), lines kept to 78 where a
    space allows; a word longer than a line (a URL) stays whole on its own line."""
    words = value.split(" ")
    out = [words[0]]
    width = offset + len(words[0])
    for word in words[1:]:
        if word and width + 1 + len(word) > _MAX_LINE:
            out.append(f"{linesep} {word}")  # the space starts the next line
            width = 1 + len(word)
        else:
            out.append(f" {word}")
            width += 1 + len(word)
    return "".join(out)


def _address(display_name: str, address: str, linesep: str) -> str:
    """`Name <address>` for From, the name quoted or RFC 2047 encoded as it needs."""
    if not display_name:
        return address
    if not display_name.isascii() or "=?" in display_name:
        name = _encoded(display_name, "From", linesep)
    elif _SPECIALS.search(display_name):
        name = '"{}"'.format(_ESCAPES.sub(r"\\\1", display_name))
    else:
        name = display_name
    return f"{name} <{address}>"


def _body(text: str, linesep: str) -> tuple[str, str]:
    """(Content-Transfer-Encoding, encoded body); the body ends with a line end."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    if text.isascii() and all(len(line) <= _MAX_BODY_LINE for line in text.split("\n")):
        cte = "7bit"
    else:
        # istext: "\n" stays a line end; soft line breaks keep lines under 76 characters.
        text = binascii.b2a_qp(text.encode(_CHARSET), istext=True).decode("ascii")
        cte = "quoted-printable"
    if linesep != "\n":
        text = text.replace("\n", linesep)
    return cte, text
