"""Twilio's webhooks: the signature is the authentication, and callbacks move attempts only
forward, whatever their order and however often they come.

The app runs with a spy voice channel (it records what the engine asks of the carrier and
reports nothing by itself), so every change here comes from a signed callback."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from dialer.channels.base import (
    CallEventSink,
    CallFate,
    CallQuery,
    DialRequest,
    FateKind,
)
from dialer.channels.maildir import MaildirEmail
from dialer.clock import FakeClock
from dialer.store.models import Attempt
from tests.api.conftest import AppClient
from tests.fakes.twilio_model import rfc2822
from tests.harness import MONDAY_10_NY, ClientFactory, app, leads, sqlite_url

TOKEN = "webhook-test-auth-token"
PUBLIC = "https://dialer.example.com"  # what Twilio calls; the test client's host differs


@dataclass
class SpyVoice:
    name: str = "twilio"
    hangups: list[tuple[str, str | None]] = field(default_factory=list)
    bridges: list[tuple[str, str]] = field(default_factory=list)

    def set_sink(self, sink: CallEventSink) -> None:
        pass

    async def dial(self, request: DialRequest) -> str:
        return f"CA{int(request.attempt_id):032d}"

    async def cancel(self, carrier_id: str) -> bool:
        return False

    async def bridge(self, carrier_id: str, agent_id: str) -> None:
        self.bridges.append((carrier_id, agent_id))

    async def hangup(self, carrier_id: str, *, message: str | None = None) -> None:
        self.hangups.append((carrier_id, message))

    async def lookup(self, query: CallQuery) -> CallFate:
        return CallFate(FateKind.UNKNOWN)

    async def close(self) -> None:
        pass


@dataclass
class Hooks(AppClient):
    voice: SpyVoice
    campaign: str = ""
    attempts: list[int] = field(default_factory=list)

    async def post(
        self,
        kind: str,
        attempt: int | str,
        params: dict[str, str],
        *,
        token: str = TOKEN,
        signed_url: str | None = None,
        signature: str | None = None,
    ) -> tuple[int, str]:
        path = f"/webhooks/twilio/{kind}?{urlencode({'attempt': attempt})}"
        if signature is None:
            signature = RequestValidator(token).compute_signature(
                signed_url or PUBLIC + path, params
            )
        headers = {"X-Twilio-Signature": signature} if signature else {}
        resp = await self.client.post(path, data=params, headers=headers)
        return resp.status, await resp.text()

    async def status(self, attempt: int, call_status: str, at: int = 0, **extra: str) -> int:
        params = {"CallSid": sid(attempt), "CallStatus": call_status, **extra}
        params["Timestamp"] = rfc2822(MONDAY_10_NY + at)
        code, _ = await self.post("status", attempt, params)
        return code

    async def attempt(self, attempt_id: int) -> Attempt:
        async with self.runtime.db.session() as s:
            a = await s.get(Attempt, attempt_id)
            assert a is not None
            s.expunge(a)
            return a

    async def stats(self) -> dict[str, Any]:
        resp = await self.client.get(
            f"/api/v1/campaigns/{self.campaign}/stats", headers=self.auth()
        )
        assert resp.status == 200
        calls: dict[str, Any] = (await resp.json())["calls"]
        return calls


def sid(attempt: int) -> str:
    return f"CA{attempt:032d}"


@pytest.fixture
async def hooks(aiohttp_client: ClientFactory, tmp_path: Path) -> Hooks:
    clock = FakeClock(MONDAY_10_NY)
    voice = SpyVoice()
    dialer = app(
        sqlite_url(tmp_path, "hooks"),
        "hooks",
        clock,
        email=MaildirEmail(tmp_path / "maildir", clock),
        voice=voice,
        twilio_auth_token=TOKEN,
        public_base_url=PUBLIC + "/",
    )
    h = Hooks(await aiohttp_client(dialer), clock, voice)
    service = h.runtime.service
    body = {
        "name": "Webhooks",
        "sequence": [{"channel": "voice", "max_attempts": 1}],
        "caller_ids": ["+14155550100"],
        "pacing": {"mode": "agentless", "agentless_capacity": 30, "calls_per_second": 100},
    }
    c = await service.create_campaign(body, actor="admin:test")
    h.campaign = c.id
    await service.leads.add(c.id, leads(25))
    await service.start(c.id, actor="admin:test")
    await h.tick()
    async with h.runtime.db.session() as s:
        h.attempts = sorted((await s.scalars(select(Attempt.id))).all())
    assert len(h.attempts) == 25
    return h


async def test_missing_or_bad_signature_is_403_and_changes_nothing(hooks: Hooks) -> None:
    attempt = hooks.attempts[0]
    params = {"CallSid": sid(attempt), "CallStatus": "completed", "CallDuration": "30"}
    other = hooks.attempts[1]
    bad = [
        {"signature": ""},  # missing
        {"signature": "bm90IGEgc2lnbmF0dXJl"},  # not ours
        {"token": "someone-elses-token"},
        {"signed_url": f"http://127.0.0.1:8080/webhooks/twilio/status?attempt={attempt}"},
        {"signed_url": f"{PUBLIC}/webhooks/twilio/status?attempt={other}"},  # replayed
    ]
    before = await hooks.attempt(attempt)
    for kind in ("status", "amd", "voice"):
        for case in bad:
            status, text = await hooks.post(kind, attempt, params, **case)  # type: ignore[arg-type]
            assert status == 403, (kind, case)
            assert '"code": "bad_signature"' in text
    # A signed body that was tampered with on the way.
    signature = RequestValidator(TOKEN).compute_signature(
        f"{PUBLIC}/webhooks/twilio/status?attempt={attempt}", params
    )
    status, _ = await hooks.post(
        "status", attempt, params | {"CallStatus": "busy"}, signature=signature
    )
    assert status == 403
    after = await hooks.attempt(attempt)
    assert (after.status, after.history, after.rang) == (before.status, before.history, False)
    assert (await hooks.stats())["received"] == 0
    assert hooks.voice.hangups == [] and hooks.voice.bridges == []


async def test_signed_status_callbacks_move_the_attempt_and_duplicates_are_noops(
    hooks: Hooks,
) -> None:
    attempt = hooks.attempts[0]
    assert (await hooks.attempt(attempt)).status == "queued"
    assert await hooks.status(attempt, "ringing", at=1) == 204
    a = await hooks.attempt(attempt)
    assert (a.status, a.rang, a.carrier_id) == ("ringing", True, sid(attempt))
    for _ in range(3):
        assert await hooks.status(attempt, "ringing", at=1) == 204
    assert await hooks.status(attempt, "initiated", at=0) == 204  # late: ignored
    a = await hooks.attempt(attempt)
    assert a.status == "ringing" and [h["status"] for h in a.history][-1] == "ringing"
    assert len(a.history) == 3  # created, queued, ringing
    assert (await hooks.stats())["received"] == 1

    assert await hooks.status(attempt, "no-answer", at=20) == 204
    assert await hooks.status(attempt, "no-answer", at=20) == 204
    a = await hooks.attempt(attempt)
    assert a.status == "no_answer" and len(a.history) == 4
    stats = await hooks.stats()
    assert (stats["received"], stats["answered"], stats["in_flight"]) == (1, 0, 24)


ORDERED = [
    ("initiated", 0, {}),
    ("ringing", 1, {}),
    ("in-progress", 6, {}),
    ("completed", 36, {"CallDuration": "30", "AnsweredBy": "human"}),
]


async def test_any_order_with_duplicates_gives_the_ordered_final_state(hooks: Hooks) -> None:
    orders = [ORDERED, *itertools.permutations(ORDERED)]  # the first is the reference
    for attempt, order in zip(hooks.attempts, orders, strict=False):
        for call_status, at, extra in [*order, order[0]]:  # and one duplicate
            assert await hooks.status(attempt, call_status, at, **extra) == 204

    def final(a: Attempt) -> tuple[Any, ...]:
        return (a.status, a.rang, a.answered_by, a.answered_at, a.duration, a.ended_at)

    reference = final(await hooks.attempt(hooks.attempts[0]))
    assert reference == ("completed", True, "human", MONDAY_10_NY + 6, 30.0, MONDAY_10_NY + 36)
    for attempt in hooks.attempts[1:]:
        assert final(await hooks.attempt(attempt)) == reference
    stats = await hooks.stats()
    assert (stats["received"], stats["answered"], stats["in_flight"]) == (25, 25, 0)


async def test_a_late_ringing_still_counts_the_call_as_received(hooks: Hooks) -> None:
    attempt = hooks.attempts[0]
    assert await hooks.status(attempt, "busy", at=3) == 204
    assert await hooks.status(attempt, "ringing", at=1) == 204
    a = await hooks.attempt(attempt)
    assert (a.status, a.rang) == ("busy", True)
    assert (await hooks.stats())["received"] == 1


async def test_amd_machine_after_the_answer_gets_the_message(hooks: Hooks) -> None:
    attempt, human = hooks.attempts[:2]
    assert await hooks.status(attempt, "in-progress", at=6) == 204
    assert (await hooks.attempt(attempt)).answered_by == "unknown"
    amd = {"CallSid": sid(attempt), "AnsweredBy": "machine_end_beep"}
    assert (await hooks.post("amd", attempt, amd))[0] == 204
    assert (await hooks.post("amd", attempt, amd))[0] == 204  # once only
    assert (await hooks.attempt(attempt)).answered_by == "machine"
    message = hooks.runtime.engine.abandon_message
    assert hooks.voice.hangups == [(sid(attempt), message)]

    # An AMD result before any status: the call is answered, by a human.
    amd = {"CallSid": sid(human), "AnsweredBy": "human"}
    assert (await hooks.post("amd", human, amd))[0] == 204
    a = await hooks.attempt(human)
    assert (a.status, a.answered_by) == ("in_progress", "human")
    # Agentless: the person hears the campaign's message (docs/architecture.md §7.3).
    assert hooks.voice.hangups[1:] == [(sid(human), "This is a message from Webhooks. Goodbye.")]
    assert a.delivered


async def test_voice_webhook_answers_with_the_conference_or_the_message(hooks: Hooks) -> None:
    attempt = hooks.attempts[0]
    params = {"CallSid": sid(attempt), "CallStatus": "in-progress"}
    status, text = await hooks.post("voice", attempt, params)
    assert status == 200
    conference = ET.fromstring(text).find("./Dial/Conference")
    assert conference is not None and conference.text == f"dialer-{sid(attempt)}"

    message = hooks.runtime.engine.abandon_message
    unknown = {"CallSid": "CA" + "9" * 32, "CallStatus": "in-progress"}
    for target, form in ((999_999, unknown), (hooks.attempts[1], unknown), ("x", unknown)):
        status, text = await hooks.post("voice", target, form)
        assert status == 200
        assert [(v.tag, v.text) for v in ET.fromstring(text)] == [
            ("Say", message),
            ("Hangup", None),
        ]


async def test_callbacks_for_unknown_attempts_or_other_calls_are_ignored(hooks: Hooks) -> None:
    attempt = hooks.attempts[0]
    stranger = {"CallSid": "CA" + "7" * 32, "CallStatus": "completed", "CallDuration": "9"}
    assert (await hooks.post("status", 999_999, stranger))[0] == 200
    assert (await hooks.post("status", "", stranger))[0] == 200
    assert (await hooks.post("status", attempt, stranger))[0] == 200  # not this attempt's call
    assert (await hooks.post("amd", attempt, stranger | {"AnsweredBy": "human"}))[0] == 200
    odd = {"CallSid": sid(attempt), "CallStatus": "teleported"}
    assert (await hooks.post("status", attempt, odd))[0] == 200
    assert (await hooks.attempt(attempt)).status == "queued"
