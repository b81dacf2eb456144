"""The input boundary (docs/api.md §1, docs/architecture.md §13): JSON bodies, path
parameters and query strings are checked here, before a handler or a database sees them.

A JSON body is decoded as strict UTF-8 with a nesting limit, integers of at most 19 digits
and finite numbers only; then every string (keys too) is checked for control characters
and lone surrogates. A problem is a 422 naming the field, the same on SQLite and PostgreSQL
(PostgreSQL refuses a NUL byte that SQLite would store). In an import, a problem inside a
row rejects that row only (reported by its number) and the good rows are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dialer.errors import ValidationFailed
from dialer.usecases import limits
from dialer.usecases.limits import MAX_DEPTH, field_name, json_problems, text_problem

MAX_ERRORS = 20  # field errors listed in one answer
MAX_QUERY_VALUE = 2000
MAX_PATH_VALUE = 300


class BadJson(ValueError):
    """The body is not JSON we read (400 `bad_json`)."""


def decode_json(raw: bytes) -> Any:
    """`raw` as JSON: numbers the limits refuse stay in place as `limits.Rejected` markers,
    so the check can name their field."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson(f"not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(
            text,
            parse_int=limits.parse_int,
            parse_float=limits.parse_float,
            parse_constant=limits.parse_constant,
        )
    except json.JSONDecodeError as exc:
        raise BadJson(str(exc)) from None
    except RecursionError:
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels") from None


Errors = list[dict[str, str]]


@dataclass(slots=True)
class Problems:
    body: Errors = field(default_factory=list)  # refuse the whole request
    rows: dict[int, Errors] = field(default_factory=dict)  # 0-based row -> its errors


def problems(value: Any, *, rows: str | None = None) -> Problems:
    """What breaks the limits in a decoded body; with `rows`, the problems inside each item
    of the top-level `rows` array are that row's (fields named inside the row)."""
    found = Problems()
    if rows is not None and isinstance(value, dict) and isinstance(value.get(rows), list):
        rest = {k: v for k, v in value.items() if k != rows}
        for i, row in enumerate(value[rows]):
            errors = [
                {"field": field_name(path, "row"), "message": why}
                for path, why in json_problems(row, depth=2)
            ]
            if errors:
                found.rows[i] = errors[:MAX_ERRORS]
        value = rest
    for path, why in json_problems(value):
        if len(found.body) >= MAX_ERRORS:
            break
        found.body.append({"field": field_name(path), "message": why})
    return found


def refuse(errors: Errors) -> ValidationFailed:
    first = errors[0]
    return ValidationFailed(f"{first['field']}: {first['message']}", errors)


# -- path parameters and query strings -------------------------------------------------------
def _path_problem(name: str, value: str) -> bool:
    """Whether a path parameter cannot name anything: an id must look like one."""
    if len(value) > MAX_PATH_VALUE or text_problem(value) is not None:
        return True
    if name == "id":
        return not limits.is_id(value)
    return False


@web.middleware
async def input_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """On /api/: path parameters that cannot be an id are a 404 (nothing has that name); a
    query parameter with control characters is a 422 naming it. Runs after authentication,
    so an anonymous caller learns nothing from it. The pages and webhooks outside /api/
    check their own (an HTML 404, a callback answered 200 and ignored)."""
    if not request.path.startswith("/api/"):
        response: web.StreamResponse = await handler(request)
        return response
    for name, value in request.match_info.items():
        if _path_problem(name, value):
            raise web.HTTPNotFound()
    for key, value in request.query.items():
        problem = text_problem(key, max_length=100) or text_problem(
            value, max_length=MAX_QUERY_VALUE
        )
        if problem:
            raise ValidationFailed(
                f"query parameter {key!r}: {problem}", [{"field": key, "message": problem}]
            )
    api_response: web.StreamResponse = await handler(request)
    return api_response
