"""TwilioVoice through the real SDK against a recording Twilio on loopback: what each method
asks of Twilio, and how Twilio's failures come back (ChannelError, retryable or not)."""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dialer.channels.base import (
    NOT_PLACED,
    CallEvent,
    CallQuery,
    ChannelError,
    DialRequest,
    FateKind,
)
from dialer.channels.twilio import TwilioVoice
from dialer.clock import FakeClock
from dialer.config import Settings
from dialer.domain.states import AttemptStatus
from dialer.runtime import make_voice

SID = "AC" + "1" * 32
TOKEN = "test-auth-token"
PUBLIC = "https://dialer.example.com"


@dataclass
class Seen:
    method: str
    path: str
    form: dict[str, list[str]]
    auth: str
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorder:
    """Answers like Twilio's Calls API; `replies` (status, body) override the next answers."""

    seen: list[Seen] = field(default_factory=list)
    replies: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    delay: float = 0.0
    created: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        values: dict[str, list[str]] = {}
        for key, value in form.items():
            values.setdefault(key, []).append(str(value))
        self.seen.append(
            Seen(
                request.method,
                request.path,
                values,
                request.headers.get("Authorization", ""),
                dict(request.query),
            )
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.replies:
            status, body = self.replies.popleft()
            return web.json_response(body, status=status)
        if request.path.endswith("/Calls.json"):
            self.created += 1
            return web.json_response(call(f"CA{self.created:032d}", "queued"), status=201)
        return web.json_response(call(request.match_info["sid"], "in-progress"))

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]


def call(sid: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"sid": sid, "account_sid": SID, "status": status, "from": "+14155550100", **extra}


def error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"status": status, "code": code, "message": message, "more_info": ""}


@dataclass
class Rig:
    recorder: Recorder
    server: TestServer
    voice: TwilioVoice
    clock: FakeClock
    events: list[CallEvent]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    recorder = Recorder()
    app = web.Application()
    base = f"/2010-04-01/Accounts/{SID}"
    app.router.add_route("*", f"{base}/Calls.json", recorder.handle)
    app.router.add_route("*", base + "/Calls/{sid}.json", recorder.handle)
    server = TestServer(app)
    await server.start_server()
    clock = FakeClock()
    voice = TwilioVoice(
        clock,
        account_sid=SID,
        auth_token=TOKEN,
        public_base_url=PUBLIC + "/",
        api_base=str(server.make_url("/")),
        timeout=2.0,
    )
    events: list[CallEvent] = []

    async def sink(ev: CallEvent) -> None:
        events.append(ev)

    voice.set_sink(sink)
    try:
        yield Rig(recorder, server, voice, clock, events)
    finally:
        await voice.close()
        await server.close()


def request(attempt: str = "7", ring: int = 25, key: str = "c1:1:0:1") -> DialRequest:
    return DialRequest(attempt, key, "c1", "+12125550123", "+14155550100", ring)


