"""What a message that came back is, from its bytes alone (docs/architecture.md §9.1).

Pure: the standard library's parser, no I/O. A DSN (RFC 3464, `multipart/report;
report-type=delivery-status`) is a bounce: hard when a recipient's status is 5.x.x, soft
when 4.x.x. A message marked automatic (`Auto-Submitted` other than `no`, the
`X-Autoreply`/`X-Autorespond` headers, `Precedence: auto_reply`) or titled as an
out-of-office is an auto-reply. Anything else is a message from a person (a reply, when it
matches). What the matcher needs is collected: our Message-IDs it names, the addresses it
was delivered to, who sent it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses, parseaddr
from enum import StrEnum


class Kind(StrEnum):
    BOUNCE = "bounce"  # hard: 5.x.x
    SOFT_BOUNCE = "soft_bounce"  # 4.x.x
    AUTO_REPLY = "auto_reply"
    MESSAGE = "message"  # from a person: a reply when it matches


class Unparseable(ValueError):
    """Not an RFC 5322 message (no header at all)."""


_MSGID = re.compile(r"<[^<>\s]+>")
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_OUT_OF_OFFICE = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|auto:|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|absence|vacation)",
    re.IGNORECASE,
)
# Headers that name where a message was delivered (the VERP address among them).
_DELIVERED = ("to", "cc", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
# Whom the address fields of a message name; what matters is the address.
_MAX_IDS = 50  # Message-IDs taken from References (a long thread names many)


@dataclass(slots=True)
class Parsed:
    kind: Kind
    key: str  # what makes a second delivery of the same message a no-op
    message_id: str | None
    sender: str | None  # the From address, lower-cased
    subject: str
    recipients: list[str] = field(default_factory=list)  # delivered to (lower-cased)
    references: list[str] = field(default_factory=list)  # In-Reply-To, then References
    returned_ids: list[str] = field(default_factory=list)  # a DSN's returned Message-IDs
    returned_attempt: str | None = None  # a DSN's returned X-Dialer-Attempt (unsigned)
    quoted_ids: list[str] = field(default_factory=list)  # forwarded (attached) messages
    final_recipients: list[str] = field(default_factory=list)
    status: str | None = None  # a DSN's worst status code


def parse(raw: bytes) -> Parsed:
    """Classify `raw`; Unparseable when it holds no header."""
    if not raw.strip():
        raise Unparseable("empty message")
    msg = message_from_bytes(raw, policy=policy.compat32)
    if not msg.keys():
        raise Unparseable("no header")
    message_id = _first_id(msg.get("Message-ID"))
    key = (
        f"mid:{message_id}"[:200]
        if message_id
        else "sha256:" + hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()
    )
    sender = parseaddr(_text(msg.get("From")))[1].lower() or None
    recipients = [
        a.lower()
        for _, a in getaddresses([_text(v) for h in _DELIVERED for v in msg.get_all(h) or []])
        if a
    ]
    references = _ids(msg.get("In-Reply-To")) + _ids(msg.get("References"))
    parsed = Parsed(
        kind=Kind.MESSAGE,
        key=key,
        message_id=message_id,
        sender=sender,
        subject=_text(msg.get("Subject")),
        recipients=list(dict.fromkeys(recipients)),
        references=list(dict.fromkeys(references))[:_MAX_IDS],
    )
    if _is_dsn(msg):
        _read_dsn(msg, parsed)
    elif _is_auto(msg, parsed.subject):
        parsed.kind = Kind.AUTO_REPLY
    if parsed.kind is not Kind.BOUNCE and parsed.kind is not Kind.SOFT_BOUNCE:
        for part in msg.walk():
            if part.get_content_type() == "message/rfc822" and part.is_multipart():
                for inner in part.get_payload():
                    if isinstance(inner, Message):
                        parsed.quoted_ids += _ids(inner.get("Message-ID"))
    return parsed


def _text(value: object) -> str:
    return str(value) if value is not None else ""


def _ids(value: object) -> list[str]:
    return _MSGID.findall(_text(value))


def _first_id(value: object) -> str | None:
    ids = _ids(value)
    return ids[0] if ids else None


def _is_dsn(msg: Message) -> bool:
    return (
        msg.get_content_type() == "multipart/report"
        and (msg.get_param("report-type") or "").__str__().lower() == "delivery-status"
    )


def _is_auto(msg: Message, subject: str) -> bool:
    auto = _text(msg.get("Auto-Submitted")).strip().lower()
    if auto and auto != "no":
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    if _text(msg.get("Precedence")).strip().lower() == "auto_reply":
        return True
    return bool(_OUT_OF_OFFICE.match(subject))


def _read_dsn(msg: Message, parsed: Parsed) -> None:
    """A DSN's per-recipient fields and the headers of the message it returns."""
    statuses: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in part.get_payload():
                if isinstance(block, Message):
                    _recipient_fields(block, parsed, statuses)
        elif ctype in ("message/rfc822", "message/global") and part.is_multipart():
            for inner in part.get_payload():
                if isinstance(inner, Message):
                    _returned(inner, parsed)
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                _returned(message_from_bytes(payload, policy=policy.compat32), parsed)
    hard = [s for s in statuses if s.startswith("5")]
    soft = [s for s in statuses if s.startswith("4")]
    if hard:
        parsed.kind, parsed.status = Kind.BOUNCE, hard[0]
    elif soft:
        parsed.kind, parsed.status = Kind.SOFT_BOUNCE, soft[0]
    else:  # a success notice (2.x.x) or no status: nothing bounced
        parsed.kind = Kind.AUTO_REPLY
        parsed.status = statuses[0] if statuses else None


def _recipient_fields(block: Message, parsed: Parsed, statuses: list[str]) -> None:
    """One block of a delivery-status part (RFC 3464 §2.3): its recipient and status."""
    final = _text(block.get("Final-Recipient") or block.get("Original-Recipient"))
    if final:
        address = final.partition(";")[2].strip() or final.strip()
        parsed.final_recipients.append(address.strip("<>").lower())
    action = _text(block.get("Action")).strip().lower()
    m = _STATUS.search(_text(block.get("Status")))
    if m:
        statuses.append(m.group(0))
    elif action == "failed":
        statuses.append("5.0.0")
    elif action == "delayed":
        statuses.append("4.0.0")


def _returned(inner: Message, parsed: Parsed) -> None:
    parsed.returned_ids += _ids(inner.get("Message-ID"))
    attempt = _text(inner.get("X-Dialer-Attempt")).strip()
    if attempt and parsed.returned_attempt is None:
        parsed.returned_attempt = attempt
