"""The input limits every use case and the API share (docs/api.md §1, docs/architecture.md §13).

Text reaches two databases that disagree about what they store: PostgreSQL refuses a NUL
byte in any text or JSON value and a lone surrogate cannot be encoded at all, where SQLite
takes both. So text is checked here, before any database sees it, and a refusal names the
field the same way on both backends. The bounds keep every figure the engine computes from
input (a due time, a datetime) representable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from pydantic_core import PydanticCustomError

# Control characters other than tab, line feed and carriage return (C0, DEL, C1), and lone
# surrogates (only a JSON `\ud800` escape makes one: never valid text).
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_BREAK = re.compile(r"[\r\n]")

MAX_DEPTH = 32  # nesting of objects and arrays in a JSON body
MAX_TEXT = 100_000  # characters in any one string (an email body is the longest)
MAX_INT = 2**63 - 1  # integers fit a signed 64-bit column
MAX_INT_DIGITS = 19
# Delays and schedules: far enough for any campaign, near enough that every time computed
# from them (due + delay, a datetime for the API) stays representable.
MAX_DELAY_SECONDS = 366 * 86400.0
MAX_SCHEDULE_SECONDS = 5 * 366 * 86400.0
MAX_CALLER_IDS = 100
MAX_AGENT_IDS = 200
MAX_WINDOWS = 50
MAX_EMAIL_BODY = MAX_TEXT
MAX_SENDER_NAME = 200
MAX_CUSTOM_BYTES = 16_384  # a campaign's or a lead's `custom`, as JSON
MAX_CUSTOM_KEYS = 100
MAX_KEY = 100  # characters in a key of `custom`
MAX_ZONE = 64  # an IANA time zone name

ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # campaign, agent and token ids
DIGITS = re.compile(r"[0-9]{1,18}")  # lead, attempt and event ids (ASCII digits only)
UNSUBSCRIBE_TOKEN = re.compile(r"[0-9]{1,18}\.[0-9a-f]{32}")  # domain/links.py's shape


def text_problem(
    value: str, *, single_line: bool = False, max_length: int = MAX_TEXT
) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    if len(value) > max_length:
        return f"at most {max_length} characters"
    bad = _BAD_TEXT.search(value)
    if bad is not None:
        char = bad.group()
        if "\ud800" <= char <= "\udfff":
            return "contains an invalid Unicode escape (a lone surrogate)"
        return f"contains a control character (U+{ord(char):04X})"
    if single_line and _LINE_BREAK.search(value):
        return "must be a single line"
    return None


def plain_text(value: str | None) -> str | None:
    """A pydantic validator's body: `value` unchanged, or a `text` error naming the problem
    (NUL, control characters, lone surrogates) that pydantic reports on the field."""
    problem = None if value is None else text_problem(value)
    if problem:
        raise PydanticCustomError("text", problem)
    return value


def custom_problem(custom: dict[str, Any]) -> str | None:
    """Why a `custom` object (a campaign's or a lead's) cannot be kept, or None."""
    if len(custom) > MAX_CUSTOM_KEYS:
        return f"at most {MAX_CUSTOM_KEYS} keys"
    for path, why in json_problems(custom, max_depth=8):
        return f"{field_name(path, 'custom')}: {why}"
    for key in custom:
        if len(key) > MAX_KEY:
            return f"keys of at most {MAX_KEY} characters"
    if len(json.dumps(custom, ensure_ascii=False, default=str)) > MAX_CUSTOM_BYTES:
        return f"at most {MAX_CUSTOM_BYTES} characters as JSON"
    return None


def digits_id(raw: str | None) -> int | None:
    """An id written as 1 to 18 ASCII digits (lead, attempt, event), or None. `isdigit()`
    is not enough: '²' and '٣' are digits to Python, and int() refuses the first."""
    if raw is None or not DIGITS.fullmatch(raw):
        return None
    return int(raw)


def is_id(raw: str | None) -> bool:
    """A campaign, agent or token id: 1 to 64 of ASCII letters, digits, `_ . -`."""
    return raw is not None and ID.fullmatch(raw) is not None


def _label(part: str | int) -> str:
    text = str(part)
    # A key that is itself bad text is named by its escapes: an answer must encode as UTF-8.
    return text if text_problem(text) is None else text.encode("unicode_escape").decode()


def field_name(path: tuple[str | int, ...], whole: str = "body") -> str:
    return ".".join(_label(p) for p in path) if path else whole


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, Rejected):
        return value.reason
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_INT else f"an integer between {-MAX_INT} and {MAX_INT}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None


def json_problems(
    value: Any, path: tuple[str | int, ...] = (), *, depth: int = 0, max_depth: int = MAX_DEPTH
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every place in a decoded JSON value that breaks the limits above: (path, why).

    Recursive only as deep as `max_depth` (deeper is reported, not walked)."""
    if not isinstance(value, dict | list):
        problem = _scalar_problem(value)
        if problem:
            yield path, problem
        return
    if depth >= max_depth:
        yield path, f"nested deeper than {max_depth} levels"
        return
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str):
            problem = text_problem(key, max_length=MAX_KEY * 10)
            if problem:
                yield (*path, key), f"key {problem}"
                continue
        yield from json_problems(item, (*path, key), depth=depth + 1, max_depth=max_depth)


class Rejected:
    """A JSON number the decoder would not turn into a value (too long, not finite): kept
    in place so the check above can name the field it was in."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Rejected({self.reason!r})"


def parse_int(text: str) -> int | Rejected:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return Rejected(f"an integer of at most {MAX_INT_DIGITS} digits")
    return int(text)


def parse_float(text: str) -> float | Rejected:
    number = float(text)
    return number if math.isfinite(number) else Rejected("must be a finite number")


def parse_constant(text: str) -> Rejected:
    # json's NaN, Infinity and -Infinity: not JSON (RFC 8259), and never a usable figure.
    return Rejected(f"{text} is not a number JSON allows")
