"""Limits every route enforces before any work (docs/api.md §3, docs/architecture.md §13):
body sizes per route (413 before authentication, for declared and chunked bodies alike, and
memory back where it was after a flood), security headers on every HTML page, 404 for
unknown API paths, and a bootstrap token long enough to be a secret."""

from __future__ import annotations

import gc
import io
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import ValidationError

from dialer.api.app import create_app
from dialer.api.guard import DEFAULT_BODY, IMPORT_BODY, SMALL_BODY
from dialer.config import Settings
from tests.api.conftest import Api

MIB = 1024 * 1024
CHUNK = 64 * 1024
# (method, path, limit, content type): the public routes first, then the imports.
LIMITED = [
    ("POST", "/api/v1/auth/login", SMALL_BODY, "application/json"),
    (
        "POST",
        "/u/1.0123456789abcdef0123456789abcdef",
        SMALL_BODY,
        "application/x-www-form-urlencoded",
    ),
    ("GET", "/u/1.0123456789abcdef0123456789abcdef", SMALL_BODY, "text/plain"),
    (
        "POST",
        "/webhooks/twilio/status?attempt=1",
        DEFAULT_BODY,
        "application/x-www-form-urlencoded",
    ),
    ("POST", "/webhooks/twilio/voice?attempt=1", DEFAULT_BODY, "application/x-www-form-urlencoded"),
    ("POST", "/api/v1/campaigns", DEFAULT_BODY, "application/json"),
    ("POST", "/api/v1/agents/a1/state", DEFAULT_BODY, "application/json"),
    ("POST", "/api/v1/campaigns/c_x/leads", IMPORT_BODY, "text/csv"),
    ("POST", "/api/v1/dnc", IMPORT_BODY, "text/csv"),
]


def sized(total: int) -> io.BytesIO:
    """`total` bytes with a Content-Length."""
    return io.BytesIO(b"x" * total)


async def chunks(total: int) -> AsyncIterator[bytes]:
    """`total` bytes, a chunk at a time: sent chunked, never held whole by the client."""
    sent = 0
    while sent < total:
        n = min(CHUNK, total - sent)
        sent += n
        yield b"x" * n


@pytest.mark.parametrize(("method", "path", "limit", "content_type"), LIMITED)
async def test_a_body_over_the_route_limit_is_413_before_anything_else(
    api: Api, method: str, path: str, limit: int, content_type: str
) -> None:
    headers = {"Content-Type": content_type}
    # Declared too large: refused before the body is read and before the caller is known.
    resp = await api.client.request(method, path, data=sized(limit + 1), headers=headers)
    assert resp.status == 413, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == "too_large" and body["error"]["details"]["limit"] == limit
    # Chunked (no length to check): read up to the limit, then refused.
    if method == "POST" and limit < IMPORT_BODY:
        resp = await api.client.request(
            method, path, data=chunks(limit + CHUNK), headers={**headers, **api.auth()}
        )
        assert resp.status == 413, await resp.text()
    # At the limit the size is fine: the route answers whatever else it has to say.
    resp = await api.client.request(method, path, data=sized(limit), headers=headers)
    assert resp.status != 413


async def test_a_flood_of_large_bodies_leaves_memory_where_it_was(api: Api) -> None:
    """Ten 15 MB bodies to each public route: none is kept, declared or chunked."""
    targets = [
        ("/api/v1/auth/login", "application/json"),
        ("/u/1.0123456789abcdef0123456789abcdef", "application/x-www-form-urlencoded"),
        ("/webhooks/twilio/status", "application/x-www-form-urlencoded"),
    ]
    size = 15 * MIB
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for path, content_type in targets:
            for i in range(10):
                headers = {"Content-Type": content_type}
                if i % 2:
                    headers["Content-Length"] = str(size)
                resp = await api.client.post(path, data=chunks(size), headers=headers)
                assert resp.status == 413, (path, i, resp.status)
                resp.release()
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < 8 * MIB, f"peak {(peak - before) / MIB:.1f} MiB over the baseline"
    assert after - before < 2 * MIB, f"{(after - before) / MIB:.1f} MiB kept"


# -- headers on every HTML page -----------------------------------------------------------
def html_pages(api: Api) -> list[str]:
    token = api.runtime.service.links.unsubscribe_token(1)
    return ["/", "/static/index.html", f"/u/{token}", "/u/1.0123456789abcdef0123456789abcdef"]


async def test_every_html_page_carries_the_security_headers(api: Api) -> None:
    seen = 0
    for path in html_pages(api):
        for method in ("GET", "POST") if path.startswith("/u/") else ("GET",):
            resp = await api.client.request(method, path)
            if resp.content_type != "text/html":
                continue
            seen += 1
            csp = resp.headers.get("Content-Security-Policy", "")
            assert "frame-ancestors 'none'" in csp and "default-src" in csp, (path, csp)
            assert "script-src 'self'" in csp or "default-src 'none'" in csp, (path, csp)
            assert "unsafe-inline" not in csp, (path, csp)
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Referrer-Policy"] == "no-referrer"
            assert resp.headers["X-Frame-Options"] == "DENY"
    assert seen >= 4
    # The unsubscribe page's style is allowed by its hash, not by allowing inline style.
    resp = await api.client.get(html_pages(api)[2])
    assert "style-src 'sha256-" in resp.headers["Content-Security-Policy"]
    assert "style=" not in await resp.text()


async def test_every_answer_says_nosniff(api: Api) -> None:
    for path in ("/healthz", "/api/v1/campaigns", "/api/v1/nope", "/metrics"):
        resp = await api.client.get(path, headers=api.auth())
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path


# -- unknown paths ------------------------------------------------------------------------
@pytest.mark.parametrize("role", [None, "admin", "viewer"])
async def test_unknown_api_paths_are_404_for_everyone(api: Api, role: str | None) -> None:
    for path in ("/api/v1/nope", "/api/v1/campaigns/c_1/nope", "/api/v2/campaigns", "/api/"):
        status, body = await api.call("GET", path, role=role)
        assert status == 404 and body["error"]["code"] == "not_found", (path, body)
    status, body = await api.call("PUT", "/api/v1/campaigns", role=role)
    assert status == 405 and body["error"]["code"] == "method_not_allowed"


# -- the bootstrap token ------------------------------------------------------------------
def test_a_short_bootstrap_token_refuses_to_start() -> None:
    secret = "x" * 23
    with pytest.raises(ValidationError) as caught:
        Settings(bootstrap_token=secret)
    text = str(caught.value)
    assert "DIALER_BOOTSTRAP_TOKEN must be at least 24 characters" in text
    assert secret not in text  # the refused secret is not printed
    assert Settings(bootstrap_token="x" * 24).bootstrap_token is not None
    assert isinstance(create_app(Settings(bootstrap_token="y" * 40)), web.Application)
