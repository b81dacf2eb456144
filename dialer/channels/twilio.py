"""The voice channel over Twilio, on the official SDK's async client.

Calls report back through webhooks (`dialer.api.routes_twilio`) straight to the engine; this
class only talks to Twilio's REST API. Per-process maps (key -> CallSid -> attempt, caller id)
make a repeated `dial` of one key place no second call and let `lookup` ask Twilio about it.

After a crash the maps are gone, and `Calls.create` has no idempotency key. The reconciler
asks `lookup`: by the CallSid stored on the attempt, else by listing the calls to the
lead's number from the attempt's caller id since the attempt was written (calls of the
lead's other attempts excluded). A call's callbacks carry `?attempt=<id>` too, so the first
one links a call whose CallSid we never stored. A call is dialled again only when Twilio's
record shows it was never placed (docs/architecture.md §15.2).
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from dialer.channels import twiml
from dialer.channels.base import (
    NOT_PLACED,
    CallEvent,
    CallEventSink,
    CallFate,
    CallQuery,
    ChannelError,
    DialRequest,
    FateKind,
)
from dialer.clock import Clock
from dialer.domain.contacts import mask_phone
from dialer.domain.states import AttemptStatus
from dialer.logs import mask_text

log = logging.getLogger(__name__)

MIN_RING_TIMEOUT = 15  # US rules: an unanswered call rings at least 15 s
MAX_RING_TIMEOUT = 600  # Twilio's maximum
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
CALL_NOT_IN_PROGRESS = 21220  # Twilio's error for an update of a call that has ended
_REMEMBERED = 100_000  # entries of each per-process map
# Twilio's StartTime filter has a granularity of days in its docs and our clocks may differ.
LOOKUP_SLACK_SECONDS = 300.0


def _masked(text: str) -> str:
    """Twilio's error messages may quote the number dialled: never let it reach a log."""
    return mask_text(text)


class TwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's async HTTP client on our own aiohttp session, with a real timeout. `api_base`
    (tests: the loopback fake) replaces scheme and host of Twilio's URLs. Nothing is logged
    here: the SDK's request log would print query parameters (phone numbers)."""

    def __init__(self, *, timeout: float = 10.0, api_base: str | None = None) -> None:
        # Not AsyncTwilioHttpClient.__init__: it opens a session outside of any event loop.
        AsyncHttpClient.__init__(self, log, True, timeout)
        self.session: aiohttp.ClientSession | None = None
        self.api_base = api_base.rstrip("/") if api_base else None

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if self.api_base is None or not parts.hostname or not parts.hostname.endswith("twilio.com"):
            return url
        return self.api_base + parts.path + (f"?{parts.query}" if parts.query else "")

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        headers = dict(headers or {})
        if auth:  # aiohttp.BasicAuth is deprecated
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        body = None
        if data:  # lists (StatusCallbackEvent) become repeated fields, as Twilio expects
            body = urlencode({k: v for k, v in data.items() if v is not None}, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        async with self.session.request(
            method.upper(),
            self.url(url),
            params={k: str(v) for k, v in (params or {}).items()} or None,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            allow_redirects=allow_redirects,
        ) as resp:
            text = await resp.text()
            return Response(resp.status, text, resp.headers)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


class TwilioVoice:
    """The `VoiceChannel` "twilio". The account's calls-per-second limit is kept by the
    engine's shared limiter (settings `twilio_calls_per_second`); Twilio itself queues calls
    beyond it (pause cancels those)."""

    name = "twilio"

    def __init__(
        self,
        clock: Clock,
        *,
        account_sid: str,
        auth_token: str,
        public_base_url: str,
        agent_leg: str = "client:{agent_id}",
        api_base: str | None = None,
        timeout: float = 10.0,
        time_limit_seconds: int = 4 * 3600,
    ) -> None:
        self._clock = clock
        self._base = public_base_url.rstrip("/")
        self._agent_leg = agent_leg
        self._time_limit = time_limit_seconds
        self.http = TwilioHttpClient(timeout=timeout, api_base=api_base)
        self._client = Client(account_sid, auth_token, account_sid, http_client=self.http)
        self._by_key: OrderedDict[str, str] = OrderedDict()
        self._calls: OrderedDict[str, tuple[str, str]] = OrderedDict()  # sid -> attempt, from
        self._legs: OrderedDict[str, str] = OrderedDict()  # customer sid -> agent leg sid
        self._sink: CallEventSink | None = None

    def set_sink(self, sink: CallEventSink) -> None:
        self._sink = sink

    def webhook(self, kind: str, attempt_id: str) -> str:
        return f"{self._base}/webhooks/twilio/{kind}?{urlencode({'attempt': attempt_id})}"

    async def dial(self, request: DialRequest) -> str:
        known = self._by_key.get(request.idempotency_key)
        if known is not None:
            return known
        ring = min(max(request.ring_timeout_seconds, MIN_RING_TIMEOUT), MAX_RING_TIMEOUT)
        call = await self._rest(
            "dial",
            self._client.calls.create_async(
                to=request.to,
                from_=request.caller_id,
                url=self.webhook("voice", request.attempt_id),
                method="POST",
                status_callback=self.webhook("status", request.attempt_id),
                status_callback_event=STATUS_EVENTS,
                status_callback_method="POST",
                timeout=ring,
                machine_detection="DetectMessageEnd",
                async_amd="true",
                async_amd_status_callback=self.webhook("amd", request.attempt_id),
                async_amd_status_callback_method="POST",
                time_limit=self._time_limit,
            ),
        )
        sid = str(call.sid)
        _remember(self._by_key, request.idempotency_key, sid)
        _remember(self._calls, sid, (request.attempt_id, request.caller_id))
        log.info(
            "twilio.dialled",
            extra={"attempt": request.attempt_id, "call_sid": sid, "to": mask_phone(request.to)},
        )
        return sid

    async def cancel(self, carrier_id: str) -> bool:
        """Cancel a call still `queued` at Twilio (waiting for the account's CPS).

        Twilio's `Status=canceled` would also cut a ringing call, so the status is fetched
        first; a call that starts ringing in between (one round trip) is the remaining race.
        """
        try:
            call = await self._rest("fetch", self._client.calls(carrier_id).fetch_async())
            if call.status != "queued":
                return False
            update = self._client.calls(carrier_id).update_async(status="canceled")
            call = await self._rest("cancel", update)
        except ChannelError as exc:
            log.warning("twilio.cancel_failed", extra={"call_sid": carrier_id, "error": str(exc)})
            return False
        if call.status != "canceled":
            return False
        known = self._calls.get(carrier_id)
        if known is not None:  # Twilio reports it too; duplicates are no-ops
            event = CallEvent(known[0], carrier_id, AttemptStatus.CANCELED, self._clock.now())
            self._clock.schedule(0, lambda: self._report(event))
        return True

    async def bridge(self, carrier_id: str, agent_id: str) -> None:
        """Dial the agent into the attempt's conference.

        The customer is in it already: the voice webhook answered with the same conference.
        Redirecting the customer again would make it leave (ending the conference) and
        rejoin, racing the agent leg; so only the agent leg is created.
        """
        known = self._calls.get(carrier_id)
        if known is not None:
            caller_id = known[1]
        else:  # dialled by another worker: its caller id is on the call itself
            call = await self._rest("fetch", self._client.calls(carrier_id).fetch_async())
            caller_id = str(call._from)  # the SDK names it `_from`
        to = self._agent_leg.format(agent_id=agent_id)
        leg = await self._rest(
            "agent_leg",
            self._client.calls.create_async(
                to=to,
                from_=caller_id,
                twiml=twiml.join_conference(carrier_id, customer=False),
                timeout=30,
                time_limit=self._time_limit,
            ),
        )
        _remember(self._legs, carrier_id, str(leg.sid))
        log.info(
            "twilio.bridged", extra={"call_sid": carrier_id, "agent": agent_id, "leg": leg.sid}
        )

    async def hangup(self, carrier_id: str, *, message: str | None = None) -> None:
        if message:
            await self._update(carrier_id, "hangup", twiml=twiml.say_and_hangup(message))
        else:
            await self._update(carrier_id, "hangup", status="completed")
        leg = self._legs.pop(carrier_id, None)
        if leg is not None:
            # An agent leg still queued or ringing would join a conference nobody is in
            # (a machine found by async AMD after the bridge): end it too.
            try:
                await self._update(leg, "end_agent_leg", status="completed")
            except ChannelError as exc:
                log.info("twilio.agent_leg_not_ended", extra={"leg": leg, "error": str(exc)})

    async def lookup(self, query: CallQuery) -> CallFate:
        """The call's fate from Twilio's own record: fetched by CallSid when we stored it,
        else found among the calls to the lead's number from the attempt's caller id placed
        since the attempt was written (docs/architecture.md §15.2). Twilio's record is
        complete, so no match means the call was never placed; two matches cannot be told
        apart, and the reconciler gives the attempt up as lost rather than guess."""
        sid = query.carrier_id or self._by_key.get(query.idempotency_key)
        if sid is None:
            since = datetime.fromtimestamp(query.placed_after - LOOKUP_SLACK_SECONDS, UTC)
            listing = self._client.calls.list_async(
                to=query.to, from_=query.caller_id, start_time_after=since, limit=20
            )
            found = await self._rest("list", listing)
            calls = [c for c in found if str(c.sid) not in query.other_calls]
            if not calls:
                return NOT_PLACED
            if len(calls) > 1:
                return CallFate(FateKind.UNKNOWN, why=f"{len(calls)} calls match the attempt")
            sid = str(calls[0].sid)
        try:
            call = await self._rest("fetch", self._client.calls(sid).fetch_async())
        except ChannelError as exc:
            if "HTTP 404" in str(exc):
                return CallFate(FateKind.UNKNOWN, why="Twilio has no call with this CallSid")
            raise
        _remember(self._by_key, query.idempotency_key, sid)
        _remember(self._calls, sid, (query.attempt_id, str(call._from)))
        status = twiml.call_status(str(call.status)) or AttemptStatus.QUEUED
        duration = None
        if status is AttemptStatus.COMPLETED and call.duration is not None:
            duration = float(call.duration)
        event = CallEvent(
            attempt_id=query.attempt_id,
            carrier_id=sid,
            status=status,
            at=self._clock.now(),
            answered_by=twiml.answered_by(call.answered_by),
            duration_seconds=duration,
        )
        return CallFate(FateKind.KNOWN, event)

    async def close(self) -> None:
        await self.http.close()

    async def _report(self, event: CallEvent) -> None:
        if self._sink is not None:
            await self._sink(event)

    async def _update(self, sid: str, what: str, **fields: str) -> None:
        """Update a live call; one that has ended already is left alone (a no-op)."""
        try:
            await self._rest(what, self._client.calls(sid).update_async(**fields), ended_ok=True)
        except _Ended:
            log.info("twilio.update_after_end", extra={"call_sid": sid, "what": what})

    async def _rest(self, what: str, pending: Any, *, ended_ok: bool = False) -> Any:
        """Await one SDK call; Twilio's and the network's failures become ChannelError.

        Unreachable, timed out, HTTP 5xx or 429 is an outage (`unavailable`); a request
        that may have reached Twilio before it failed is `maybe_placed`."""
        try:
            return await pending
        except TwilioRestException as exc:
            if ended_ok and exc.code == CALL_NOT_IN_PROGRESS:
                raise _Ended from None
            down = exc.status >= 500 or exc.status == 429
            message = f"twilio {what}: HTTP {exc.status} code {exc.code}: {_masked(exc.msg)}"
            raise ChannelError(message, retryable=down, unavailable=down) from None
        except aiohttp.ClientConnectorError as exc:  # never reached Twilio
            raise ChannelError(
                f"twilio {what}: cannot connect ({type(exc).__name__})", unavailable=True
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:  # may have reached it
            raise ChannelError(
                f"twilio {what}: {type(exc).__name__}", unavailable=True, maybe_placed=True
            ) from None


class _Ended(Exception):
    """An update of a call that has already ended (hanging up twice is a no-op)."""


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _REMEMBERED:
        cache.popitem(last=False)
