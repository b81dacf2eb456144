"""One error shape for every failure (docs/api.md §3): {"error": {"code", "message", "details"}}.

A handler that fails because the database cannot be reached answers 503 `unavailable` with
`Retry-After`, never 500, and logs one warning line, no traceback (docs/architecture.md §15.1).
"""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from dialer.api.inputs import BadJson, Problems, decode_json, problems, refuse
from dialer.bus.base import BusUnavailable
from dialer.errors import ServiceError, ValidationFailed, field_errors, invalid
from dialer.store.db import describe, unavailable

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
RETRY_AFTER_SECONDS = 5  # a pooled connection is re-tried on the next request anyway
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "details": details or {}}}, status=status
    )


def unavailable_response(message: str = "the database is unavailable; retry later") -> web.Response:
    """503 `unavailable` with `Retry-After` (docs/api.md §3)."""
    response = error_response(503, "unavailable", message)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


async def read_json(request: web.Request, *, rows: str | None = None) -> tuple[Any, Problems]:
    """The body through the input boundary (api/inputs.py): 400 for what is not JSON, 422
    naming each field that breaks the limits; with `rows`, the problems of each row of that
    array are returned for the import to reject that row only. None for an empty body."""
    raw = await request.read()
    if not raw.strip():
        return None, Problems()
    try:
        data = decode_json(raw)
    except BadJson as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
    found = problems(data, rows=rows)
    if found.body:
        raise refuse(found.body)
    return data, found


async def read_object(request: web.Request) -> dict[str, Any]:
    """A JSON object body through the input boundary."""
    data, _ = await read_json(request)
    if not isinstance(data, dict):
        raise invalid("body", "expected an object", summary="the body must be a JSON object")
    return data


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("invalid input", field_errors(exc, whole="body")) from None


async def parse(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The JSON body as `model`; 400 for malformed JSON, 422 naming each bad field."""
    data, _ = await read_json(request)
    if data is None:
        if optional:
            return model()
        raise invalid("body", "required", summary="a JSON body is required")
    return _validate(model, data)


async def parse_import(
    request: web.Request, model: type[M], rows: str
) -> tuple[M, dict[int, list[dict[str, str]]]]:
    """An import body as `model`, with the boundary's problems of each row of `rows`
    (0-based): those rows are rejected by number, the others imported."""
    data, found = await read_json(request, rows=rows)
    if data is None:
        raise invalid("body", "required", summary="a JSON body is required")
    return _validate(model, data), found.rows


def query_int(request: web.Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):  # ASCII digits only: int() also reads '١٢' and '1_0'
        raise invalid(name, "not an integer", summary=f"{name} must be an integer")
    value = int(raw)
    if not lo <= value <= hi:
        raise invalid(name, f"out of range {lo}..{hi}", summary=f"{name} must be in {lo}..{hi}")
    return value


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except ServiceError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "http_error"
        )
        return error_response(exc.status, code, exc.reason)
    except BusUnavailable as exc:  # the change is written; its fan-out is not confirmed
        where = {"path": request.path, "method": request.method}
        log.warning("request.bus_unavailable", extra={**where, "error": str(exc)})
        return unavailable_response("the control bus is unavailable; retry later")
    except Exception as exc:
        where = {"path": request.path, "method": request.method}
        if unavailable(exc):
            log.warning("request.unavailable", extra={**where, "error": describe(exc)})
            return unavailable_response()
        log.exception("request.failed", extra=where)
        return error_response(500, "internal", "internal error")
