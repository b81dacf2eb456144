"""An API client against the real app: a real database, the simulated carrier on a fake
clock, the engine driven by the test (`api.tick()`), bearer tokens for each role.

The world (clock, carrier, Maildir, app) is tests/harness.py's; `AppClient` is what every
HTTP rig here shares (this `Api`, the Twilio rigs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dialer.api.keys import ACCOUNTS, RUNTIME
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.runtime import Runtime
from tests.harness import BOOTSTRAP, ClientFactory, Driver, app, campaign_body, sqlite_url, world
from tests.recording import RecordingVoice

__all__ = ["BOOTSTRAP", "Api", "ApiFactory", "AppClient", "ClientFactory", "api", "make_api"]


@dataclass
class AppClient(Driver):
    """The app behind `client` on `clock`; requests carry a role's bearer token."""

    client: TestClient[Any, Any]
    clock: FakeClock
    tokens: dict[str, str] = field(default_factory=lambda: {"admin": BOOTSTRAP}, kw_only=True)

    @property
    def runtime(self) -> Runtime:
        return self.client.app[RUNTIME]

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def call(
        self, method: str, path: str, role: str | None = "admin", **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers.update(self.auth(role))
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


@dataclass
class Api(AppClient):
    sim: SimulatedVoice
    voice: RecordingVoice

    async def campaign(self, **overrides: Any) -> dict[str, Any]:
        pacing = {"mode": "agentless", "agentless_capacity": 5, "calls_per_second": 50}
        body = campaign_body(
            "API campaign", {"subject": "Hi", "body": "Hello"}, overrides, pacing=pacing
        )
        status, out = await self.call("POST", "/api/v1/campaigns", json=body)
        assert status == 201, out
        return dict(out)


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(aiohttp_client: ClientFactory, tmp_path: Path) -> AsyncIterator[ApiFactory]:
    async def make(db_url: str | None = None, profile: SimProfile | None = None) -> Api:
        w = world(tmp_path, profile=profile, seed=3)
        db_url = db_url or sqlite_url(tmp_path, "api")
        client = await aiohttp_client(
            app(db_url, "api-test", w.clock, voice=w.voice, email=w.email)
        )
        api = Api(client, w.clock, w.sim, w.voice)
        accounts = client.app[ACCOUNTS]
        for role in ("supervisor", "viewer"):
            api.tokens[role], _ = await accounts.create_token(role, name=f"{role}-test")
        await api.service.agents.create("Agent One", agent_id="a1")
        api.tokens["agent"], _ = await accounts.create_token("agent", agent_id="a1")
        return api

    yield make


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    return await make_api()
