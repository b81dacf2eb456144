"""Twilio's webhooks (docs/api.md §10): the voice URL, status callbacks and async AMD results.

Not under /api/: no bearer token. `X-Twilio-Signature`, checked against the configured
public base URL and the posted form, is the authentication; anything else is a 403 that
changes nothing. Each callback names its attempt in the query (`?attempt=<id>`, set when the
call was created). A callback for an attempt we do not know (or for a different call than
the attempt's) is answered 200 and ignored, never an error: Twilio would retry an error.

While the database is unreachable (docs/architecture.md §15.1) a callback that cannot be
written is answered 503 with Retry-After: Twilio counts it as a failed delivery, and the
engine's reconciler asks Twilio for the call's fate once the database is back. The voice URL
cannot wait: the callee hears the identification message and is hung up, as for an
unknown call (an abandoned call must hear it, §7.3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from dialer.api.docs import doc
from dialer.api.errors import ApiError, unavailable_response
from dialer.api.keys import RUNTIME, SETTINGS
from dialer.channels.base import CallEvent
from dialer.domain.campaign import AnsweredBy
from dialer.domain.states import ATTEMPT_FINAL, AttemptStatus
from dialer.store import campaigns as campaign_store
from dialer.store.db import describe, unavailable
from dialer.store.models import Attempt

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

FORM = ("application/x-www-form-urlencoded",)
ATTEMPT_QUERY = {"attempt": "string"}
SIGNATURE = "X-Twilio-Signature"
Builder = Callable[[str, Mapping[str, str], float], CallEvent | None]
# A callback is answered 204 when applied, 200 when ignored (see the module's docstring).
CALLBACK_DOC: dict[str, Any] = {
    "content_types": FORM,
    "produces": "text/plain",
    "status": 204,
    "other": {200: None, 503: None},
    "query": ATTEMPT_QUERY,
    "errors": (403,),
}


async def signed_form(request: web.Request) -> dict[str, str]:
    """The posted form, if `X-Twilio-Signature` proves Twilio sent it; 403 otherwise."""
    settings = request.app[SETTINGS]
    form = await request.post()
    signature = request.headers.get(SIGNATURE, "")
    token = settings.twilio_auth_token
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    valid = False
    if signature and token is not None and len(params) == len(form):
        try:
            from twilio.request_validator import RequestValidator
        except ImportError:  # without the `dialer[twilio]` extra nothing can be checked
            RequestValidator = None
        if RequestValidator is not None:
            url = settings.public_base_url.rstrip("/") + request.path_qs
            valid = RequestValidator(token.get_secret_value()).validate(url, form, signature)
    if not valid:
        log.warning("twilio.bad_signature", extra={"path": request.path})
        raise ApiError(403, "bad_signature", f"{SIGNATURE} is missing or does not match")
    return params


async def known_attempt(request: web.Request, params: Mapping[str, str]) -> Attempt | None:
    """The attempt row the callback names, if it exists and is about this call."""
    raw = request.query.get("attempt", "")
    sid = params.get("CallSid", "")
    row = None
    if raw.isdigit() and len(raw) <= 18:
        async with request.app[RUNTIME].db.reader() as s:
            row = await campaign_store.voice_attempt(s, int(raw))
    if row is None or (row.carrier_id and sid and row.carrier_id != sid):
        log.warning(
            "twilio.unknown_attempt",
            extra={"path": request.path, "attempt": raw[:20], "call_sid": sid[:40]},
        )
        return None
    return row


async def _report(request: web.Request, kind: str) -> web.Response:
    params = await signed_form(request)
    try:
        return await _apply(request, kind, params)
    except Exception as exc:
        if not unavailable(exc):
            raise
        log.warning(
            "twilio.callback_deferred",
            extra={
                "path": request.path,
                "attempt": request.query.get("attempt", "")[:20],
                "error": describe(exc),
            },
        )
        raw = request.query.get("attempt", "")
        if raw.isdigit() and len(raw) <= 18:
            # Twilio does not retry: ask it about this call as soon as the database is back.
            request.app[RUNTIME].engine.reconciler.defer(int(raw))
        return unavailable_response("the database is unavailable; the callback was not applied")


async def _apply(request: web.Request, kind: str, params: Mapping[str, str]) -> web.Response:
    from dialer.channels import twiml  # the `dialer[twilio]` extra is there: it was signed

    build: Builder = twiml.amd_event if kind == "amd" else twiml.status_event
    row = await known_attempt(request, params)
    if row is None:
        return web.Response(status=200, text="")
    rt = request.app[RUNTIME]
    event = build(str(row.id), params, rt.clock.now())
    if event is None:
        log.warning("twilio.unreadable_callback", extra={"path": request.path, "attempt": row.id})
        return web.Response(status=200, text="")
    # Applied before answering: Twilio's callback timeout (15 s) is far above one
    # transaction plus, at most, the REST calls of a bridge or hang-up.
    await rt.engine.on_call_event(event)
    return web.Response(status=204)


@routes.post("/webhooks/twilio/voice")
@doc(
    "Twilio voice URL: TwiML for an answered call (signed by Twilio)",
    content_types=FORM,
    produces="application/xml",
    query=ATTEMPT_QUERY,
    errors=(403,),
)
async def voice(request: web.Request) -> web.Response:
    """The call was answered: put the customer into the attempt's conference.

    Whether the engine has an agent for it yet or not, the TwiML is the same: the agent
    joins the same conference (`bridge`), or the engine abandons the call within the 2 s
    grace and redirects it to the message. An abandoned call, a machine, or a call we do not
    know hears the identification message and is hung up.
    """
    params = await signed_form(request)
    from dialer.channels import twiml  # the `dialer[twilio]` extra is there: it was signed

    rt = request.app[RUNTIME]
    message = rt.engine.abandon_message
    try:
        row = await known_attempt(request, params)
    except Exception as exc:
        if not unavailable(exc):
            raise
        log.warning(
            "twilio.voice_unavailable", extra={"path": request.path, "error": describe(exc)}
        )
        return web.Response(text=twiml.say_and_hangup(message), content_type="application/xml")
    if row is None or row.abandoned or row.answered_by == AnsweredBy.MACHINE:
        xml = twiml.say_and_hangup(message)
    elif AttemptStatus(row.status) in ATTEMPT_FINAL:
        xml = twiml.say_and_hangup(None)
    else:
        xml = twiml.join_conference(params.get("CallSid", ""), customer=True)
    return web.Response(text=xml, content_type="application/xml")


@routes.post("/webhooks/twilio/status")
@doc("Twilio call status callback (signed by Twilio)", **CALLBACK_DOC)
async def status(request: web.Request) -> web.Response:
    """A call status (queued … completed) for the engine; duplicates and late ones are no-ops."""
    return await _report(request, "status")


@routes.post("/webhooks/twilio/amd")
@doc("Twilio async answering-machine detection result (signed by Twilio)", **CALLBACK_DOC)
async def amd(request: web.Request) -> web.Response:
    """Who answered: a machine gets the message and is hung up by the engine."""
    return await _report(request, "amd")
