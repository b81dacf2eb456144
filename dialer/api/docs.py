"""Route documentation for the OpenAPI document, kept next to each handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


@dataclass(frozen=True, slots=True)
class Doc:
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    other: dict[int, type[BaseModel] | None] = field(default_factory=dict)  # extra statuses
    query: dict[str, str] = field(default_factory=dict)  # name -> "string" | "integer"
    content_types: tuple[str, ...] = ("application/json",)
    produces: str = "application/json"
    errors: tuple[int, ...] = (400, 401, 403, 404, 409, 422)


def doc(summary: str, **kwargs: Any) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        handler.__dict__["dialer_doc"] = Doc(summary, **kwargs)
        return handler

    return mark


def doc_of(handler: Any) -> Doc | None:
    d: Doc | None = getattr(getattr(handler, "__func__", handler), "dialer_doc", None)
    return d


def reply(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)
