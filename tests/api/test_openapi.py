"""GET /api/v1/openapi.json: every route is documented, and the document is valid OpenAPI."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from aiohttp import web
from schemathesis.core.result import Ok

from dialer.api.openapi import build_openapi
from tests.api.conftest import Api

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# The routes of docs/api.md (its tables and sections), which the document must agree with.
API_MD = """
GET /api/v1/workers
POST /api/v1/campaigns
GET /api/v1/campaigns
GET /api/v1/campaigns/{id}
PATCH /api/v1/campaigns/{id}
POST /api/v1/campaigns/{id}/start
POST /api/v1/campaigns/{id}/pause
POST /api/v1/campaigns/{id}/resume
POST /api/v1/campaigns/{id}/terminate
POST /api/v1/campaigns/{id}/archive
POST /api/v1/campaigns/pause-all
GET /api/v1/campaigns/{id}/stats
GET /api/v1/campaigns/{id}/events
POST /api/v1/campaigns/{id}/leads
GET /api/v1/campaigns/{id}/leads
GET /api/v1/leads/{id}
POST /api/v1/leads/{id}/pause
POST /api/v1/leads/{id}/resume
POST /api/v1/leads/{id}/stop
POST /api/v1/leads/{id}/skip
POST /api/v1/leads/{id}/qualify
POST /api/v1/agents
GET /api/v1/agents
POST /api/v1/agents/{id}/state
GET /api/v1/agents/{id}/queue
GET /api/v1/events
GET /api/v1/openapi.json
GET /healthz
GET /readyz
GET /metrics
"""


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route, read straight from the router (HEAD twins aside)."""
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.resource.canonical)
        if isinstance(route.resource, web.StaticResource):
            path = path.rstrip("/") + "/{filename}"
        out.add((route.method.lower(), path))
    return out


def document_operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield method, path, op


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


@pytest.fixture
async def document(api: Api) -> dict[str, Any]:
    resp = await api.client.get("/api/v1/openapi.json")  # public: no credentials
    assert resp.status == 200 and resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


async def test_served_document_is_the_built_one(api: Api, document: dict[str, Any]) -> None:
    assert document == build_openapi(api.client.app)
    assert document["openapi"].startswith("3.1")


async def test_every_route_is_documented_and_nothing_else(
    api: Api, document: dict[str, Any]
) -> None:
    routed = router_operations(api.client.app)
    documented = {(m, p) for m, p, _ in document_operations(document)}
    assert routed - documented == set(), "routes missing from the document"
    assert documented - routed == set(), "documented operations the router does not serve"


async def test_document_agrees_with_api_md(document: dict[str, Any]) -> None:
    documented = {(m, p) for m, p, _ in document_operations(document)}
    contract = {(m.lower(), p) for m, p in (line.split() for line in API_MD.strip().splitlines())}
    assert contract - documented == set(), "docs/api.md routes the server does not serve"


async def test_api_operations_have_summary_success_and_security(document: dict[str, Any]) -> None:
    schemes = set(document["components"]["securitySchemes"])
    assert {"bearerAuth", "cookieAuth"} <= schemes
    for method, path, op in document_operations(document):
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        assert any(code[0] in "23" for code in op["responses"]), where  # /c/ answers 302
        assert "security" in op, where
        for requirement in op["security"]:
            assert set(requirement) <= schemes, where
        if not path.startswith("/api/"):
            assert op["security"] == [], where
            continue
        for name in re.findall(r"\{(\w+)\}", path):
            params = [p for p in op["parameters"] if p["in"] == "path" and p["name"] == name]
            assert params and params[0]["required"] is True, where
        if op["security"]:
            assert {"401", "403"} <= set(op["responses"]), where
            assert op["x-dialer-roles"], where


async def test_public_and_unauthenticated_routes_have_no_security(
    document: dict[str, Any],
) -> None:
    ops = {(m, p): op for m, p, op in document_operations(document)}
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"):
        assert ops[("get", path)]["security"] == [], path
    assert ops[("get", "/api/v1/campaigns")]["security"]


