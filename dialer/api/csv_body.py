"""Request bodies that are JSON or CSV: the content-type choice and one CSV reader.

A CSV has a header row naming the columns; records are numbered by the line they start on
in the file (the header is line 1), as a spreadsheet shows them.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import Literal

from aiohttp import web

from dialer.api.errors import ApiError
from dialer.errors import ValidationFailed, invalid

CSV_TYPES = frozenset({"text/csv", "application/csv"})


def body_kind(request: web.Request) -> Literal["json", "csv"]:
    """Whether the body is JSON or CSV; 415 for anything else."""
    content_type = request.content_type
    if content_type == "application/json" or content_type.endswith("+json"):
        return "json"
    if content_type in CSV_TYPES:
        return "csv"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"send application/json or text/csv, not {content_type}",
        {"content_type": content_type},
    )


def bad_body(message: str) -> ValidationFailed:
    return invalid("body", message)


# Codecs Python has that are not a charset a document comes in: they turn escapes into any
# character (a lone surrogate) or are for host names.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})


def decode(raw: bytes, charset: str | None) -> str:
    """The body as text: UTF-8 unless the Content-Type names a charset; a BOM is dropped."""
    encoding = (charset or "utf-8").lower()
    if encoding in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    try:
        if codecs.lookup(encoding).name in _NOT_CHARSETS:
            raise LookupError(encoding)
        return raw.decode(encoding)
    except LookupError:
        raise ApiError(
            415, "unsupported_media_type", f"unknown charset {charset!r}", {"charset": charset}
        ) from None
    except UnicodeDecodeError as exc:
        raise bad_body(f"not {charset or 'UTF-8'} text (byte {exc.start})") from None


class CsvReader:
    """A CSV read as a stream (a quoted value may span lines); a malformed one is a 422
    naming the line."""

    def __init__(self, text: str) -> None:
        self._reader = csv.reader(io.StringIO(text, newline=""))

    def header(self) -> list[str]:
        """The first record with a value: the column names."""
        try:
            for cells in self._reader:
                if any(c.strip() for c in cells):
                    return cells
        except csv.Error as exc:
            raise self._broken(exc) from None
        raise bad_body("the CSV is empty")

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """Each record after the header with a value, with the line it starts on."""
        end = self._reader.line_num
        try:
            for cells in self._reader:
                line, end = end + 1, self._reader.line_num
                if any(c.strip() for c in cells):  # blank lines carry nothing
                    yield line, cells
        except csv.Error as exc:
            raise self._broken(exc) from None

    def _broken(self, exc: csv.Error) -> ValidationFailed:
        return bad_body(f"line {self._reader.line_num}: {exc}")
