"""Limits every route enforces before any work (docs/api.md §3, docs/architecture.md §13):
the size of a request body, and the security headers of every answer.

aiohttp's `client_max_size` is one number for the whole app; here each route has its own.
A declared `Content-Length` over the route's limit is refused at once, before the body is
read, the caller authenticated or the database touched; a body without one (chunked) is
read only up to the limit. Either way the answer is `413 too_large` and nothing of the
body is kept, so a flood of large bodies leaves memory where it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from dialer.api.errors import ApiError

KIB = 1024
MIB = 1024 * KIB
SMALL_BODY = 64 * KIB  # login, unsubscribe links: a few fields
DEFAULT_BODY = 1 * MIB  # every other JSON body, and the carrier's webhooks
IMPORT_BODY = 20 * MIB  # a 100,000-row CSV fits
MAX_BODY = IMPORT_BODY  # the app-wide ceiling (aiohttp's client_max_size)

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])

# Every answer: no MIME sniffing, no Referer leaving with a URL (an unsubscribe token).
BASE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# Every HTML page that does not set a policy of its own: nothing runs, nothing frames it.
HTML_CSP = "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


def body_limit(size: int) -> Callable[[H], H]:
    """Declare the largest body (bytes) a route takes; DEFAULT_BODY otherwise."""

    def mark(handler: H) -> H:
        handler.__dict__["dialer_body_limit"] = size
        return handler

    return mark


def limit_of(handler: Any) -> int:
    size: int = getattr(getattr(handler, "__func__", handler), "dialer_body_limit", DEFAULT_BODY)
    return size


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"the body is larger than the {limit} bytes this route takes",
        {"limit": limit},
    )


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    limit = limit_of(request.match_info.handler)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    if request.body_exists:
        # A chunked body has no length to check: the handler's read stops at the limit.
        request = request.clone(client_max_size=limit)
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None
    return response


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the headers every answer carries; a page's own policy wins."""
    for name, value in BASE_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", HTML_CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
