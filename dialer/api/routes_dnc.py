"""Do-not-call routes: add or import numbers, page through the list, take a number off.

POST takes JSON `{"phones": [...], "reason"?}` or `text/csv` with a header row that has a
`phone` column (other columns are ignored; `?reason=` gives the reason). Numbers are
normalised to E.164 (read as US numbers without a `+`); bad ones are reported by row (JSON:
1-based index; CSV: line in the file, the header is line 1) and the good ones kept. The list
is checked at claim time: a listed lead is stopped with reason `dnc`, never dialled.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import Field

from dialer.api.auth import READERS, STAFF, requires
from dialer.api.csv_body import CsvReader, bad_body, body_kind, decode
from dialer.api.docs import doc, reply
from dialer.api.errors import parse_import, query_int
from dialer.api.guard import IMPORT_BODY, body_limit
from dialer.api.keys import RUNTIME
from dialer.api.schemas import In, Out
from dialer.api.schemas_in import RejectedRow
from dialer.errors import invalid
from dialer.usecases.dnc import MAX_DNC_IMPORT, DncOps, DncResult

routes = web.RouteTableDef()

_CURSOR = re.compile(r"[0-9]{1,19}")  # the digits of the last number of a page


class DncIn(In):
    phones: list[Any] = Field(max_length=MAX_DNC_IMPORT, description="numbers, E.164 or US")
    reason: str | None = Field(default=None, max_length=500)


class DncAddOut(Out):
    added: int = Field(description="numbers newly listed (already listed ones are not counted)")
    rejected: list[RejectedRow]


class DncOut(Out):
    phone: str
    reason: str | None
    added_at: datetime


class DncPage(Out):
    items: list[DncOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


def _iso(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def ops(request: web.Request) -> DncOps:
    return request.app[RUNTIME].service.dnc


def csv_phones(text: str) -> tuple[list[str], list[int]]:
    """The `phone` cells of a CSV with a header row, and the line each starts on."""
    reader = CsvReader(text)
    phones: list[str] = []
    lines: list[int] = []
    names = [re.sub(r"[\s-]+", "_", c.strip().lower()) for c in reader.header()]
    if "phone" not in names:
        raise bad_body("no `phone` column: line 1 must name the columns")
    column = names.index("phone")
    for line, cells in reader.records():
        if len(phones) >= MAX_DNC_IMPORT:
            raise bad_body(f"at most {MAX_DNC_IMPORT} numbers per import")
        phones.append(cells[column] if column < len(cells) else "")
        lines.append(line)
    return phones, lines


async def _import_csv(request: web.Request) -> DncResult:
    phones, lines = csv_phones(decode(await request.read(), request.charset))
    reason = request.query.get("reason")
    if reason is not None and len(reason) > 500:
        raise invalid("reason", "at most 500 characters")
    result = await ops(request).add(phones, reason=reason, first_row=0)
    for rejected in result.rejected:
        rejected["row"] = lines[rejected["row"]]
    return result


async def _import_json(request: web.Request) -> DncResult:
    """Numbers the input boundary refuses are rejected by row; the others are listed."""
    body, refused = await parse_import(request, DncIn, "phones")
    kept = [i for i in range(len(body.phones)) if i not in refused]
    result = await ops(request).add([body.phones[i] for i in kept], reason=body.reason, first_row=0)
    for rejected in result.rejected:
        rejected["row"] = kept[rejected["row"]] + 1
    result.rejected.extend({"row": i + 1, "errors": errors} for i, errors in refused.items())
    result.rejected.sort(key=lambda r: int(r["row"]))
    return result


@routes.post("/api/v1/dnc")
@requires(*STAFF)
@body_limit(IMPORT_BODY)
@doc(
    "Add numbers to the do-not-call list: JSON {phones, reason?} or text/csv with a phone "
    "column; bad numbers are reported by row and the good ones kept",
    body=DncIn,
    response=DncAddOut,
    query={"reason": "string"},
    content_types=("application/json", "text/csv"),
    errors=(400, 401, 403, 413, 415, 422),
)
async def add(request: web.Request) -> web.Response:
    if body_kind(request) == "json":
        result = await _import_json(request)
    else:
        result = await _import_csv(request)
    return reply(DncAddOut.model_validate({"added": result.added, "rejected": result.rejected}))


@routes.get("/api/v1/dnc")
@requires(*READERS)
@doc(
    "The do-not-call list in number order, a page at a time",
    response=DncPage,
    query={"limit": "integer", "cursor": "string"},
    errors=(401, 403, 422),
)
async def page(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, lo=1, hi=1000)
    cursor = request.query.get("cursor", "")
    if cursor and not _CURSOR.fullmatch(cursor):
        raise invalid("cursor", "not a cursor from this API (use next_cursor)")
    items, next_cursor = await ops(request).page(
        limit=limit, cursor=f"+{cursor}" if cursor else None
    )
    return reply(
        DncPage(
            items=[
                DncOut(phone=d.phone, reason=d.reason, added_at=_iso(d.added_at)) for d in items
            ],
            # Digits only: a `+` in a query string reads as a space.
            next_cursor=next_cursor.lstrip("+") if next_cursor else None,
        )
    )


@routes.delete("/api/v1/dnc/{phone}")
@requires(*STAFF)
@doc("Take a number off the do-not-call list", status=204, errors=(401, 403, 404))
async def remove(request: web.Request) -> web.Response:
    await ops(request).remove(request.match_info["phone"])
    return web.Response(status=204)
