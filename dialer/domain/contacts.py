"""Validation, normalisation and masking of a lead's contact data.

Errors name the offending field so the API and the lead import can report it
(docs/architecture.md §13).
Masking is for logs: phone numbers and emails never appear there in full
(docs/architecture.md §14.10).
"""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

_UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers when it cannot place a number
# Characters that are only legal in quoted local parts or display names; refusing them also
# keeps a single address from smuggling a second recipient or a header into a message.
_EMAIL_FORBIDDEN = frozenset('<>()[]\\,;:"')
_EMAIL_MAX = 254  # RFC 5321 path limit, less the angle brackets
_LOCAL_MAX = 64


class ContactError(ValueError):
    """Bad contact data; `field` names the input that was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """The number in E.164 form; numbers without a `+` are read in `default_region`."""
    text = raw.strip()
    if not text:
        raise ContactError("phone", "is empty")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise ContactError("phone", f"cannot parse {text!r} as a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ContactError("phone", f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def timezones_for_phone(e164: str) -> tuple[str, ...]:
    """Every IANA zone the number may be in (empty if unknown), in phonenumbers' order."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        raise ContactError("phone", f"{e164!r} is not an E.164 number") from None
    zones = phone_timezone.time_zones_for_number(number)
    return tuple(z for z in zones if z != _UNKNOWN_ZONE and _is_zone(z))


def timezone_for_phone(e164: str) -> str | None:
    """One IANA zone for the number, or None when unknown.

    A number spanning several zones (a toll-free or mobile range) gets the first of
    phonenumbers' list, which is sorted and so deterministic; set the lead's own time zone
    when it matters.
    """
    zones = timezones_for_phone(e164)
    return zones[0] if zones else None


def normalize_email(raw: str) -> str:
    """The address stripped, with its domain lower-cased (the local part is case-sensitive).

    A pragmatic check, not RFC 5322: one `@`, a non-empty local part, a dotted domain with no
    empty labels, no whitespace and no quoting or list characters.
    """
    text = raw.strip()
    if not text:
        raise ContactError("email", "is empty")
    if len(text) > _EMAIL_MAX:
        raise ContactError("email", f"is longer than {_EMAIL_MAX} characters")
    if any(c.isspace() for c in text) or not text.isprintable():
        raise ContactError("email", "contains whitespace or control characters")
    if _EMAIL_FORBIDDEN.intersection(text):
        raise ContactError("email", f"contains one of {''.join(sorted(_EMAIL_FORBIDDEN))}")
    if text.count("@") != 1:
        raise ContactError("email", "must contain exactly one @")
    local, domain = text.split("@")
    if not local:
        raise ContactError("email", "has an empty local part")
    if len(local) > _LOCAL_MAX:
        raise ContactError("email", f"local part is longer than {_LOCAL_MAX} characters")
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        raise ContactError("email", f"domain {domain!r} is not a dotted host name")
    return f"{local}@{domain.lower()}"


def validate_timezone(name: str) -> str:
    """`name` itself when it is an IANA zone key that zoneinfo can load."""
    if not _is_zone(name):
        raise ContactError("timezone", f"unknown time zone {name!r}")
    return name


@functools.lru_cache(maxsize=1024)
def _is_zone(name: str) -> bool:
    # "localtime" is the server's own zone on some systems, never a lead's.
    if not name or name == "localtime":
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def mask_phone(e164: str) -> str:
    """Keep the first 4 and last 2 characters: "+14155552671" -> "+141******71"."""
    if len(e164) <= 6:
        return "*" * len(e164)
    return e164[:4] + "*" * (len(e164) - 6) + e164[-2:]


def mask_email(addr: str) -> str:
    """Keep the first character of the local part and the domain: "j***@example.com"."""
    local, at, domain = addr.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"
