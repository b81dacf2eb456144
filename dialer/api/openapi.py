"""The OpenAPI 3.1 document, built from the router and each handler's @doc (docs/api.md).

Nothing here is written by hand per route: paths and methods come from `app.router`,
summaries, bodies, responses and query parameters from `dialer.api.docs.Doc`, and the
security of each operation from `dialer.api.auth` (`@public` / `@requires`). A route
without @doc (the health probes) is still listed, with a generic success response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaValue, models_json_schema

from dialer.api.auth import SESSION_COOKIE, is_public, roles_of
from dialer.api.docs import Doc, doc_of
from dialer.api.schemas import ErrorOut

OPENAPI_PATH = "/api/v1/openapi.json"
REF_TEMPLATE = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (`dialer token create`) or DIALER_BOOTSTRAP_TOKEN.",
    },
    "cookieAuth": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard session; state-changing requests also need the "
        "session's `X-CSRF-Token` header.",
    },
}
# Bodies that are not JSON travel as text (a CSV lead import, an SSE stream, Prometheus).
TEXT_SCHEMA: dict[str, Any] = {"type": "string"}
Mode = Literal["validation", "serialization"]
Refs = dict[tuple[Any, Mode], JsonSchemaValue]  # (model, mode) -> {"$ref": ...}


@dataclass(frozen=True, slots=True)
class Operation:
    method: str  # upper case, as in the router
    path: str  # OpenAPI form: /api/v1/campaigns/{id}
    route: web.AbstractRoute

    @property
    def doc(self) -> Doc | None:
        return doc_of(self.route.handler)

    @property
    def secured(self) -> bool:
        return self.path.startswith("/api/") and not is_public(self.route.handler)


def path_of(resource: web.AbstractResource) -> str:
    """The OpenAPI path of a router resource: `{name:regex}` becomes `{name}`."""
    if isinstance(resource, web.StaticResource):
        return resource.canonical.rstrip("/") + "/{filename}"
    return PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", resource.canonical)


def operations(app: web.Application) -> list[Operation]:
    """Every (method, path) the router serves, without aiohttp's implicit HEAD twins."""
    found: dict[tuple[str, str], Operation] = {}
    for route in app.router.routes():
        if route.resource is None or route.method in ("HEAD", "*"):
            continue
        op = Operation(route.method, path_of(route.resource), route)
        found.setdefault((op.method, op.path), op)
    return list(found.values())


def _package_version() -> str:
    try:
        return version("dialer")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


class _Schemas:
    """Collects pydantic models and renders them all at once into components/schemas, so
    names are unique across models and each model's $defs are hoisted."""

    def __init__(self) -> None:
        self.wanted: set[tuple[type[BaseModel], Mode]] = {(ErrorOut, "serialization")}

    def add(self, model: type[BaseModel] | None, mode: Mode) -> None:
        if model is not None:
            self.wanted.add((model, mode))

    def render(self) -> tuple[Refs, dict[str, Any]]:
        ordered = sorted(self.wanted, key=lambda w: (w[0].__module__, w[0].__qualname__, w[1]))
        refs, top = models_json_schema(ordered, ref_template=REF_TEMPLATE)
        return refs, dict(top.get("$defs", {}))


def _requires_body(model: type[BaseModel]) -> bool:
    """An empty body is fine when every field has a default (handlers parse optionally)."""
    return any(f.is_required() for f in model.model_fields.values())


class _Builder:
    def __init__(self, refs: Refs) -> None:
        self.refs = refs

    def ref(self, model: type[BaseModel], mode: Mode) -> JsonSchemaValue:
        return self.refs[(model, mode)]

    def content(self, media: str, model: type[BaseModel] | None) -> dict[str, Any]:
        if media == "application/json":
            return {media: {"schema": self.ref(model, "serialization")} if model else {}}
        return {media: {"schema": TEXT_SCHEMA}}

    def response(self, status: int, model: type[BaseModel] | None, media: str) -> dict[str, Any]:
        out: dict[str, Any] = {"description": _phrase(status)}
        if status not in (204, 304):
            out["content"] = self.content(media, model)
        return out

    def responses(self, op: Operation, d: Doc) -> dict[str, Any]:
        out = {str(d.status): self.response(d.status, d.response, d.produces)}
        for status, model in d.other.items():
            out[str(status)] = self.response(status, model, d.produces)
        errors = set(d.errors) | ({401, 403} if op.secured else set())
        if d.body is not None:
            errors.add(413)  # every body has a size limit (api/guard.py)
        for status in sorted(errors - {d.status, *d.other}):
            out[str(status)] = {
                "description": _phrase(status),
                "content": {"application/json": {"schema": self.ref(ErrorOut, "serialization")}},
            }
        return out

    def request_body(self, d: Doc) -> dict[str, Any] | None:
        if d.body is None:
            return None
        content: dict[str, Any] = {}
        for media in d.content_types:
            schema = self.ref(d.body, "validation") if media == "application/json" else TEXT_SCHEMA
            content[media] = {"schema": schema}
        return {"required": _requires_body(d.body), "content": content}

    def operation(self, op: Operation) -> dict[str, Any]:
        d = op.doc
        handler = op.route.handler
        module = handler.__module__.rsplit(".", 1)[-1].removeprefix("routes_")
        out: dict[str, Any] = {"tags": [module]}
        params = _parameters(op, d)
        if params:
            out["parameters"] = params
        if d is None:
            text = (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            out["summary"] = text
            out["responses"] = {"200": {"description": "OK"}}
        else:
            out["summary"] = d.summary
            body = self.request_body(d)
            if body is not None:
                out["requestBody"] = body
            out["responses"] = self.responses(op, d)
        roles = roles_of(handler)
        if op.secured:
            out["security"] = SECURED
            out["x-dialer-roles"] = sorted(r.value for r in roles or ())
        else:
            out["security"] = []
        return out


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _parameters(op: Operation, d: Doc | None) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(op.path)
    ]
    for name, kind in (d.query if d else {}).items():
        params.append({"name": name, "in": "query", "required": False, "schema": {"type": kind}})
    return params


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route `app` serves."""
    ops = sorted(operations(app), key=lambda o: (o.path, METHODS.index(o.method.lower())))
    schemas = _Schemas()
    for op in ops:
        d = op.doc
        if d is not None:
            schemas.add(d.body, "validation")
            schemas.add(d.response, "serialization")
            for model in d.other.values():
                schemas.add(model, "serialization")
    refs, components = schemas.render()
    builder = _Builder(refs)
    paths: dict[str, dict[str, Any]] = {}
    used_ids: set[str] = set()
    for op in ops:
        item = builder.operation(op)
        item["operationId"] = _operation_id(op, used_ids)
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dialer",
            "version": _package_version(),
            "description": "Control plane for outbound voice and email campaigns.",
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation_id(op: Operation, used: set[str]) -> str:
    handler = op.route.handler
    module = handler.__module__.rsplit(".", 1)[-1].removeprefix("routes_")
    base = f"{module}.{handler.__name__.rstrip('_')}"
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}_{n}", n + 1
    used.add(candidate)
    return candidate