async def test_content_types(document: dict[str, Any]) -> None:
    ops = {(m, p): op for m, p, op in document_operations(document)}
    create = ops[("post", "/api/v1/campaigns")]
    assert create["requestBody"]["required"] is True
    body_schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/CampaignSpec"}
    assert "201" in create["responses"]
    # /api/ error bodies are the one error shape of docs/api.md §3
    for method, path, op in document_operations(document):
        if not path.startswith("/api/"):
            continue
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                media = response["content"]["application/json"]["schema"]
                assert media == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, code)
    imports = ops.get(("post", "/api/v1/campaigns/{id}/leads"))
    if imports is not None:
        assert {"application/json", "text/csv"} <= set(imports["requestBody"]["content"])
    stream = ops.get(("get", "/api/v1/events"))
    if stream is not None:
        assert "text/event-stream" in stream["responses"]["200"]["content"]


async def test_every_reference_resolves(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    prefix = "#/components/schemas/"
    for ref in refs(document):
        assert ref.startswith(prefix) and ref.removeprefix(prefix) in components, ref
    assert "$defs" not in str(document), "nested $defs must be hoisted into components"


async def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    loaded = list(schema.get_all_operations())
    assert loaded and all(isinstance(result, Ok) for result in loaded), loaded
    assert len(loaded) == sum(1 for _ in document_operations(document))


async def test_validation_is_not_vacuous(document: dict[str, Any]) -> None:
    broken = copy.deepcopy(document)
    _, _, op = next(document_operations(broken))
    op["responses"] = "none"
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def synthetic_app() -> web.Application:
    """Routes using every @doc option, independent of the real routes."""
    from pydantic import BaseModel

    from dialer.api.auth import public, requires
    from dialer.api.docs import doc
    from dialer.usecases.accounts import Role

    class Inner(BaseModel):
        n: int

    class Body(BaseModel):
        inner: Inner
        note: str = ""

    class Reason(BaseModel):
        reason: str | None = None

    routes = web.RouteTableDef()

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    def add(method: str, path: str, *decorators: Any) -> None:
        async def h(request: web.Request) -> web.Response:
            return await handler(request)

        for d in reversed(decorators):
            h = d(h)
        routes.route(method, path)(h)

    add(
        "POST",
        "/api/v1/things/{id}/rows",
        requires(Role.ADMIN),
        doc("Import", body=Body, content_types=("application/json", "text/csv")),
    )
    add("POST", "/api/v1/things/{id}/nudge", requires(Role.ADMIN), doc("Nudge", body=Reason))
    add("DELETE", "/api/v1/things/{id}", requires(Role.ADMIN), doc("Drop", status=204))
    add(
        "GET",
        "/api/v1/stream",
        requires(Role.VIEWER, Role.ADMIN),
        doc("Stream", produces="text/event-stream", errors=()),
    )
    add("GET", "/api/v1/open", public, doc("Open", errors=()))
    add("POST", "/u/{token}", doc("Unsub", produces="text/html", other={404: None}, errors=()))
    add("GET", "/plain", lambda h: h)
    app = web.Application()
    app.router.add_routes(routes)
    return app


def test_generator_options_on_a_synthetic_app() -> None:
    document = build_openapi(synthetic_app())
    schemathesis.openapi.from_dict(document).validate()
    paths = document["paths"]
    rows = paths["/api/v1/things/{id}/rows"]["post"]
    assert rows["requestBody"]["required"] is True
    content = rows["requestBody"]["content"]
    assert content["text/csv"]["schema"] == {"type": "string"}
    assert content["application/json"]["schema"]["$ref"].endswith("/Body")
    assert {"Body", "Inner", "ErrorOut", "ErrorBody"} <= set(document["components"]["schemas"])
    assert rows["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert rows["x-dialer-roles"] == ["admin"]
    assert paths["/api/v1/things/{id}/nudge"]["post"]["requestBody"]["required"] is False
    drop = paths["/api/v1/things/{id}"]["delete"]["responses"]
    assert "content" not in drop["204"] and {"401", "403", "404"} <= set(drop)
    stream = paths["/api/v1/stream"]["get"]
    assert set(stream["responses"]["200"]["content"]) == {"text/event-stream"}
    assert set(stream["responses"]) == {"200", "401", "403"}  # secured: always 401/403
    assert paths["/api/v1/open"]["get"]["security"] == []
    unsub = paths["/u/{token}"]["post"]
    assert unsub["security"] == [] and set(unsub["responses"]) == {"200", "404"}
    assert set(unsub["responses"]["404"]["content"]) == {"text/html"}
    assert paths["/plain"]["get"]["responses"] == {"200": {"description": "OK"}}
