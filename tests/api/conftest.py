"""An API client against the real app: a real database, the simulated carrier on a fake
clock, the engine driven by the test (`api.tick()`), bearer tokens for each role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dialer.api.app import create_app
from dialer.api.keys import ACCOUNTS, RUNTIME
from dialer.channels.maildir import MaildirEmail
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.config import Settings
from dialer.runtime import Runtime
from tests.harness import MONDAY_10_NY
from tests.recording import RecordingVoice

BOOTSTRAP = "test-bootstrap-secret-0123456789"


@dataclass
class Api:
    client: TestClient[Any, Any]
    clock: FakeClock
    sim: SimulatedVoice
    voice: RecordingVoice
    tokens: dict[str, str] = field(default_factory=dict)

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

    async def tick(self) -> Any:
        return await self.runtime.engine.tick()

    async def campaign(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "API campaign",
            "sequence": [
                {"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 60},
                {"channel": "email", "delay_seconds": 3600, "subject": "Hi", "body": "Hello"},
            ],
            "caller_ids": ["+14155550100"],
            "sender": {"email": "sales@example.com", "name": "Sales"},
            "pacing": {"mode": "agentless", "agentless_capacity": 5, "calls_per_second": 50},
        }
        body.update(overrides)
        status, out = await self.call("POST", "/api/v1/campaigns", json=body)
        assert status == 201, out
        return dict(out)


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], tmp_path: Path
) -> AsyncIterator[ApiFactory]:
    async def make(db_url: str | None = None, profile: SimProfile | None = None) -> Api:
        clock = FakeClock(MONDAY_10_NY)
        sim = SimulatedVoice(clock, profile or SimProfile(), seed=3)
        voice = RecordingVoice(sim)
        settings = Settings(
            database_url=db_url or f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
            bootstrap_token=BOOTSTRAP,  # type: ignore[arg-type]
            worker_id="api-test",
        )
        app = create_app(
            settings,
            clock=clock,
            voice=voice,
            email=MaildirEmail(tmp_path / "maildir", clock),
            run_engine=False,
        )
        client = await aiohttp_client(app)
        api = Api(client, clock, sim, voice, {"admin": BOOTSTRAP})
        accounts = client.app[ACCOUNTS]
        for role in ("supervisor", "viewer"):
            api.tokens[role], _ = await accounts.create_token(role, name=f"{role}-test")
        await client.app[RUNTIME].service.agents.create("Agent One", agent_id="a1")
        api.tokens["agent"], _ = await accounts.create_token("agent", agent_id="a1")
        return api

    yield make


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    return await make_api()
