"""Inbound email webhook (docs/api.md §10): `POST /webhooks/email/inbound`.

The body is one raw RFC 5322 message (`Content-Type: message/rfc822`), signed by
`X-Dialer-Signature: sha256=<hex HMAC-SHA256 of the body with DIALER_INBOUND_SECRET>`.
403 without a valid signature (or with no secret configured), 413 over 10 MB, 400 when the
body is no message, 204 otherwise: matched or not, the message is processed (or kept) once
(docs/architecture.md §9.1).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from dialer.api.auth import public
from dialer.api.docs import doc
from dialer.api.errors import ApiError
from dialer.api.guard import MIB, body_limit
from dialer.api.keys import RUNTIME, SETTINGS

routes = web.RouteTableDef()

INBOUND_BODY = 10 * MIB


def signed(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is `sha256=<hex HMAC-SHA256 of body>` under `secret`."""
    if not header or not header.startswith("sha256="):
        return False
    given = header.removeprefix("sha256=").strip().lower()
    ours = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return given.isascii() and hmac.compare_digest(given.encode(), ours.encode())


@routes.post("/webhooks/email/inbound")
@public
@body_limit(INBOUND_BODY)
@doc(
    "Inbound email: a reply, an auto-reply or a bounce (signed with DIALER_INBOUND_SECRET)",
    content_types=("message/rfc822",),
    status=204,
    errors=(400, 403, 413),
)
async def inbound(request: web.Request) -> web.Response:
    body = await request.read()
    secret = request.app[SETTINGS].inbound_secret
    if secret is None or not signed(
        secret.get_secret_value().encode(), body, request.headers.get("X-Dialer-Signature")
    ):
        raise ApiError(403, "forbidden", "the X-Dialer-Signature is missing or not valid")
    try:
        await request.app[RUNTIME].inbound.receive(body, source="webhook")
    except ValueError as exc:  # the pipeline's Unparseable: no header at all
        raise ApiError(400, "bad_request", f"not an RFC 5322 message: {exc}") from None
    return web.Response(status=204)
