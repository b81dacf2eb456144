"""The app under fuzz: the real app on a real database (SQLite or PostgreSQL), a fake clock,
a spy carrier that dials instantly and reports nothing (every change to a call comes from a
signed webhook), a Twilio auth token so webhooks can be signed, and seeded objects whose ids
the fuzzer mixes with hostile ones: campaigns in several states, leads, agents, API tokens,
attempts with their CallSids, unsubscribe tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yarl
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from dialer.api.docs import Doc, doc_of
from dialer.api.keys import ACCOUNTS, RUNTIME
from dialer.channels.base import CallEventSink, CallFate, CallQuery, DialRequest, FateKind
from dialer.channels.maildir import MaildirEmail
from dialer.clock import FakeClock
from dialer.runtime import Runtime
from dialer.store.models import Attempt
from tests.harness import ADMIN, BOOTSTRAP, MONDAY_10_NY, ClientFactory, app, leads, sqlite_url

TWILIO_TOKEN = "fuzz-twilio-auth-token"
PUBLIC = "https://dialer.example.com"
AUTH = {"Authorization": f"Bearer {BOOTSTRAP}"}


@dataclass
class SpyVoice:
    """Dials at once (a CallSid from the attempt id), reports nothing, ends nothing."""

    name: str = "twilio"

    def set_sink(self, sink: CallEventSink) -> None:
        pass

    async def dial(self, request: DialRequest) -> str:
        return f"CA{int(request.attempt_id):032d}"

    async def cancel(self, carrier_id: str) -> bool:
        return False

    async def bridge(self, carrier_id: str, agent_id: str) -> None:
        pass

    async def hangup(self, carrier_id: str, *, message: str | None = None) -> None:
        pass

    async def lookup(self, query: CallQuery) -> CallFate:
        return CallFate(FateKind.UNKNOWN)

    async def close(self) -> None:
        pass


def route_id(route: web.AbstractRoute) -> str:
    assert route.resource is not None
    return f"{route.method} {route.resource.canonical}"


def routes_of(application: web.Application) -> list[web.AbstractRoute]:
    """Every route the router serves (aiohttp's implicit HEAD twins aside)."""
    return [
        r
        for r in application.router.routes()
        if r.method not in ("HEAD", "*") and r.resource is not None
    ]


@dataclass
class Rig:
    client: TestClient[Any, Any]
    clock: FakeClock
    pools: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> real values
    sids: dict[str, str] = field(default_factory=dict)  # attempt id -> its CallSid

    @property
    def runtime(self) -> Runtime:
        rt: Runtime = self.client.app[RUNTIME]
        return rt

    @property
    def base(self) -> str:
        return str(self.client.server.make_url("")).rstrip("/")

    def url(self, path: str, query: str) -> yarl.URL:
        """The URL exactly as written: already percent-encoded, never re-quoted."""
        return yarl.URL(f"{self.base}{path}{'?' + query if query else ''}", encoded=True)

    def signature(self, url: yarl.URL, form: dict[str, str]) -> str | None:
        """What Twilio would sign for this URL and form (None if it cannot be encoded)."""
        try:
            return RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + url.raw_path_qs, form)
        except UnicodeError:
            return None


async def make_rig(aiohttp_client: ClientFactory, tmp_path: Path, db_url: str | None) -> Rig:
    clock = FakeClock(MONDAY_10_NY)
    application = app(
        db_url or sqlite_url(tmp_path, "fuzz"),
        "fuzz",
        clock,
        email=MaildirEmail(tmp_path / "maildir", clock),
        voice=SpyVoice(),
        twilio_auth_token=TWILIO_TOKEN,
        public_base_url=PUBLIC,
    )
    rig = Rig(await aiohttp_client(application), clock)
    await seed(rig)
    return rig


