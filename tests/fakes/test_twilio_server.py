"""The fake Twilio, driven through the real `twilio` SDK, posting to a real receiver.

Time is a `FakeClock`: `clock.advance` plays the calls; nothing here sleeps.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from dialer.channels.twilio import TwilioHttpClient
from dialer.clock import FakeClock
from tests.fakes.twilio_server import FakeTwilio

ACCOUNT = "AC" + "1" * 32
TOKEN = "secret-token"
CALLER = "+15550009999"
EVERY_EVENT = ["initiated", "ringing", "answered", "completed"]


@dataclass
class Received:
    path: str
    url: str
    params: dict[str, str]
    valid: bool


@dataclass
class Receiver:
    """Our side of the webhooks: checks every signature, answers TwiML per number."""

    token: str
    twiml: dict[str, str] = field(default_factory=dict)  # To -> TwiML; default joins a room
    received: list[Received] = field(default_factory=list)
    base_url: str = ""
    voice_status: int = 200
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{kind}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return self.base_url + path

    async def _handle(self, request: web.Request) -> web.Response:
        params = {key: str(value) for key, value in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        valid = RequestValidator(self.token).validate(str(request.url), params, signature)
        self.received.append(Received(request.path, str(request.url), params, valid))
        if request.path != "/voice":
            return web.Response(text="")
        if self.voice_status != 200:
            return web.Response(status=self.voice_status)
        room = f"<Response><Dial><Conference>{params['CallSid']}</Conference></Dial></Response>"
        return web.Response(text=self.twiml.get(params["To"], room), content_type="text/xml")

    def statuses(self, sid: str) -> list[str]:
        return [
            received.params["CallStatus"]
            for received in self.received
            if received.path == "/status" and received.params["CallSid"] == sid
        ]


@dataclass
class Rig:
    clock: FakeClock
    fake: FakeTwilio
    receiver: Receiver
    client: Any  # twilio.rest.Client

    async def dial(self, to: str, **kwargs: Any) -> Any:
        options: dict[str, Any] = {
            "url": self.receiver.url("/voice"),
            "status_callback": self.receiver.url("/status?attempt=a1&x=%20y"),
            "status_callback_event": EVERY_EVENT,
        }
        return await self.client.calls.create_async(to=to, from_=CALLER, **(options | kwargs))


@asynccontextmanager
async def rig(receiver_token: str = TOKEN, **options: Any) -> AsyncIterator[Rig]:
    clock = FakeClock()
    fake = FakeTwilio(clock, account_sid=ACCOUNT, auth_token=TOKEN, **options)
    receiver = Receiver(receiver_token)
    base_url = await fake.start()
    await receiver.start()
    http = TwilioHttpClient(api_base=base_url)
    try:
        yield Rig(clock, fake, receiver, Client(ACCOUNT, TOKEN, http_client=http))
    finally:
        await http.close()
        await fake.close()
        await receiver.close()
        await clock.aclose()


async def test_create_fetch_and_list_through_the_sdk() -> None:
    async with rig() as r:
        created = await r.dial("+15550000001", timeout=20, machine_detection="Enable")
        assert re.fullmatch(r"CA[0-9a-f]{32}", created.sid)
        assert (created.status, created.to, created._from) == ("queued", "+15550000001", CALLER)
        assert created.date_created == r.clock.utcnow().replace(microsecond=0)
        call = r.fake.calls[created.sid]
        assert call.params["Timeout"] == "20" and call.timeout == 20
        assert call.events == EVERY_EVENT
        await r.dial("+15550000002")
        await r.dial("+15550000003")

        fetched = await r.client.calls(created.sid).fetch_async()
        assert fetched.sid == created.sid and fetched.status == "queued"
        only = await r.client.calls.list_async(to="+15550000002")
        assert [c.to for c in only] == ["+15550000002"]
        paged = await r.client.calls.list_async(page_size=2)  # follows next_page_uri
        assert len(paged) == 3 and paged[0].to == "+15550000003"  # newest first
        assert await r.client.calls.list_async(status="completed") == []
        since = datetime.fromtimestamp(r.clock.now() + 1, UTC)
        assert await r.client.calls.list_async(start_time_after=since) == []
        earlier = datetime.fromtimestamp(r.clock.now() - 1, UTC)
        assert len(await r.client.calls.list_async(start_time_after=earlier)) == 3


async def test_errors_have_twilio_shape() -> None:
    async with rig() as r:
        with pytest.raises(TwilioRestException) as missing:
            await r.dial("+15550000001", url=None)
        assert (missing.value.status, missing.value.code) == (400, 21205)
        with pytest.raises(TwilioRestException) as bad_to:
            await r.dial("0555 123")
        assert bad_to.value.code == 21211
        with pytest.raises(TwilioRestException) as unknown:
            await r.client.calls("CA" + "f" * 32).fetch_async()
        assert (unknown.value.status, unknown.value.code) == (404, 20404)
        assert r.fake.calls == {}
        sid = (await r.dial("+15550000001")).sid

        http = TwilioHttpClient(api_base=r.fake.base_url)
        try:
            with pytest.raises(TwilioRestException) as denied:
                await Client(ACCOUNT, "wrong", http_client=http).calls(sid).fetch_async()
        finally:
            await http.close()
        assert (denied.value.status, denied.value.code) == (401, 20003)
        async with aiohttp.ClientSession() as session:
            url = f"{r.fake.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
            async with session.get(url) as response:
                body = await response.json()
        assert response.status == 401
        assert set(body) == {"code", "message", "more_info", "status"}


async def test_calls_beyond_the_rate_wait_in_the_queue() -> None:
    async with rig(calls_per_second=2.0) as r:
        sids = [(await r.dial(f"+1555000000{i}")).sid for i in range(3)]
        calls = [r.fake.calls[sid] for sid in sids]
        await r.clock.advance(0)
        assert [c.status for c in calls] == ["ringing", "queued", "queued"]
        await r.clock.advance(0.49)
        assert calls[1].status == "queued"
        await r.clock.advance(0.01)
        assert [c.status for c in calls] == ["ringing", "ringing", "queued"]
        await r.clock.advance(0.5)
        start = r.clock.now() - 1.0
        assert [c.started_at for c in calls] == [start, start + 0.5, start + 1.0]


@pytest.mark.parametrize(
    ("outcome", "statuses", "duration", "ends_after"),
    [
        ("human", ["initiated", "ringing", "in-progress", "completed"], 30, 35.0),
        ("machine", ["initiated", "ringing", "in-progress", "completed"], 10, 15.0),
        ("busy", ["initiated", "ringing", "busy"], 0, 2.0),
        ("no-answer", ["initiated", "ringing", "no-answer"], 0, 25.0),
        ("failed", ["initiated", "failed"], 0, 0.0),
    ],
)
async def test_each_outcome_reports_its_statuses_in_order(
    outcome: str, statuses: list[str], duration: int, ends_after: float
) -> None:
    async with rig() as r:
        r.fake.script("+15550000001", outcome, ring_seconds=5, talk_seconds=30)
        sid = (await r.dial("+15550000001", timeout=25)).sid
        await r.clock.run_until_idle()
        call = r.fake.calls[sid]
        assert call.history == ["queued", *statuses]
        assert r.receiver.statuses(sid) == statuses
        sequence = [int(sent.params["SequenceNumber"]) for sent in r.fake.callbacks]
        assert sequence == list(range(len(statuses)))
        final = r.fake.callbacks[-1].params
        assert final["CallDuration"] == str(duration) == str(call.duration)
        assert final["CallbackSource"] == "call-progress-events"
        assert call.ended_at == call.created_at + ends_after
        assert r.fake.counts() == Counter({statuses[-1]: 1})
        fetched = await r.client.calls(sid).fetch_async()
        assert (fetched.status, fetched.duration) == (statuses[-1], str(duration))


async def test_ringing_longer_than_the_timeout_is_no_answer_at_the_timeout() -> None:
    async with rig() as r:
        r.fake.script("+15550000001", "human", ring_seconds=40)
        sid = (await r.dial("+15550000001", timeout=15)).sid
        await r.clock.run_until_idle()
        call = r.fake.calls[sid]
        assert call.status == "no-answer" and call.ended_at == call.created_at + 15


async def test_scripts_of_one_number_play_in_order_and_the_last_repeats() -> None:
    async with rig() as r:
        r.fake.script("+15550000001", "busy")
        r.fake.script("+15550000001", "no-answer")
        r.fake.default_outcome = "failed"
        for _ in range(3):
            await r.dial("+15550000001")
        await r.dial("+15550000002")
        await r.clock.run_until_idle()
        statuses = [c.status for c in r.fake.calls.values()]
        assert statuses == ["busy", "no-answer", "no-answer", "failed"]


async def test_cancel_of_a_queued_call_never_rings_and_frees_its_slot() -> None:
    async with rig(calls_per_second=1.0) as r:
        sids = [(await r.dial(f"+1555000000{i}")).sid for i in range(3)]
        await r.clock.advance(0)
        canceled = await r.client.calls(sids[1]).update_async(status="canceled")
        assert canceled.status == "canceled"
        await r.clock.advance(1)
        third = r.fake.calls[sids[2]]
        assert third.started_at == r.clock.now()  # it took the canceled call's place
        await r.clock.run_until_idle()
        assert r.fake.calls[sids[1]].history == ["queued", "canceled"]
        assert r.receiver.statuses(sids[1]) == ["canceled"]
        assert r.fake.counts() == Counter(completed=2, canceled=1)


async def test_cancel_ends_a_ringing_call_but_not_an_answered_one() -> None:
    async with rig() as r:
        ringing = (await r.dial("+15550000001")).sid
        answered = (await r.dial("+15550000002")).sid
        await r.clock.advance(1)
        assert (await r.client.calls(ringing).update_async(status="canceled")).status == "canceled"
        await r.clock.advance(5)
        assert r.fake.calls[answered].status == "in-progress"
        kept = await r.client.calls(answered).update_async(status="canceled")
        assert kept.status == "in-progress"  # Twilio: canceled does not affect a live call
        await r.clock.run_until_idle()
        assert r.fake.calls[answered].status == "completed"
        with pytest.raises(TwilioRestException) as ended:
            await r.client.calls(answered).update_async(status="completed")
        assert (ended.value.status, ended.value.code) == (400, 21220)


async def test_completed_hangs_up_a_live_call() -> None:
    async with rig() as r:
        sid = (await r.dial("+15550000001")).sid
        await r.clock.advance(5 + 12)
        hung_up = await r.client.calls(sid).update_async(status="completed")
        assert (hung_up.status, hung_up.duration) == ("completed", "12")
        await r.clock.run_until_idle()
        assert r.receiver.statuses(sid)[-1] == "completed"
        assert r.fake.callbacks[-1].params["CallDuration"] == "12"


async def test_twiml_say_then_hangup() -> None:
    async with rig() as r:
        say = "<Response><Say>" + "x" * 45 + "</Say><Hangup/><Say>never</Say></Response>"
        r.receiver.twiml["+15550000001"] = say
        sid = (await r.dial("+15550000001")).sid
        await r.clock.run_until_idle()
        call = r.fake.calls[sid]
        assert call.twiml == say and call.duration == 3  # 45 characters at 15 a second
        voice = [w for w in r.fake.webhooks if w.kind == "voice"]
        assert [w.params["CallStatus"] for w in voice] == ["in-progress"]


async def test_inline_twiml_and_a_redirect_of_a_live_call() -> None:
    async with rig() as r:
        pause = "<Response><Pause length='60'/></Response>"
        sid = (await r.dial("+15550000001", url=None, twiml=pause)).sid
        await r.clock.advance(5 + 10)
        assert r.fake.webhooks == []  # inline TwiML: nothing to fetch
        message = "<Response><Say>" + "y" * 30 + "</Say></Response>"
        await r.client.calls(sid).update_async(twiml=message)
        await r.clock.run_until_idle()
        call = r.fake.calls[sid]
        assert (call.status, call.twiml, call.duration) == ("completed", message, 12)

        sid = (await r.dial("+15550000002")).sid
        await r.clock.advance(5)
        r.receiver.twiml["+15550000002"] = "<Response><Hangup/></Response>"
        await r.client.calls(sid).update_async(url=r.receiver.url("/voice?next=1"))
        await r.clock.advance(0)
        assert r.fake.calls[sid].status == "completed"
        assert r.fake.webhooks[-1].url.endswith("/voice?next=1")


async def test_an_agent_leg_joins_the_customers_conference() -> None:
    async with rig() as r:
        r.fake.script("+15550000001", "human", ring_seconds=5, talk_seconds=40)
        customer = (await r.dial("+15550000001")).sid
        await r.clock.advance(5)
        assert r.fake.calls[customer].conference == customer
        join = f"<Response><Dial><Conference>{customer}</Conference></Dial></Response>"
        agent = (await r.dial("client:alice", url=None, twiml=join)).sid
        await r.clock.advance(1)
        assert r.fake.calls[agent].status == "in-progress"  # agents answer at once
        assert r.fake.calls[customer].agent_legs == ["client:alice"]
        await r.clock.run_until_idle()
        # The customer hangs up 40 s after joining; the conference ends and so does the agent.
        assert r.fake.calls[customer].duration == 40
        assert r.fake.calls[agent].status == "completed"
        assert r.fake.calls[agent].ended_at == r.fake.calls[customer].ended_at


async def test_an_agent_that_ends_the_conference_on_exit_ends_the_customers_call() -> None:
    async with rig() as r:
        customer = (await r.dial("+15550000001")).sid
        await r.clock.advance(5)
        room = f'<Conference endConferenceOnExit="true">{customer}</Conference>'
        agent = (
            await r.dial(
                "+15550000042", url=None, twiml=f"<Response><Dial>{room}</Dial></Response>"
            )
        ).sid
        await r.clock.advance(1 + 7)
        assert r.fake.calls[customer].agent_legs == ["+15550000042"]
        await r.client.calls(agent).update_async(status="completed")
        await r.clock.advance(0)
        assert r.fake.calls[customer].status == "completed"
        assert r.fake.calls[customer].duration == 8


async def test_time_limit_ends_a_live_call() -> None:
    async with rig() as r:
        sid = (await r.dial("+15550000001", time_limit=12)).sid
        await r.clock.run_until_idle()
        assert r.fake.calls[sid].duration == 12


async def test_dial_to_a_client_bridges() -> None:
    async with rig() as r:
        r.receiver.twiml["+15550000001"] = "<Response><Dial><Client>bob</Client></Dial></Response>"
        sid = (await r.dial("+15550000001")).sid
        await r.clock.run_until_idle()
        call = r.fake.calls[sid]
        assert (call.agent_legs, call.duration) == (["client:bob"], 30)


async def test_async_amd_posts_its_result_after_the_answer() -> None:
    async with rig() as r:
        r.fake.script("+15550000001", "machine")
        r.fake.script("+15550000002", "human")
        amd = {
            "machine_detection": "DetectMessageEnd",
            "async_amd": "true",
            "async_amd_status_callback": r.receiver.url("/amd"),
        }
        machine = (await r.dial("+15550000001", **amd)).sid
        human = (await r.dial("+15550000002", **amd)).sid
        await r.clock.advance(5 + 1 + 2)
        results = {w.call_sid: w for w in r.fake.webhooks if w.kind == "amd"}
        assert results[machine].params["AnsweredBy"] == "machine_end_beep"
        assert results[machine].at == (r.fake.calls[machine].answered_at or 0) + 2
        await r.clock.advance(1)
        assert results[human].params["AnsweredBy"] == "human"
        # Our side reacts to a machine by leaving a message.
        await r.client.calls(machine).update_async(twiml="<Response><Say>hi</Say></Response>")
        await r.clock.run_until_idle()
        assert r.fake.calls[machine].status == "completed"
        assert r.fake.callbacks[-1].params["AnsweredBy"] in ("machine_end_beep", "human")
        assert all("AnsweredBy" not in w.params for w in r.fake.webhooks if w.kind == "voice")


async def test_sync_amd_tells_the_voice_url_who_answered() -> None:
    async with rig() as r:
        r.fake.script("+15550000001", "machine")
        sid = (await r.dial("+15550000001", machine_detection="Enable")).sid
        await r.clock.run_until_idle()
        voice = next(w for w in r.fake.webhooks if w.kind == "voice")
        assert voice.params["AnsweredBy"] == "machine_start"
        assert voice.at == (r.fake.calls[sid].answered_at or 0) + 2


async def test_a_failing_voice_url_ends_the_call_with_an_application_error() -> None:
    async with rig() as r:
        r.receiver.voice_status = 500
        sid = (await r.dial("+15550000001")).sid
        await r.clock.run_until_idle()
        call = r.fake.calls[sid]
        assert (call.status, call.errors, call.duration) == ("completed", [11200], 0)


async def test_every_webhook_is_signed_over_the_exact_url() -> None:
    async with rig() as r:
        r.fake.script("+15550000002", "busy")
        for to in ("+15550000001", "+15550000002"):
            await r.dial(to)
        await r.clock.run_until_idle()
        assert len(r.receiver.received) == len(r.fake.callbacks) + len(r.fake.webhooks) == 4 + 1 + 3
        assert all(received.valid for received in r.receiver.received)
        first = r.fake.callbacks[0]
        assert first.url == r.receiver.url("/status?attempt=a1&x=%20y")
        assert first.signature == RequestValidator(TOKEN).compute_signature(first.url, first.params)
        assert all(sent.status == 200 for sent in r.fake.callbacks + r.fake.webhooks)


async def test_a_receiver_with_another_token_finds_the_signatures_invalid() -> None:
    async with rig(receiver_token="not-the-token") as r:
        await r.dial("+15550000001")
        await r.clock.run_until_idle()
        assert r.receiver.received and not any(received.valid for received in r.receiver.received)


async def _final_state(**options: Any) -> tuple[list[tuple[int, str]], Counter[str], Rig]:
    async with rig(seed=3, **options) as r:
        for i, outcome in enumerate(["human", "machine", "busy", "no-answer", "failed"] * 2):
            r.fake.script(f"+1555000000{i}", outcome)
            await r.dial(f"+1555000000{i}")
        await r.clock.run_until_idle()
        order = list(r.fake.calls)
        seen = [(order.index(c.call_sid), c.params["CallStatus"]) for c in r.fake.callbacks]
        return seen, r.fake.counts(), r


async def test_shuffled_and_duplicated_callbacks_carry_the_same_statuses() -> None:
    ordered, ordered_counts, _ = await _final_state()
    mixed, mixed_counts, r = await _final_state(shuffle=True, duplicate_rate=0.5)
    assert set(mixed) == set(ordered) and mixed_counts == ordered_counts
    assert len(mixed) > len(ordered)  # some were sent twice
    assert mixed != sorted(mixed, key=ordered.index)  # and some came out of order
    assert all(received.valid for received in r.receiver.received)
    sequences = Counter((c.call_sid, c.params["SequenceNumber"]) for c in r.fake.callbacks)
    assert max(sequences.values()) == 2  # a duplicate is the same callback again
