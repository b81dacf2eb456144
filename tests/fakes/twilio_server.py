"""A stateful fake of Twilio's REST API (Calls) on loopback, for the real `twilio` SDK.

    fake = FakeTwilio(clock, calls_per_second=1)
    base_url = await fake.start()          # http://127.0.0.1:PORT, instead of https://api.twilio.com
    fake.script("+15550001111", "busy")
    ...                                    # the SDK creates calls; clock.advance() plays them
    assert fake.counts() == Counter(completed=3, busy=1)
    await fake.close()

What the fake records: `calls` (sid -> `FakeCall`, in creation order), `callbacks` (every
status callback POSTed, as `SentCallback`), `webhooks` (TwiML fetches and AMD results),
`counts()` (calls by final status). The calls themselves (CPS queue, timeline, TwiML,
conferences, signed webhooks) are `FakeCarrier`'s, in `twilio_carrier.py` and below.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from multidict import MultiDictProxy

from tests.fakes.twilio_carrier import FakeCarrier
from tests.fakes.twilio_model import API_VERSION, FakeCall, SentCallback, valid_from, valid_to

__all__ = ["FakeCall", "FakeTwilio", "SentCallback"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_INT_FIELDS = ("Timeout", "TimeLimit", "MachineDetectionTimeout")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return web.json_response(body, status=self.status)


class FakeTwilio(FakeCarrier):
    """Twilio's Calls API for one account, served by `start()` until `close()`."""

    base_url: str | None = None
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Serve on 127.0.0.1 on a free port; returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("already started")
        app = web.Application(middlewares=[self._errors, self._authenticate])
        prefix = f"/{API_VERSION}/Accounts/{{account}}/Calls"
        app.router.add_post(f"{prefix}.json", self._create)
        app.router.add_get(f"{prefix}.json", self._list)
        app.router.add_get(prefix + "/{sid:[^/.]+}.json", self._fetch_call)
        app.router.add_post(prefix + "/{sid:[^/.]+}.json", self._update)
        self._hooks.session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        """Stop serving and drop every pending step; what happened stays recorded."""
        self._stop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._hooks.session is not None:
            await self._hooks.session.close()
            self._hooks.session = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except web.HTTPNotFound:
            error = ApiError(404, 20404, f"The requested resource {request.path} was not found")
            return error.response()

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._authorized(request.headers.get("Authorization", "")):
            raise ApiError(401, 20003, "Authenticate")
        if request.match_info.get("account") != self.account_sid:
            raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
        return await handler(request)

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = f"{self.account_sid}:{self.auth_token}"
        return hmac.compare_digest(f"{user}:{password}", expected)

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()
        fields = _strings(form)
        to, from_ = fields.get("To", ""), fields.get("From", "")
        if not to:
            raise ApiError(400, 21201, "No 'To' number is specified")
        if not valid_to(to):
            raise ApiError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            raise ApiError(400, 21213, "No 'From' number is specified")
        if not valid_from(from_):
            raise ApiError(400, 21212, f"Invalid 'From' Phone Number: {from_}")
        if not fields.get("Url") and not fields.get("Twiml"):
            raise ApiError(400, 21205, "Url or Twiml parameter is required.")
        _check_ints(fields)
        # The SDK repeats StatusCallbackEvent; some clients space-separate the events.
        events = [e for value in form.getall("StatusCallbackEvent", []) for e in str(value).split()]
        call = self.place(fields, events)
        return web.json_response(call.resource(), status=201)

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        after = _instant(query.get("StartTime>"))
        calls = [
            call
            for call in reversed(self.calls.values())  # newest first, as Twilio lists them
            if all(
                query.get(name) in (None, value)
                for name, value in (("To", call.to), ("From", call.from_), ("Status", call.status))
            )
            and (after is None or call.created_at >= after)
        ]
        try:
            size = min(1000, max(1, int(query.get("PageSize", 50))))
            page = max(0, int(query.get("Page", 0)))
        except ValueError:
            raise ApiError(400, 20001, "Invalid paging parameters") from None
        chunk = calls[page * size : (page + 1) * size]

        def uri(number: int) -> str:
            rest = "".join(f"&{k}={v}" for k, v in query.items() if k not in ("Page", "PageSize"))
            return f"{request.path}?PageSize={size}&Page={number}{rest}"

        more = (page + 1) * size < len(calls)
        body: dict[str, Any] = {
            "calls": [call.resource() for call in chunk],
            "start": page * size,
            "end": page * size + max(0, len(chunk) - 1),
            "page": page,
            "page_size": size,
            "uri": uri(page),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if more else None,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
        }
        return web.json_response(body)

    def _call(self, request: web.Request) -> FakeCall:
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
        return call

    async def _fetch_call(self, request: web.Request) -> web.Response:
        return web.json_response(self._call(request).resource())

    async def _update(self, request: web.Request) -> web.Response:
        call = self._call(request)
        fields = _strings(await request.post())
        _check_ints(fields)
        status, url, twiml = fields.get("Status"), fields.get("Url"), fields.get("Twiml")
        if status not in (None, "canceled", "completed"):
            raise ApiError(400, 20001, f"Invalid Status {status!r}: canceled or completed")
        if call.final:
            raise ApiError(400, 21220, "Call is not in-progress. Cannot redirect.")
        if "StatusCallback" in fields:
            call.status_callback = fields["StatusCallback"]
        if "TimeLimit" in fields:
            self.set_time_limit(call, int(fields["TimeLimit"]))
        if status == "canceled":
            self.cancel(call)  # an answered call is left as it is, with a 200
        elif status == "completed":
            self.hang_up(call)
        elif url or twiml:
            if call.status != "in-progress":
                raise ApiError(400, 21220, "Call is not in-progress. Cannot redirect.")
            self.redirect(call, url=url, twiml=twiml)
        return web.json_response(call.resource())


def _instant(value: str | None) -> float | None:
    """A `StartTime>` filter (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`) as epoch seconds."""
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ApiError(400, 20001, f"Invalid StartTime {value!r}")


def _strings(form: MultiDictProxy[Any]) -> dict[str, str]:
    """The form's fields, last value of each (files are not part of this API)."""
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _check_ints(fields: dict[str, str]) -> None:
    for name in _INT_FIELDS:
        if name in fields and not fields[name].lstrip("-").isdigit():
            raise ApiError(400, 20001, f"{name} must be an integer, not {fields[name]!r}")
