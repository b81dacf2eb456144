"""Hostile inputs: the strings, numbers and JSON an attacker sends (issue 12's list and more).

`Raw` leaves are JSON text written as is, so a body can hold what `json.dumps` never writes:
a 6,000-digit integer, `1e999`, `NaN`, `Infinity`, deep nesting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

# Strings that broke something once, or could: NUL and other controls, digits that are not
# ASCII ('²' passes isdigit(), int() refuses it; '٣' int() reads), lone surrogates (only a
# JSON escape makes one), bidi controls, long and huge-number text, paths, separators.
SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x01\x7f\x9f",
    "\r\n",
    "²",
    "1²",
    "٣",
    "\U0001d7d8",  # MATHEMATICAL DOUBLE-STRUCK DIGIT ZERO
    "\ud800",
    "x\udfffy",
    "\u202e\u2066",
    "é",
    "../../etc/passwd",
    "%00",
    "0",
    "-1",
    "9" * 19,
    "9" * 30,
    "1" * 5000,
    "1e309",
    "NaN",
    "Infinity",
    "a" * 300,
    "a" * 70_000,
    "x_dummy_0",
    "+12125550123",
    "a@b.co",
    "America/New_York",
    "a" * 80 + "/" + "b" * 300,
]

texts = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.sampled_from(SPECIAL_TEXT),
    st.sampled_from(SPECIAL_TEXT),
    st.text(max_size=12),
    st.text(st.characters(categories=["Cc", "Cs", "Nd", "No", "Zs"]), max_size=6),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2),
)


@dataclass(frozen=True)
class Raw:
    """JSON text put in the body as is."""

    text: str


RAW_NUMBERS = [
    "1" * 6000,
    "-" + "9" * 25,
    "1e309",
    "-1e309",
    "1e308",
    "NaN",
    "Infinity",
    "-Infinity",
    "1E400",
    "-0",
    "0.0000000000000000000000001",
    "9223372036854775808",
    "-9223372036854775809",
    "[" * 60_000,
]

numbers: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([Raw(n) for n in RAW_NUMBERS]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 15, 20, 21, 3600, 1e308, 2**63 - 1, 2**63, 10**18]),
)

scalars: st.SearchStrategy[Any] = st.one_of(texts, texts, numbers, st.booleans(), st.none())
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    """`value` as a JSON body, `Raw` leaves written as they are, lone surrogates escaped
    (`\\ud800`), as a hostile client would send them."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(v.text)
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(v, dict):
            return {str(k): swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(value))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw)
    return text.encode("utf-8", "surrogatepass")


def pct(value: str) -> str:
    """`value` percent-encoded as UTF-8 bytes (a surrogate as its three bytes, which no
    decoder accepts): how a client puts anything into a path or a query."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `value` (the root too)."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += leaves(v, (*path, i))
    return out


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of `value` with the value at `path` replaced by `new`."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


@st.composite
def mutated(draw: st.DrawFn, example: Any) -> Any:
    """A valid body with one place made hostile: a value replaced, a key added, or the
    whole body replaced."""
    how = draw(st.sampled_from(["leaf"] * 8 + ["key", "whole"]))
    if how == "whole":
        return draw(json_values)
    if how == "key" and isinstance(example, dict):
        return {**example, draw(texts): draw(json_values)}
    paths = leaves(example)[1:] or [()]
    path = draw(st.sampled_from(paths))
    return replaced(example, path, draw(st.one_of(scalars, scalars, scalars, json_values)))
