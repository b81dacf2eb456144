"""Lead routes (docs/api.md §5): import (JSON or CSV), paging, one lead, lead-level control.

A CSV import needs a header row naming the columns; `phone`, `email`, `first_name`,
`last_name`, `company` and `timezone` are the lead's fields (matched case-insensitively,
spaces and hyphens read as `_`), any other named column becomes a `custom` field (as text),
and columns without a name are ignored. Rows are numbered by their first line in the file
(the header is line 1), as a spreadsheet shows them; JSON rows by their 1-based index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dialer.api.auth import READERS, STAFF, principal, requires
from dialer.api.csv_body import CsvReader, bad_body, body_kind, decode
from dialer.api.docs import doc, reply
from dialer.api.errors import ApiError, parse, parse_import, query_int
from dialer.api.guard import IMPORT_BODY, body_limit
from dialer.api.keys import RUNTIME
from dialer.api.schemas import AttemptOut, LeadDetail, LeadOut, PositionOut
from dialer.api.schemas_in import (
    ImportOut,
    LeadList,
    LeadPage,
    LeadPauseIn,
    LeadsIn,
    LeadStopIn,
    QualifyIn,
)
from dialer.errors import invalid
from dialer.usecases.leads import MAX_IMPORT, ImportResult, LeadOps
from dialer.usecases.limits import DIGITS, digits_id

routes = web.RouteTableDef()

FIELDS = frozenset({"phone", "email", "first_name", "last_name", "company", "timezone"})


def ops(request: web.Request) -> LeadOps:
    return request.app[RUNTIME].service.leads


def _lead_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    lead_id = digits_id(raw)  # lead ids are 64-bit integers, written in ASCII digits
    if lead_id is None:
        raise ApiError(404, "not_found", f"no lead {raw!r}", {"id": raw})
    return lead_id


# -- CSV -------------------------------------------------------------------------------------
@dataclass(slots=True)
class CsvRows:
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line each of `rows` starts on
    rejected: list[dict[str, Any]] = field(default_factory=list)  # rows with a broken shape


def _column(name: str) -> str:
    key = re.sub(r"[\s-]+", "_", name.strip().lower())
    return key if key in FIELDS else name.strip()


def _header(cells: list[str]) -> list[str]:
    names = [_column(c) for c in cells]
    seen: set[str] = set()
    for name in filter(None, names):
        if name in seen:
            raise bad_body(f"column {name!r} appears twice in the header")
        seen.add(name)
    if not seen & {"phone", "email"}:
        raise bad_body("no header row: line 1 must name the columns, phone or email among them")
    return names


def parse_csv(text: str) -> CsvRows:
    """Rows of a CSV with a header row (see the module's docstring for the columns)."""
    reader = CsvReader(text)
    out = CsvRows()
    names = _header(reader.header())
    for line, cells in reader.records():
        if len(out.rows) >= MAX_IMPORT:
            raise bad_body(f"at most {MAX_IMPORT} leads per import; split the file")
        if len(cells) > len(names):
            message = f"{len(cells)} values for {len(names)} columns"
            out.rejected.append({"row": line, "errors": [{"field": "row", "message": message}]})
            continue
        row: dict[str, Any] = {}
        custom: dict[str, str] = {}
        for name, value in zip(names, cells, strict=False):  # short rows: blanks at the end
            if not name or not value.strip():
                continue
            if name in FIELDS:
                row[name] = value
            else:
                custom[name] = value.strip()
        if custom:
            row["custom"] = custom
        out.rows.append(row)
        out.lines.append(line)
    return out


async def _import_json(request: web.Request, campaign_id: str) -> ImportResult:
    """A JSON import: rows the input boundary refuses (a NUL in a name, a number out of
    range) are rejected by number like any other bad row; the others are imported."""
    body, refused = await parse_import(request, LeadsIn, "leads")
    kept = [i for i in range(len(body.leads)) if i not in refused]
    result = await ops(request).add(campaign_id, [body.leads[i] for i in kept], first_row=0)
    for rejected in result.rejected:
        rejected["row"] = kept[rejected["row"]] + 1
    result.rejected.extend({"row": i + 1, "errors": errors} for i, errors in refused.items())
    return result


async def _import_csv(request: web.Request, campaign_id: str) -> ImportResult:
    parsed = parse_csv(decode(await request.read(), request.charset))
    result = await ops(request).add(campaign_id, parsed.rows, first_row=0)
    for rejected in result.rejected:
        rejected["row"] = parsed.lines[rejected["row"]]
    result.rejected.extend(parsed.rejected)
    return result


# -- routes ----------------------------------------------------------------------------------
@routes.post("/api/v1/campaigns/{id}/leads")
@requires(*STAFF)
@body_limit(IMPORT_BODY)
@doc(
    "Add leads: JSON {leads: [...]} or text/csv with a header row; bad rows are reported "
    "by number and the good rows kept",
    body=LeadsIn,
    response=ImportOut,
    content_types=("application/json", "text/csv"),
    errors=(400, 401, 403, 404, 409, 413, 415, 422),
)
async def add(request: web.Request) -> web.Response:
    campaign_id = request.match_info["id"]
    if body_kind(request) == "json":
        result = await _import_json(request, campaign_id)
    else:
        result = await _import_csv(request, campaign_id)
    rejected = sorted(result.rejected, key=lambda r: int(r["row"]))
    return reply(ImportOut.model_validate({"accepted": result.accepted, "rejected": rejected}))


@routes.get("/api/v1/campaigns/{id}/leads")
@requires(*READERS)
@doc(
    "A campaign's leads, oldest first, a page at a time",
    response=LeadPage,
    query={"status": "string", "limit": "integer", "cursor": "string"},
)
async def page(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, lo=1, hi=1000)
    cursor = request.query.get("cursor", "")
    if cursor and not DIGITS.fullmatch(cursor):
        raise invalid(
            "cursor",
            "not a cursor from this API",
            summary="cursor is the next_cursor of a previous page",
        )
    items, next_id = await ops(request).page(
        request.match_info["id"],
        status=request.query.get("status"),
        limit=limit,
        cursor=int(cursor or 0),
    )
    return reply(
        LeadPage(
            items=[LeadOut.of(x) for x in items],
            next_cursor=None if next_id is None else str(next_id),
        )
    )


@routes.get("/api/v1/leads/{id}")
@requires(*READERS)
@doc("One lead, with its position (next step, when due) and attempts", response=LeadDetail)
async def get(request: web.Request) -> web.Response:
    lead, attempts = await ops(request).get(_lead_id(request))
    position = await ops(request).position(lead)
    detail = {
        **LeadOut.of(lead).model_dump(),
        "position": PositionOut.of(position),
        "attempts": [AttemptOut.of(a) for a in attempts],
    }
    return reply(LeadDetail.model_validate(detail))


@routes.post("/api/v1/leads/{id}/pause")
@requires(*STAFF)
@doc(
    "Pause an in-progress lead, until a time if given (then it resumes by itself)",
    body=LeadPauseIn,
    response=LeadOut,
)
async def pause(request: web.Request) -> web.Response:
    lead_id = _lead_id(request)
    body = await parse(request, LeadPauseIn, optional=True)
    lead = await ops(request).pause(
        lead_id,
        actor=principal(request).actor,
        reason=body.reason,
        until=body.until.timestamp() if body.until else None,
    )
    return reply(LeadOut.of(lead))


@routes.post("/api/v1/leads/{id}/resume")
@requires(*STAFF)
@doc("Resume a paused lead at its step, with the delay it had left", response=LeadOut)
async def resume(request: web.Request) -> web.Response:
    lead = await ops(request).resume(_lead_id(request), actor=principal(request).actor)
    return reply(LeadOut.of(lead))


@routes.post("/api/v1/leads/{id}/stop")
@requires(*STAFF)
@doc("Stop a lead for good", body=LeadStopIn, response=LeadOut)
async def stop(request: web.Request) -> web.Response:
    lead_id = _lead_id(request)
    body = await parse(request, LeadStopIn, optional=True)
    lead = await ops(request).stop(lead_id, actor=principal(request).actor, reason=body.reason)
    return reply(LeadOut.of(lead))


@routes.post("/api/v1/leads/{id}/skip")
@requires(*STAFF)
@doc("Skip a pending lead", response=LeadOut)
async def skip(request: web.Request) -> web.Response:
    lead = await ops(request).skip(_lead_id(request), actor=principal(request).actor)
    return reply(LeadOut.of(lead))


@routes.post("/api/v1/leads/{id}/qualify")
@requires(*STAFF)
@doc(
    'Stop the lead as qualified; with {"scope": "company"} every open lead of its company',
    body=QualifyIn,
    response=LeadList,
)
async def qualify(request: web.Request) -> web.Response:
    lead_id = _lead_id(request)
    body = await parse(request, QualifyIn, optional=True)
    stopped = await ops(request).qualify(lead_id, actor=principal(request).actor, scope=body.scope)
    return reply(LeadList(items=[LeadOut.of(x) for x in stopped]))
