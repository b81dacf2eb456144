"""One error shape for every failure (docs/api.md §3): {"error": {"code", "message", "details"}}.

A handler that fails because the database cannot be reached answers 503 `unavailable` with
`Retry-After`, never 500, and logs one warning line, no traceback (docs/architecture.md §15.1).
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from dialer.errors import ServiceError, ValidationFailed, field_errors, invalid
from dialer.store.db import describe, unavailable

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
RETRY_AFTER_SECONDS = 5  # a pooled connection is re-tried on the next request anyway


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


async def parse(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The JSON body as `model`; 400 for malformed JSON, 422 naming each bad field."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return model()
        raise invalid("body", "required", summary="a JSON body is required")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("invalid input", field_errors(exc, whole="body")) from None


def query_int(request: web.Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "not an integer", summary=f"{name} must be an integer") from None
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
    except Exception as exc:
        where = {"path": request.path, "method": request.method}
        if unavailable(exc):
            log.warning("request.unavailable", extra={**where, "error": describe(exc)})
            return unavailable_response()
        log.exception("request.failed", extra=where)
        return error_response(500, "internal", "internal error")