async def seed(rig: Rig) -> None:
    service = rig.runtime.service
    accounts = rig.client.app[ACCOUNTS]
    for agent_id in ("a1", "a2"):
        await service.agents.create(agent_id.upper(), agent_id=agent_id)
    await accounts.create_user("fuzzer", "fuzzer-password-1", "supervisor")
    tokens = [(await accounts.create_token("viewer", name="fuzz"))[1].id]
    body = {
        "name": "Fuzz",
        "sequence": [
            {"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 60},
            {"channel": "email", "delay_seconds": 3600, "subject": "Hi", "body": "Hello"},
        ],
        "caller_ids": ["+14155550100"],
        "sender": {"email": "sales@example.com", "name": "Sales"},
        "pacing": {"mode": "agentless", "agentless_capacity": 10, "calls_per_second": 100},
    }
    ids = []
    for i in range(4):
        c = await service.create_campaign({**body, "name": f"Fuzz {i}"}, actor=ADMIN)
        await service.leads.add(c.id, leads(4, start=10 * i))
        ids.append(c.id)
    for cid in ids[1:]:
        await service.start(cid, actor=ADMIN)
    await rig.runtime.engine.tick()
    await service.pause(ids[2], actor=ADMIN)
    await service.terminate(ids[3], confirm=ids[3], actor=ADMIN)
    lead_ids: list[str] = []
    for cid in ids:
        items, _ = await service.leads.page(cid, limit=10)
        lead_ids += [str(lead.id) for lead in items]
    async with rig.runtime.db.session() as s:
        for a in (await s.scalars(select(Attempt))).all():
            rig.sids[str(a.id)] = a.carrier_id or f"CA{a.id:032d}"
    links = service.links
    rig.pools = {
        "campaigns": ids,
        "leads": lead_ids,
        "agents": ["a1", "a2"],
        "tokens": tokens,
        "token": [links.unsubscribe_token(int(x)) for x in lead_ids[:6]],
        "phone": ["+12125550001", "12125550002"],
        "filename": ["js/app.js", "css/app.css", "favicon.svg"],
        "attempt": list(rig.sids),
    }


# -- valid bodies, one per route that takes one: the fuzzer makes one place hostile ---------
CAMPAIGN = {
    "name": "Made by the fuzzer",
    "sequence": [
        {"channel": "voice", "delay_seconds": 0, "max_attempts": 2, "retry_delay_seconds": 60},
        {"channel": "email", "delay_seconds": 60, "subject": "Hi {first_name}", "body": "Hello"},
    ],
    "schedule": {
        "timezone": "America/New_York",
        "windows": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:00"}],
    },
    "pacing": {"mode": "progressive", "lines_per_agent": 1.0, "calls_per_second": 1.0},
    "caller_ids": ["+14155550100"],
    "sender": {"email": "sales@example.com", "name": "Sales"},
    "agent_ids": ["a1"],
    "resume_policy": "freeze",
    "wrap_up_seconds": 10,
    "custom": {"team": "north"},
}
LEAD = {
    "phone": "+12125559001",
    "email": "new@example.com",
    "first_name": "New",
    "last_name": "Lead",
    "company": "Acme",
    "timezone": "America/New_York",
    "custom": {"region": "west"},
}
BODIES: dict[str, Any] = {
    "PreviewIn": {"lead_id": 1},
    "LinkPatchIn": {"url": "https://example.com/new-target"},
    "LeadActionsIn": {
        "action": "pause",
        "filter": {"status": "in_progress", "q": "a"},
        "reason": "asked",
        "until": "2026-01-06T09:00:00+00:00",
    },
    "CampaignSpec": CAMPAIGN,
    "CampaignPatch": {"name": "Renamed", "wrap_up_seconds": 20, "agent_ids": ["a2"]},
    "AtIn": {"at": "2026-01-06T09:00:00+00:00"},
    "PauseIn": {"reason": "team meeting"},
    "TerminateIn": {"confirm": "c_000000000000"},
    "LeadsIn": {"leads": [LEAD, {**LEAD, "phone": "+12125559002", "email": "b@example.com"}]},
    "LeadPauseIn": {"reason": "asked", "until": "2026-01-06T09:00:00+00:00"},
    "LeadStopIn": {"reason": "asked"},
    "QualifyIn": {"scope": "company"},
    "AgentIn": {"name": "Fuzzed Agent", "id": "fz1"},
    "AgentStateIn": {"state": "available", "force": False, "reason": "back"},
    "DncIn": {"phones": ["+12125550101", "2125550102"], "reason": "asked"},
    "LoginIn": {"username": "fuzzer", "password": "fuzzer-password-1"},
    "UserIn": {"username": "fz", "password": "a-long-password", "role": "viewer"},
    "TokenIn": {"role": "agent", "name": "ci", "agent_id": "a1"},
}
CSV = "phone,email,first_name,Region\n+12125559101,c@example.com,Cy,North\n"
FORM = {
    "CallSid": "CA" + "0" * 32,
    "CallStatus": "completed",
    "CallDuration": "30",
    "AnsweredBy": "human",
    "Timestamp": "Mon, 05 Jan 2026 15:00:10 +0000",
    "ErrorCode": "31005",
}


def body_example(d: Doc | None) -> Any:
    """The valid body of a documented route (KeyError: a route's body has no example yet)."""
    if d is None or d.body is None:
        return None
    return BODIES[d.body.__name__]


def doc_for(route: web.AbstractRoute) -> Doc | None:
    return doc_of(route.handler)