async def test_dial_asks_for_callbacks_amd_ring_timeout_and_time_limit(rig: Rig) -> None:
    sid = await rig.voice.dial(request(ring=10))
    (seen,) = rig.recorder.seen
    assert seen.path == f"/2010-04-01/Accounts/{SID}/Calls.json"  # api_base rewrote the host
    assert seen.auth == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    form = {k: v[0] for k, v in seen.form.items()}
    assert form["To"] == "+12125550123" and form["From"] == "+14155550100"
    assert form["Url"] == f"{PUBLIC}/webhooks/twilio/voice?attempt=7"
    assert form["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/status?attempt=7"
    assert seen.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["StatusCallbackMethod"] == "POST" and form["Method"] == "POST"
    assert form["Timeout"] == "15"  # never less than 15 s of ringing
    assert form["MachineDetection"] == "DetectMessageEnd" and form["AsyncAmd"] == "true"
    assert form["AsyncAmdStatusCallback"] == f"{PUBLIC}/webhooks/twilio/amd?attempt=7"
    assert form["TimeLimit"] == "14400"
    assert sid == "CA" + "1".zfill(32)


def query(
    key: str = "c1:1:0:1", carrier_id: str | None = None, others: frozenset[str] = frozenset()
) -> CallQuery:
    return CallQuery("7", key, carrier_id, "+12125550123", "+14155550100", 1000.0, others)


async def test_dial_is_idempotent_per_key_and_lookup_asks_twilio(rig: Rig) -> None:
    first = await rig.voice.dial(request())
    assert await rig.voice.dial(request(attempt="8")) == first
    assert len(rig.recorder.seen) == 1
    rig.recorder.replies.append(
        (200, call(first, "completed", duration="31", answered_by="machine_end_beep"))
    )
    known = await rig.voice.lookup(query())
    assert known.kind is FateKind.KNOWN
    assert known.event == CallEvent(
        "7", first, AttemptStatus.COMPLETED, rig.clock.now(), "machine", 31.0, None
    )
    assert rig.recorder.seen[-1].path.endswith(f"/Calls/{first}.json")


async def test_lookup_after_a_restart_fetches_the_stored_call_sid(rig: Rig) -> None:
    """The per-process maps died with the process; the CallSid stored on the attempt
    is enough to fetch the call."""
    rig.recorder.replies.append((200, call("CA77", "ringing")))
    fate = await rig.voice.lookup(query(carrier_id="CA77"))
    assert fate.event is not None and (fate.event.carrier_id, fate.event.status) == (
        "CA77",
        AttemptStatus.RINGING,
    )
    rig.recorder.replies.append(error(404, 20404, "not found"))
    gone = await rig.voice.lookup(query(key="c2:2:0:1", carrier_id="CA404"))
    assert gone.kind is FateKind.UNKNOWN  # never "not placed": we had its CallSid


def listing(*calls: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"calls": list(calls), "next_page_uri": None, "page": 0, "page_size": 20}


async def test_lookup_without_a_call_sid_lists_the_calls_to_the_lead(rig: Rig) -> None:
    rig.recorder.replies.append(listing())
    assert await rig.voice.lookup(query()) == NOT_PLACED
    listed = rig.recorder.seen[-1]
    assert listed.method == "GET" and listed.path.endswith("/Calls.json")
    assert listed.query["To"] == "+12125550123" and listed.query["From"] == "+14155550100"
    assert "StartTime>" in listed.query

    # One call that is not another attempt's: that is ours.
    rig.recorder.replies.extend(
        [listing(call("CA1", "completed"), call("CA2", "busy")), (200, call("CA2", "busy"))]
    )
    fate = await rig.voice.lookup(query(key="c3:3:0:1", others=frozenset({"CA1"})))
    assert fate.event is not None and (fate.event.carrier_id, fate.event.status) == (
        "CA2",
        AttemptStatus.BUSY,
    )
    # Two candidates cannot be told apart: unknown, never a guess.
    rig.recorder.replies.append(listing(call("CA3", "completed"), call("CA4", "completed")))
    assert (await rig.voice.lookup(query(key="c4:4:0:1"))).kind is FateKind.UNKNOWN


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [
        (error(400, 21211, "The 'To' number +12125550123 is not a valid phone number."), False),
        (error(401, 20003, "Authenticate"), False),
        (error(429, 20429, "Too Many Requests"), True),
        (error(500, 20500, "Internal Server Error"), True),
        (error(503, 20503, "Service Unavailable"), True),
    ],
)
async def test_twilio_errors_become_channel_errors(
    rig: Rig, reply: tuple[int, dict[str, Any]], retryable: bool
) -> None:
    rig.recorder.replies.append(reply)
    with pytest.raises(ChannelError) as caught:
        await rig.voice.dial(request())
    assert caught.value.retryable is retryable
    assert str(reply[1]["code"]) in str(caught.value)
    assert "+12125550123" not in str(caught.value)  # the number is masked
    # A refused dial is not remembered: the same key may be dialled again.
    assert caught.value.unavailable is retryable  # 429 and 5xx: an outage, not an outcome
    rig.recorder.replies.append(listing())
    assert await rig.voice.lookup(query()) == NOT_PLACED


async def test_network_failure_and_timeout_are_retryable(rig: Rig) -> None:
    rig.recorder.delay = 5.0
    slow = TwilioVoice(
        rig.clock,
        account_sid=SID,
        auth_token=TOKEN,
        public_base_url=PUBLIC,
        api_base=str(rig.server.make_url("/")),
        timeout=0.2,
    )
    try:
        with pytest.raises(ChannelError) as caught:
            await slow.dial(request())
        # Timed out: an outage, and the call may have been placed before it did.
        assert caught.value.retryable and caught.value.unavailable
        assert caught.value.maybe_placed
    finally:
        await slow.close()
    rig.recorder.delay = 0.0
    await rig.server.close()  # nobody listens any more
    with pytest.raises(ChannelError) as caught:
        await rig.voice.dial(request())
    # Refused: an outage, and nothing reached Twilio.
    assert caught.value.unavailable and not caught.value.maybe_placed


