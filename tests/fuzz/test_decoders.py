"""Hypothesis over every decoder of client input: the JSON boundary, the CSV importer (and a
whole lead import on SQLite and PostgreSQL), Twilio's callback fields and attempt ids, the
unsubscribe tokens, Last-Event-ID, X-Forwarded-For and the log masks.

Each one either decodes or refuses with a 4xx-mapped error; nothing else may escape.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dialer.api.csv_body import decode
from dialer.api.errors import ApiError
from dialer.api.inputs import BadJson, decode_json, problems
from dialer.api.login_limit import client_address, parse_networks
from dialer.api.routes_dnc import csv_phones
from dialer.api.routes_leads import parse_csv
from dialer.api.routes_twilio import plausible
from dialer.channels import twiml
from dialer.domain.links import LinkSigner
from dialer.errors import ServiceError
from dialer.logs import mask_text
from dialer.usecases.campaigns import lead_of_unsubscribe_token
from dialer.usecases.limits import MAX_INT, digits_id, text_problem
from tests.fuzz import strategies as hs
from tests.fuzz.rig import AUTH, Rig, make_rig
from tests.harness import ClientFactory

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
SIGNER = LinkSigner(b"fuzz-secret")


def safe(value: Any, depth: int = 0) -> None:
    """What passed the boundary can be stored anywhere: UTF-8 text without NUL or controls,
    64-bit integers, finite numbers, bounded nesting."""
    assert depth <= 33
    if isinstance(value, str):
        assert text_problem(value) is None
        value.encode("utf-8")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        assert abs(value) <= MAX_INT
    elif isinstance(value, float):
        assert value == value and abs(value) != float("inf")
    elif isinstance(value, dict):
        for k, v in value.items():
            safe(k, depth)
            safe(v, depth + 1)
    else:
        assert isinstance(value, list), type(value)
        for v in value:
            safe(v, depth + 1)


@FAST
@given(raw=st.one_of(st.binary(max_size=200), st.builds(hs.dumps, hs.json_values)))
def test_the_json_boundary_decodes_or_refuses(raw: bytes) -> None:
    try:
        value = decode_json(raw)
    except BadJson:
        return
    found = problems(value, rows="leads")
    if not found.body and not found.rows:
        safe(value)
    for errors in [found.body, *found.rows.values()]:
        assert all(isinstance(e["field"], str) and e["message"] for e in errors)


def test_the_json_boundary_names_each_field() -> None:
    raw = b'{"a": {"b": [1, "x\\u0000"]}, "n": 1e999, "i": ' + b"1" * 6000 + b', "s": "\\ud800"}'
    fields = {e["field"]: e["message"] for e in problems(decode_json(raw)).body}
    assert fields == {
        "a.b.1": "contains a control character (U+0000)",
        "n": "must be a finite number",
        "i": "an integer of at most 19 digits",
        "s": "contains an invalid Unicode escape (a lone surrogate)",
    }
    with pytest.raises(BadJson, match="nested deeper"):
        decode_json(b"[" * 60_000)
    deep = decode_json(b"[" * 40 + b"]" * 40)
    assert problems(deep).body == [
        {"field": "0." * 31 + "0", "message": "nested deeper than 32 levels"}
    ]


# -- CSV ----------------------------------------------------------------------------------
CHARSETS = st.sampled_from(
    [None, "utf-8", "latin-1", "utf-16", "x-no-such", "rot13", "idna", "unicode_escape"]
)


@FAST
@given(raw=st.binary(max_size=300), charset=CHARSETS)
def test_csv_bodies_decode_or_refuse(raw: bytes, charset: str | None) -> None:
    try:
        text = decode(raw, charset)
    except (ApiError, ServiceError) as exc:
        assert 400 <= getattr(exc, "status", 400) < 500
        return
    for reader in (parse_csv, csv_phones):
        try:
            reader(text)
        except ServiceError as exc:
            assert exc.status == 422


@FAST
@given(cells=st.lists(st.lists(hs.texts, min_size=1, max_size=6), min_size=1, max_size=6))
def test_csv_records_read_or_refuse(cells: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows([["phone", "email", *c[2:]] for c in cells[:1]] + cells[1:])
    try:
        parsed = parse_csv(out.getvalue())
    except ServiceError as exc:
        assert exc.status == 422
        return
    assert len(parsed.rows) == len(parsed.lines)
    assert all(line >= 2 for line in parsed.lines)


# -- a whole import, on both databases: the bad rows rejected by number, the good kept ------
GOOD_TEXT = st.text(
    st.characters(categories=["L", "N", "Zs", "P"], exclude_characters=",\"'"), max_size=20
).map(str.strip)
BAD_TEXT = st.sampled_from(["a\x00b", "\x00", "x\x1by", "\x7f", "\u009bz"])


@st.composite
def lead_rows(draw: st.DrawFn) -> list[tuple[dict[str, str], str | None]]:
    """Rows, each with the field it breaks (None for a good row)."""
    rows = []
    for i in range(draw(st.integers(1, 8))):
        row = {
            "phone": f"+1212555{i:04d}",
            "email": f"lead{i}@example.com",
            "first_name": draw(GOOD_TEXT),
            "company": draw(GOOD_TEXT),
        }
        bad = draw(st.sampled_from([None, None, "first_name", "company", "email"]))
        if bad is not None:
            row[bad] = draw(BAD_TEXT)
        rows.append((row, bad))
    return rows


@pytest.fixture
async def rig(aiohttp_client: ClientFactory, tmp_path: Path, db_url: str) -> Rig:
    return await make_rig(aiohttp_client, tmp_path, db_url)


async def test_an_import_rejects_bad_rows_and_keeps_good_ones(rig: Rig) -> None:
    loop = asyncio.get_running_loop()
    service = rig.runtime.service
    draft = {
        "name": "Import",
        "sequence": [{"channel": "email", "subject": "Hi", "body": "Hello"}],
        "sender": {"email": "s@example.com"},
    }
    outcomes: list[str] = []

    async def one(rows: list[tuple[dict[str, str], str | None]], as_csv: bool) -> None:
        c = await service.create_campaign(draft, actor="admin:test")
        url = f"/api/v1/campaigns/{c.id}/leads"
        if as_csv:
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=["phone", "email", "first_name", "company"])
            writer.writeheader()
            writer.writerows(r for r, _ in rows)
            kwargs: dict[str, Any] = {
                "data": out.getvalue().encode(),
                "headers": {**AUTH, "Content-Type": "text/csv"},
            }
            numbers = list(range(2, len(rows) + 2))  # CSV: the line (the header is line 1)
        else:
            kwargs = {
                "data": json.dumps({"leads": [r for r, _ in rows]}),
                "headers": {**AUTH, "Content-Type": "application/json"},
            }
            numbers = list(range(1, len(rows) + 1))
        async with rig.client.session.post(rig.url(url, ""), **kwargs) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        bad = {numbers[i]: field for i, (_, field) in enumerate(rows) if field is not None}
        assert body["accepted"] == len(rows) - len(bad), body
        rejected = {r["row"]: {e["field"] for e in r["errors"]} for r in body["rejected"]}
        assert set(rejected) == set(bad), (rejected, bad)
        for row, field in bad.items():
            assert field in rejected[row], (row, field, rejected[row])
        kept, _ = await service.leads.page(c.id, limit=100)
        assert len(kept) == body["accepted"]
        outcomes.append(f"{body['accepted']}/{len(rows)}")

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(rows=lead_rows(), as_csv=st.booleans())
    def check(rows: list[tuple[dict[str, str], str | None]], as_csv: bool) -> None:
        asyncio.run_coroutine_threadsafe(one(rows, as_csv), loop).result(60)

    await asyncio.to_thread(check)
    assert len(outcomes) >= 10


# -- ids and tokens -----------------------------------------------------------------------
@FAST
@given(raw=st.one_of(hs.texts, st.from_regex(r"[0-9]{1,25}", fullmatch=True)))
def test_digit_ids_are_ascii_and_64_bit(raw: str) -> None:
    """Lead, attempt (Twilio's ?attempt=) and event (Last-Event-ID) ids."""
    value = digits_id(raw)
    if re.fullmatch(r"[0-9]{1,18}", raw, flags=re.ASCII):
        assert value == int(raw) and 0 <= value < 10**18
    else:
        assert value is None


@FAST
@given(token=st.one_of(hs.texts, st.from_regex(r"[0-9]{1,20}\.[0-9a-f]{32}", fullmatch=True)))
def test_unsubscribe_tokens_decode_only_when_signed(token: str) -> None:
    lead = lead_of_unsubscribe_token(SIGNER, token)
    assert lead is None or SIGNER.unsubscribe_token(lead) == token


@FAST
@given(lead=st.integers(0, 10**18 - 1))
def test_signed_unsubscribe_tokens_decode(lead: int) -> None:
    token = SIGNER.unsubscribe_token(lead)
    assert lead_of_unsubscribe_token(SIGNER, token) == lead
    assert lead_of_unsubscribe_token(LinkSigner(b"another"), token) is None


# -- Twilio's callback fields ---------------------------------------------------------------
FIELDS = ["CallSid", "CallStatus", "CallDuration", "AnsweredBy", "Timestamp", "ErrorCode"]


@FAST
@given(params=st.dictionaries(st.sampled_from(FIELDS), hs.texts, max_size=6))
def test_callback_fields_read_or_are_ignored(params: dict[str, str]) -> None:
    cleaned = plausible(params)
    for build in (twiml.status_event, twiml.amd_event):
        event = build("1", cleaned, 1_767_625_200.0)
        if event is not None:
            assert event.duration_seconds is None or 0 <= event.duration_seconds < 10**7
            assert isinstance(event.at, float)


# -- who is asking ------------------------------------------------------------------------
TRUSTED = parse_networks(["10.0.0.0/8", "::1"])


@FAST
@given(
    peer=st.one_of(st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "2001:db8::7", ""]), hs.texts),
    forwarded=st.lists(
        st.one_of(st.sampled_from(["1.2.3.4", "10.0.0.9", "2001:db8::1, 10.0.0.1"]), hs.texts),
        max_size=3,
    ),
)
def test_the_client_address_is_the_peer_unless_a_trusted_proxy_says(
    peer: str, forwarded: list[str]
) -> None:
    found = client_address(peer, forwarded, TRUSTED)
    assert isinstance(found, str) and found
    if peer in ("127.0.0.1", "2001:db8::7"):  # not a proxy we trust: its header is ignored
        assert found in ("127.0.0.1", "2001:db8::/64")


# -- the log masks --------------------------------------------------------------------------
@FAST
@given(
    before=hs.texts,
    number=st.from_regex(r"\+[1-9][0-9]{7,13}", fullmatch=True),
    after=hs.texts,
)
def test_masks_hide_every_number_and_nothing_else(before: str, number: str, after: str) -> None:
    assume(number[1:] not in before + after)
    text = f"{before} to {number} ok {after}"
    masked = mask_text(text)
    assert number not in masked and number[1:] not in masked
    for keep in ("2026-01-05T15:20:03.417+00:00", "CA0123456789abcdef0123456789abcdef", "503"):
        assert keep in mask_text(f"{before} {keep} {after}") or keep in before + after
