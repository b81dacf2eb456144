from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage as ParsedMessage
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from dialer.channels.base import EmailMessage
from dialer.channels.mime import build_message, needs_smtputf8, new_message_id

DATE = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def message(**kw: Any) -> EmailMessage:
    fields: dict[str, Any] = {
        "attempt_id": "42",
        "idempotency_key": "k1",
        "campaign_id": "c1",
        "to": "lead@example.org",
        "sender": "sales@dialer.test",
        "sender_name": "Ada from Sales",
        "subject": "Hello there",
        "body": "Hi,\nshall we talk?\n",
    }
    fields.update(kw)
    return EmailMessage(**fields)


def parse(raw: bytes) -> ParsedMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, ParsedMessage)
    return parsed


def content(mail: ParsedMessage) -> str:
    """The decoded body with LF line ends (the parser keeps the CRLF of the wire)."""
    text = mail.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def head(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[0]


def test_headers_and_body_of_a_plain_message() -> None:
    msg = message(reply_to="reply+42@dialer.test", unsubscribe_url="https://dialer.test/u/1")
    message_id = new_message_id(msg)
    raw = build_message(msg, message_id, DATE)

    mail = parse(raw)
    assert mail["Message-ID"] == message_id and message_id.endswith("@dialer.test>")
    assert mail["From"] == "Ada from Sales <sales@dialer.test>"
    assert mail["To"] == "lead@example.org"
    assert mail["Subject"] == "Hello there"
    assert mail["Reply-To"] == "reply+42@dialer.test"
    assert mail["List-Unsubscribe"] == "<https://dialer.test/u/1>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Dialer-Attempt"] == "42"
    assert parsedate_to_datetime(mail["Date"]) == DATE
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail["Content-Transfer-Encoding"] == "7bit"
    assert content(mail) == "Hi,\nshall we talk?\n"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, for SMTP


def test_a_file_gets_lf_line_ends() -> None:
    raw = build_message(message(body="a\r\nb\rc"), "<id@x>", DATE, linesep="\n")
    assert b"\r" not in raw
    assert content(parse(raw)) == "a\nb\nc\n"  # every line end normalised, one at the end


def test_a_non_ascii_subject_and_name_are_rfc2047_and_round_trip() -> None:
    subject = "Grüße, Zoë — über Ihr Konto 🎉 " + "sehr lang " * 10
    raw = build_message(message(subject=subject, sender_name="Zoë Ærø"), "<id@x>", DATE)

    assert head(raw).isascii()  # encoded-words only, no raw UTF-8 in the header
    assert b"=?utf-8?" in head(raw)
    assert all(len(line) <= 78 for line in head(raw).split(b"\r\n"))  # folded
    mail = parse(raw)
    assert mail["Subject"] == subject
    assert mail["From"].addresses[0].display_name == "Zoë Ærø"
    assert mail["From"].addresses[0].addr_spec == "sales@dialer.test"


