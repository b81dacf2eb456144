"""Typed errors of the service layer; the API maps each to its HTTP status."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ServiceError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class InvalidState(ServiceError):
    """Wrong state for the request (409); details carry the current state."""

    code = "invalid_state"
    status = 409

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message, {"state": state})
        self.state = state


class ValidationFailed(ServiceError):
    """Bad input (422); details name the fields."""

    code = "invalid_input"
    status = 422

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message, {"errors": errors})
        self.errors = errors


def field_errors(
    exc: ValidationError, *, prefix: str = "", whole: str = ""
) -> list[dict[str, Any]]:
    """Pydantic's errors as `{"field", "message"}` items, the shape every 422 carries.

    A field is its dotted location after `prefix`; an error about the whole input (no
    location) is named `prefix`, or `whole` when there is no prefix."""
    return [
        {
            "field": prefix + ".".join(str(p) for p in err["loc"])
            if err["loc"]
            else prefix or whole,
            "message": err["msg"],
        }
        for err in exc.errors()
    ]


def invalid(field: str, message: str, *, summary: str | None = None) -> ValidationFailed:
    """A 422 about one field: `summary` (the message by default) naming `field`."""
    return ValidationFailed(summary or message, [{"field": field, "message": message}])


class VersionMismatch(ServiceError):
    code = "version_mismatch"
    status = 412

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"campaign is at version {actual}, not {expected}", {"version": actual})


class Conflict(ServiceError):
    code = "conflict"
    status = 409
