from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.domain.contacts import (
    ContactError,
    mask_email,
    mask_phone,
    normalize_email,
    normalize_phone,
    timezone_for_phone,
    timezones_for_phone,
    validate_timezone,
)


def test_contact_error_names_the_field() -> None:
    err = ContactError("phone", "is empty")
    assert isinstance(err, ValueError)
    assert (err.field, err.message, str(err)) == ("phone", "is empty", "phone: is empty")


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (415) 555-2671", "US", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("  +14155552671  ", "US", "+14155552671"),
        ("tel:+1-415-555-2671", "US", "+14155552671"),
        ("+33 1 42 68 53 00", "US", "+33142685300"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("+81 3-1234-5678", "US", "+81312345678"),
        ("020 7183 8750", "GB", "+442071838750"),
        ("+61 2 5550 1234", "US", "+61255501234"),
    ],
)
def test_normalize_phone(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abc",
        "123",
        "+1 555 555 0100",  # 555 is not an assigned US area code
        "+999 1234 5678",  # no such country code
        "+1 415 555 267",  # too short
        "+1 415 555 26711",  # too long
        "01 42 68 53 00",  # a French national number read in the default US region
    ],
)
def test_normalize_phone_rejects(raw: str) -> None:
    with pytest.raises(ContactError) as info:
        normalize_phone(raw)
    assert info.value.field == "phone"


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+14155552671", "America/Los_Angeles"),
        ("+12125552671", "America/New_York"),
        ("+81312345678", "Asia/Tokyo"),
        ("+33142685300", "Europe/Paris"),
        ("+442071838750", "Europe/London"),
        ("+15555550100", None),  # phonenumbers cannot place it ("Etc/Unknown")
    ],
)
def test_timezone_for_phone(e164: str, expected: str | None) -> None:
    assert timezone_for_phone(e164) == expected


def test_timezone_for_number_spanning_zones_is_the_first_and_stable() -> None:
    toll_free = "+18005550100"
    zones = timezones_for_phone(toll_free)
    assert len(zones) > 1
    assert "America/New_York" in zones
    assert timezone_for_phone(toll_free) == zones[0] == timezone_for_phone(toll_free)


def test_timezone_for_phone_rejects_garbage() -> None:
    with pytest.raises(ContactError) as info:
        timezone_for_phone("not a number")
    assert info.value.field == "phone"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  Jane.Doe@Example.COM ", "Jane.Doe@example.com"),  # local part keeps its case
        ("ops+dialer@mail.example.co.uk", "ops+dialer@mail.example.co.uk"),
        ("x@b.io", "x@b.io"),
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "jane",
        "jane@",
        "@example.com",
        "jane@example",
        "jane@@example.com",
        "jane@doe@example.com",
        "jane doe@example.com",
        "jane@exa mple.com",
        "jane@example..com",
        "jane@.example.com",
        "jane@example.com.",
        "jane@example.com\r\nBcc: x@evil.com",
        "Jane <jane@example.com>",
        "a,b@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_normalize_email_rejects(raw: str) -> None:
    with pytest.raises(ContactError) as info:
        normalize_email(raw)
    assert info.value.field == "email"


@pytest.mark.parametrize("name", ["UTC", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"])
def test_validate_timezone(name: str) -> None:
    assert validate_timezone(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Mars/Olympus", "America", "../etc/passwd", "/etc/localtime", "localtime", "Etc/Unknown"],
)
def test_validate_timezone_rejects(name: str) -> None:
    with pytest.raises(ContactError) as info:
        validate_timezone(name)
    assert info.value.field == "timezone"


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+14155552671", "+141******71"),
        ("+33142685300", "+331******00"),
        ("+1234567", "+123**67"),
        ("+12345", "******"),
        ("", ""),
    ],
)
def test_mask_phone(e164: str, expected: str) -> None:
    assert mask_phone(e164) == expected


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("jane@example.com", "j***@example.com"),
        ("j@example.com", "j***@example.com"),
        ("not-an-address", "***"),
        ("@example.com", "***"),
    ],
)
def test_mask_email(addr: str, expected: str) -> None:
    assert mask_email(addr) == expected


@given(st.text(max_size=40))
def test_normalize_email_accepts_or_names_the_field(raw: str) -> None:
    try:
        out = normalize_email(raw)
    except ContactError as err:
        assert err.field == "email"
    else:
        assert out.count("@") == 1
        assert normalize_email(out) == out  # idempotent


@given(st.text(alphabet="+0123456789 ()-.", max_size=20))
def test_normalize_phone_accepts_or_names_the_field(raw: str) -> None:
    try:
        out = normalize_phone(raw)
    except ContactError as err:
        assert err.field == "phone"
    else:
        assert out.startswith("+")
        assert normalize_phone(out) == out
        assert mask_phone(out)[4:-2] == "*" * (len(out) - 6)