def test_a_non_ascii_body_is_quoted_printable_and_round_trips() -> None:
    body = "Hallo Zoë,\nkönnen wir sprechen? 😀\n" + "x" * 1200 + "\n.\n= trailing \n"
    raw = build_message(message(body=body), "<id@x>", DATE)

    assert raw.isascii()
    assert all(len(line) <= 76 for line in raw.partition(b"\r\n\r\n")[2].split(b"\r\n"))
    assert b"Hallo Zo=C3=AB," in raw  # readable in the raw file, unlike base64
    mail = parse(raw)
    assert mail["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(mail) == body


def test_an_ascii_line_longer_than_smtp_allows_is_quoted_printable() -> None:
    body = "y" * 1500 + "\n"
    mail = parse(build_message(message(body=body), "<id@x>", DATE))
    assert mail["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(mail) == body


@pytest.mark.parametrize(
    "name",
    ['Smith, John "JJ"', "Dr. Who (Sales)", "=?utf-8?q?not_an_encoded_word?="],
)
def test_display_names_are_quoted_or_encoded_as_they_need(name: str) -> None:
    mail = parse(build_message(message(sender_name=name), "<id@x>", DATE))
    [sender] = mail["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (name, "sales@dialer.test")


def test_a_long_non_ascii_value_of_a_long_header_round_trips() -> None:
    name = "X-" + "Long" * 17
    value = "Zoë é" * 20
    raw = build_message(message(headers={name: value}), "<id@x>", DATE)
    assert f"{name}: =?utf-8?".encode() in raw  # no empty first line
    assert parse(raw)[name] == value


def test_an_ascii_subject_that_looks_encoded_stays_literal() -> None:
    subject = "Re: =?utf-8?b?aGk=?= and more"
    assert parse(build_message(message(subject=subject), "<id@x>", DATE))["Subject"] == subject


def test_a_long_ascii_subject_is_folded_and_round_trips() -> None:
    subject = " ".join(f"word{i}" for i in range(40)) + "  two  spaces " + "y" * 90 + " end "
    raw = build_message(message(subject=subject), "<id@x>", DATE)
    lines = head(raw).split(b"\r\n")
    assert b" " + b"y" * 90 in lines  # a word longer than a line gets a line of its own
    assert all(len(line) <= 78 for line in lines if b"y" * 90 not in line)
    assert parse(raw)["Subject"] == subject


def test_a_long_value_without_spaces_stays_whole() -> None:
    url = "https://dialer.test/u/" + "a" * 150
    subject = "x" * 120
    raw = build_message(message(unsubscribe_url=url, subject=subject), "<id@x>", DATE)
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in raw
    mail = parse(raw)
    assert mail["List-Unsubscribe"] == f"<{url}>"
    assert mail["Subject"] == subject


def test_extra_headers_are_added_and_may_replace_optional_ones() -> None:
    msg = message(
        reply_to="reply@dialer.test",
        headers={"reply-to": "other@dialer.test", "X-Campaign": "Café c1"},
    )
    mail = parse(build_message(msg, "<id@x>", DATE))
    assert mail.get_all("Reply-To") == ["other@dialer.test"]
    assert mail["X-Campaign"] == "Café c1"


@pytest.mark.parametrize(
    "name",
    ["Message-ID", "date", "FROM", "To", "Cc", "Bcc", "x-dialer-attempt", "Content-Type"],
)
def test_extra_headers_cannot_replace_the_channels_own(name: str) -> None:
    with pytest.raises(ValueError, match="set by the channel"):
        build_message(message(headers={name: "forged"}), "<id@x>", DATE)


@pytest.mark.parametrize("name", ["X Evil", "X-Evil:", "X-Evil\r\nBcc", "", "X-Ünïcode"])
def test_a_malformed_header_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        build_message(message(headers={name: "v"}), "<id@x>", DATE)


INJECTION = "x\r\nBcc: everyone@example.org"


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": INJECTION},
        {"subject": "x\nBcc: everyone@example.org"},
        {"subject": "x\rBcc: everyone@example.org"},
        {"sender_name": INJECTION},
        {"to": "lead@example.org\r\nBcc: everyone@example.org"},
        {"reply_to": INJECTION},
        {"unsubscribe_url": "https://dialer.test/u/1>\r\nBcc: everyone@example.org"},
        {"headers": {"X-Evil": INJECTION}},
        {"headers": {"X-Evil": "Zoë\nBcc: everyone@example.org"}},
    ],
)
def test_cr_or_lf_in_a_header_value_cannot_add_a_header(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        build_message(message(**fields), "<id@x>", DATE)


def test_a_body_cannot_add_a_header() -> None:
    """The body starts after the blank line whatever it holds."""
    raw = build_message(message(body="\r\nBcc: everyone@example.org\n"), "<id@x>", DATE)
    mail = parse(raw)
    assert mail["Bcc"] is None
    assert content(mail) == "\nBcc: everyone@example.org\n"


def test_a_non_ascii_address_is_utf8_and_asks_for_smtputf8() -> None:
    msg = message(to="zoë@example.org")
    assert needs_smtputf8(msg) and not needs_smtputf8(message())
    raw = build_message(msg, "<id@x>", DATE)
    assert parse(raw)["To"] == "zoë@example.org"