async def test_cancel_only_calls_still_queued(rig: Rig) -> None:
    sid = await rig.voice.dial(request())
    rig.recorder.replies.extend([(200, call(sid, "queued")), (200, call(sid, "canceled"))])
    assert await rig.voice.cancel(sid) is True
    update = rig.recorder.posts()[-1]
    assert update.path.endswith(f"/Calls/{sid}.json") and update.form == {"Status": ["canceled"]}
    await rig.clock.advance(0)  # the report is delivered later, never from inside cancel()
    assert [(e.attempt_id, e.status) for e in rig.events] == [("7", AttemptStatus.CANCELED)]

    before = len(rig.recorder.seen)
    rig.recorder.replies.append((200, call(sid, "ringing")))
    assert await rig.voice.cancel(sid) is False  # ringing: never cut
    assert len(rig.recorder.seen) == before + 1 and rig.recorder.seen[-1].method == "GET"

    rig.recorder.replies.append(error(404, 20404, "not found"))
    assert await rig.voice.cancel("CA404") is False


async def test_hangup_plays_the_message_then_hangs_up(rig: Rig) -> None:
    await rig.voice.hangup("CA5", message="This is Acme & Co. Goodbye.")
    twiml = rig.recorder.posts()[-1].form["Twiml"][0]
    root = ET.fromstring(twiml)
    assert [(c.tag, c.text) for c in root] == [
        ("Say", "This is Acme & Co. Goodbye."),
        ("Hangup", None),
    ]
    await rig.voice.hangup("CA5")
    assert rig.recorder.posts()[-1].form == {"Status": ["completed"]}
    rig.recorder.replies.append(error(400, 21220, "Call is not in-progress"))
    await rig.voice.hangup("CA5", message="late")  # the call had ended: a no-op
    rig.recorder.replies.append(error(500, 20500, "oops"))
    with pytest.raises(ChannelError):
        await rig.voice.hangup("CA5")


async def test_bridge_dials_the_agent_into_the_attempts_conference(rig: Rig) -> None:
    sid = await rig.voice.dial(request())
    await rig.voice.bridge(sid, "a1")
    leg = rig.recorder.posts()[-1]
    assert leg.path.endswith("/Calls.json")
    assert leg.form["To"] == ["client:a1"] and leg.form["From"] == ["+14155550100"]
    conference = ET.fromstring(leg.form["Twiml"][0]).find("./Dial/Conference")
    assert conference is not None and conference.text == f"dialer-{sid}"
    assert conference.attrib["endConferenceOnExit"] == "true"


async def test_bridge_of_a_call_dialled_elsewhere_fetches_its_caller_id(rig: Rig) -> None:
    phone_leg = TwilioVoice(
        rig.clock,
        account_sid=SID,
        auth_token=TOKEN,
        public_base_url=PUBLIC,
        agent_leg="+1212555{agent_id}",
        api_base=str(rig.server.make_url("/")),
    )
    try:
        rig.recorder.replies.append((200, call("CA77", "in-progress", **{"from": "+14155550199"})))
        await phone_leg.bridge("CA77", "0042")
    finally:
        await phone_leg.close()
    fetch, leg = rig.recorder.seen[-2:]
    assert fetch.method == "GET" and fetch.path.endswith("/Calls/CA77.json")
    assert leg.form["To"] == ["+12125550042"] and leg.form["From"] == ["+14155550199"]


async def test_make_voice_picks_twilio_from_settings() -> None:
    clock = FakeClock()
    settings = Settings(
        voice_provider="twilio",
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,  # type: ignore[arg-type]
        twilio_calls_per_second=3.0,
    )
    voice = make_voice(settings, clock)
    try:
        assert isinstance(voice, TwilioVoice) and voice.name == "twilio"
    finally:
        await voice.close()
    with pytest.raises(ValueError, match="DIALER_TWILIO_ACCOUNT_SID"):
        make_voice(Settings(voice_provider="twilio"), clock)
    with pytest.raises(ValueError, match="simulated, twilio"):
        make_voice(Settings(voice_provider="carrier-pigeon"), clock)
