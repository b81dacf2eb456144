"""Lead routes (docs/api.md §5): import (JSON or CSV), paging, one lead, lead-level control.

A CSV import needs a header row naming the columns; `phone`, `email`, `first_name`,
`last_name`, `company` and `timezone` are the lead's fields (matched case-insensitively,
spaces and hyphens read as `_`), any other named column becomes a `custom` field (as text),
and columns without a name are ignored. Rows are numbered by their first line in the file
(the header is line 1), as a spreadsheet shows them; JSON rows by their 1-based index.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    LeadActionsIn,
    LeadActionsOut,
    LeadList,
    LeadPage,
    LeadPauseIn,
    LeadsIn,
    LeadStopIn,
    QualifyIn,
)
from dialer.errors import invalid
from dialer.store.models import Lead
from dialer.usecases.leads import MAX_IMPORT, ImportResult, LeadOps, Position
from dialer.usecases.limits import DIGITS, digits_id

routes = web.RouteTableDef()

FIELDS = frozenset({"phone", "email", "first_name", "last_name", "company", "timezone"})


def ops(request: web.Request) -> LeadOps:
    return request.app[RUNTIME].service.leads


def out(request: web.Request, lead: Lead) -> LeadOut:
    """The lead as the API shows it, `stale` by DIALER_STALE_PAUSE_DAYS."""
    return LeadOut.of(lead, stale_before=ops(request).stale_before())


# The filters of the list, the export and a bulk action (docs/api.md §5).
FILTER_QUERY = {
    "status": "string",
    "q": "string",
    "stale": "boolean",
    "pause_reason": "string",
    "step": "integer",
    "company": "string",
}


def query_filter(request: web.Request) -> dict[str, Any]:
    """The filter fields given in the query (checked by the use case, which names a bad
    one); `stale` is true or false, `step` an integer."""
    out: dict[str, Any] = {
        k: request.query[k]
        for k in ("status", "q", "pause_reason", "company")
        if k in request.query
    }
    if "stale" in request.query:
        stale = request.query["stale"]
        if stale not in ("true", "false"):
            raise invalid("stale", "true or false", summary="stale is true or false")
        out["stale"] = stale == "true"
    if "step" in request.query:
        out["step"] = query_int(request, "step", 0, lo=0, hi=1000)
    return out


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
    query={**FILTER_QUERY, "limit": "integer", "cursor": "string"},
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
        limit=limit,
        cursor=int(cursor or 0),
        filter=query_filter(request),
    )
    return reply(
        LeadPage(
            items=[out(request, x) for x in items],
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
        **out(request, lead).model_dump(),
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
    return reply(out(request, lead))


@routes.post("/api/v1/leads/{id}/resume")
@requires(*STAFF)
@doc("Resume a paused lead at its step, with the delay it had left", response=LeadOut)
async def resume(request: web.Request) -> web.Response:
    lead = await ops(request).resume(_lead_id(request), actor=principal(request).actor)
    return reply(out(request, lead))


@routes.post("/api/v1/leads/{id}/stop")
@requires(*STAFF)
@doc("Stop a lead for good", body=LeadStopIn, response=LeadOut)
async def stop(request: web.Request) -> web.Response:
    lead_id = _lead_id(request)
    body = await parse(request, LeadStopIn, optional=True)
    lead = await ops(request).stop(lead_id, actor=principal(request).actor, reason=body.reason)
    return reply(out(request, lead))


@routes.post("/api/v1/leads/{id}/skip")
@requires(*STAFF)
@doc("Skip a pending lead", response=LeadOut)
async def skip(request: web.Request) -> web.Response:
    lead = await ops(request).skip(_lead_id(request), actor=principal(request).actor)
    return reply(out(request, lead))


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
    return reply(LeadList(items=[out(request, x) for x in stopped]))


# -- bulk actions and export (docs/api.md §5) ------------------------------------------------
@routes.post("/api/v1/campaigns/{id}/leads/actions")
@requires(*STAFF)
@doc(
    "One action on every lead a filter selects, by the single-lead rules (only in-progress "
    "leads pause, only pending leads skip); resume with `at` reschedules; dry_run counts",
    body=LeadActionsIn,
    response=LeadActionsOut,
)
async def actions(request: web.Request) -> web.Response:
    body = await parse(request, LeadActionsIn)
    result = await ops(request).bulk(
        request.match_info["id"],
        body.action,
        body.filter,
        actor=principal(request).actor,
        reason=body.reason,
        until=body.until.timestamp() if body.until else None,
        at=body.at.timestamp() if body.at else None,
        dry_run=body.dry_run,
    )
    return reply(LeadActionsOut(matched=result.matched, changed=result.changed))


CSV_COLUMNS = (
    "id",
    "phone",
    "email",
    "first_name",
    "last_name",
    "company",
    "timezone",
    "status",
    "position",
    "next_channel",
    "tries",
    "stop_reason",
    "pause_reason",
    "paused_at",
    "stale",
    "created_at",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one that starts like a formula gets a `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # times: epoch seconds in the database
        value = datetime.fromtimestamp(value, UTC).isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def csv_rows(leads: Iterable[tuple[Lead, Position]], stale_before: float) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for lead, position in leads:
        stale = LeadOut.of(lead, stale_before=stale_before).stale
        row = (
            lead.id,
            lead.phone,
            lead.email,
            lead.first_name,
            lead.last_name,
            lead.company,
            lead.timezone,
            lead.status,
            lead.step,
            position.channel,
            lead.tries,
            lead.stop_reason,
            lead.pause_reason,
            lead.paused_at,
            stale,
            lead.created_at,
        )
        writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


@routes.get("/api/v1/campaigns/{id}/leads.csv")
@requires(*READERS)
@doc(
    "The campaign's leads as CSV (same filters as the list), with position and stop reason; "
    "cells that start with = + - @ get a leading '",
    query=FILTER_QUERY,
    produces="text/csv",
    errors=(401, 403, 404, 422),
)
async def export(request: web.Request) -> web.StreamResponse:
    campaign_id = request.match_info["id"]
    lead_ops = ops(request)
    batches = lead_ops.export(campaign_id, query_filter(request))
    first = await anext(batches, None)  # a bad filter or campaign is an error, not a stream
    stale_before = lead_ops.stale_before()
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{campaign_id}-leads.csv"',
        }
    )
    await resp.prepare(request)
    header = io.StringIO()
    csv.writer(header).writerow(CSV_COLUMNS)
    await resp.write(header.getvalue().encode())
    batch = first
    while batch is not None:
        positions = await lead_ops.positions(campaign_id, batch)
        await resp.write(csv_rows(zip(batch, positions, strict=True), stale_before).encode())
        batch = await anext(batches, None)
    await resp.write_eof()
    return resp
