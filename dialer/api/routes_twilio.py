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
import re
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from dialer.api.docs import doc
from dialer.api.errors import ApiError, unavailable_response
from dialer.api.keys import RUNTIME, SETTINGS
from dialer.channels.base import CallEvent
from dialer.domain.campaign import AnsweredBy
from dialer.domain.states import ATTEMPT_FINAL, AttemptStatus
from dialer.store import campaigns as campaign_store
from dialer.store.db import describe, unavailable
from dialer.store.models import Attempt
from dialer.usecases.limits import digits_id, text_problem

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

FORM = ("application/x-www-form-urlencoded",)
ATTEMPT_QUERY = {"attempt": "string"}
SIGNATURE = "X-Twilio-Signature"
_SID = re.compile(r"[A-Za-z0-9]{1,64}")  # Twilio's are CA + 32 hex digits
_DURATION = re.compile(r"[0-9]{1,7}")  # whole seconds (a call lasts at most 4 hours)
Builder = Callable[[str, Mapping[str, str], float], CallEvent | None]
# A callback is answered 204 when applied, 200 when ignored (see the module's docstring).
CALLBACK_DOC: dict[str, Any] = {
    "content_types": FORM,
    "produces": "text/plain",
    "status": 204,
    "other": {200: None, 503: None},
    "query": ATTEMPT_QUERY,
    "errors": (400, 403, 413, 415),
}


async def _form(request: web.Request) -> MultiDictProxy[str]:
    """The posted form, as Twilio posts it (URL-encoded text fields); 415 or 400 otherwise."""
    if request.body_exists and request.content_type != FORM[0]:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send {FORM[0]}, not {request.content_type}",
            {"content_type": request.content_type},
        )
    try:
        form = await request.post()
    except (ValueError, LookupError):  # not UTF-8 (or the charset it names), or unknown one
        raise ApiError(400, "bad_form", "the form cannot be read") from None
    fields: MultiDict[str] = MultiDict()
    for key, value in form.items():
        if not isinstance(value, str) or text_problem(key) or text_problem(value):
            # Twilio sends text fields only; a NUL or a lone surrogate never reaches the
            # signature check (it cannot be encoded) or the database (PostgreSQL refuses it).
            raise ApiError(400, "bad_form", f"form field {key[:40]!r} is not plain text")
        fields.add(key, value)
    return MultiDictProxy(fields)


async def signed_form(request: web.Request) -> dict[str, str]:
    """The posted form, if `X-Twilio-Signature` proves Twilio sent it; 403 otherwise."""
    settings = request.app[SETTINGS]
    form = await _form(request)
    signature = request.headers.get(SIGNATURE, "")
    token = settings.twilio_auth_token
    valid = False
    if signature and token is not None:
        try:
            from twilio.request_validator import RequestValidator
        except ImportError:  # without the `dialer[twilio]` extra nothing can be checked
            RequestValidator = None
        if RequestValidator is not None:
            # Twilio signs the URL as it requested it: the raw path and query, not decoded.
            url = settings.public_base_url.rstrip("/") + request.raw_path
            try:
                valid = RequestValidator(token.get_secret_value()).validate(url, form, signature)
            except (UnicodeError, ValueError):  # a URL or signature nothing could have signed
                valid = False
    if not valid:
        log.warning("twilio.bad_signature", extra={"path": request.path})
        raise ApiError(403, "bad_signature", f"{SIGNATURE} is missing or does not match")
    return {key: value for key, value in form.items()}


def plausible(params: Mapping[str, str]) -> dict[str, str]:
    """The callback's fields, less a CallDuration that is not whole seconds: Twilio sends
    digits, and `inf` or `1e308` would become a talk time (docs/api.md §10)."""
    out = dict(params)
    if not _DURATION.fullmatch(out.get("CallDuration", "0")):
        del out["CallDuration"]
    return out


def attempt_of(request: web.Request) -> int | None:
    """The attempt a callback names (`?attempt=<id>`, ASCII digits), or None."""
    return digits_id(request.query.get("attempt"))


def call_sid(params: Mapping[str, str]) -> str | None:
    """The callback's CallSid if it can be one (it is stored as the attempt's carrier id)."""
    sid = params.get("CallSid", "")
    return sid if not sid or _SID.fullmatch(sid) else None


async def known_attempt(request: web.Request, params: Mapping[str, str]) -> Attempt | None:
    """The attempt row the callback names, if it exists and is about this call."""
    attempt_id = attempt_of(request)
    sid = call_sid(params)
    row = None
    if attempt_id is not None and sid is not None:
        async with request.app[RUNTIME].db.reader() as s:
            row = await campaign_store.voice_attempt(s, attempt_id)
    if row is None or (row.carrier_id and sid and row.carrier_id != sid):
        log.warning(
            "twilio.unknown_attempt",
            extra={
                "path": request.path,
                "attempt": request.query.get("attempt", "")[:20],
                "call_sid": params.get("CallSid", "")[:40],
            },
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
        attempt_id = attempt_of(request)
        if attempt_id is not None:
            # Twilio does not retry: ask it about this call as soon as the database is back.
            request.app[RUNTIME].engine.reconciler.defer(attempt_id)
        return unavailable_response("the database is unavailable; the callback was not applied")


async def _apply(request: web.Request, kind: str, params: Mapping[str, str]) -> web.Response:
    from dialer.channels import twiml  # the `dialer[twilio]` extra is there: it was signed

    build: Builder = twiml.amd_event if kind == "amd" else twiml.status_event
    params = plausible(params)
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
    errors=(400, 403, 413, 415),
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
