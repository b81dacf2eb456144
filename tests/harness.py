"""A whole dialer on a fake clock: real database, simulated carrier, Maildir email.

Tests drive it step by step: `tick()` runs one engine round, `advance(s)` moves virtual time
(running the carrier's timeline). Nothing sleeps; nothing is patched.

Every rig is built from the same parts: `world()` (the fake clock, the simulated carrier behind
a `RecordingVoice`, the Maildir), `settings()`, and either `harness()` (a Runtime in-process)
or `app()` (the HTTP app: tests/api/conftest.py's `Api`, the Twilio rigs, the CLI's server);
`Driver` is the stepping they share.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from dialer.api.app import create_app
from dialer.channels.base import VoiceChannel
from dialer.channels.maildir import MaildirEmail
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.config import Settings
from dialer.domain.states import AgentState
from dialer.runtime import Runtime
from tests.recording import RecordingVoice

ADMIN = "admin:test"
BOOTSTRAP = "test-bootstrap-secret-0123456789"

# The type of pytest-aiohttp's `aiohttp_client` fixture.
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

# 2026-01-05 was a Monday; 15:00 UTC is 10:00 in New York: inside every calling window.
MONDAY_10_NY = 1_767_625_200.0


def phone(i: int) -> str:
    # Valid US numbers in New York (212) — plain digits; lead-local time is New York's.
    return f"+1212555{i:04d}"


def leads(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "phone": phone(start + i),
            "email": f"lead{start + i}@example.com",
            "first_name": f"Lead{start + i}",
            "company": f"Co{(start + i) % 7}",
            "timezone": "America/New_York",
        }
        for i in range(n)
    ]


def campaign_body(
    name: str, email: dict[str, str], overrides: dict[str, Any], **defaults: Any
) -> dict[str, Any]:
    """A campaign `name`: a voice step (two tries a minute apart) from one caller id, then an
    `email` an hour later from one sender; then `defaults`, then the test's `overrides`."""
    return {
        "name": name,
        "sequence": [
            {"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 60},
            {"channel": "email", "delay_seconds": 3600, **email},
        ],
        "caller_ids": ["+14155550100"],
        "sender": {"email": "sales@example.com", "name": "Sales"},
        **defaults,
        **overrides,
    }


# --- The world: clock, carrier, mailbox, settings -----------------------------------------


@dataclass
class World:
    clock: FakeClock
    sim: SimulatedVoice
    voice: RecordingVoice
    email: MaildirEmail


def world(tmp_path: Path, **carrier_options: Any) -> World:
    """A fresh fake clock and simulated carrier (`carrier_options`: carrier()'s), with one
    worker's channels."""
    return worker_channels(tmp_path, *carrier(**carrier_options))


def carrier(
    *,
    profile: SimProfile | None = None,
    seed: int = 7,
    time_scale: float = 1.0,
    start: float = MONDAY_10_NY,
) -> tuple[FakeClock, SimulatedVoice]:
    clock = FakeClock(start)
    return clock, SimulatedVoice(clock, profile or SimProfile(), seed=seed, time_scale=time_scale)


def worker_channels(tmp_path: Path, clock: FakeClock, sim: SimulatedVoice) -> World:
    """One worker's channels over a clock and a carrier that outlive it (the Maildir is
    `tmp_path/maildir`, shared by every worker of the test)."""
    return World(clock, sim, RecordingVoice(sim), MaildirEmail(tmp_path / "maildir", clock))


def sqlite_url(tmp_path: Path, name: str) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"


def settings(db_url: str, worker: str, **overrides: Any) -> Settings:
    """The settings of a test worker (its engine is ticked by the test, never by itself)."""
    return Settings(database_url=db_url, worker_id=worker, tick_seconds=1.0, **overrides)


def app(
    db_url: str,
    worker: str,
    clock: FakeClock,
    *,
    email: MaildirEmail,
    voice: VoiceChannel | None = None,
    **overrides: Any,
) -> web.Application:
    """The HTTP app on `clock`, its engine driven by the test, BOOTSTRAP as the admin token
    (unless `overrides` says otherwise); `voice` None lets the settings choose the carrier."""
    config = settings(db_url, worker, **({"bootstrap_token": BOOTSTRAP} | overrides))
    return create_app(config, clock=clock, voice=voice, email=email, run_engine=False)


# --- Driving it ---------------------------------------------------------------------------


class Driver:
    """Steps a runtime's engine and its fake clock; subclasses give `clock` and `runtime`."""

    clock: FakeClock

    @property
    def runtime(self) -> Runtime:
        raise NotImplementedError

    @property
    def service(self) -> Any:
        return self.runtime.service

    async def tick(self) -> Any:
        return await self.runtime.engine.tick()

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    async def run(self, seconds: float, step: float = 1.0) -> None:
        """Tick and advance for `seconds` of virtual time."""
        t = 0.0
        while t < seconds:
            await self.tick()
            await self.advance(step)
            t += step


@dataclass
class Harness(World, Driver):
    rt: Runtime

    @property
    def runtime(self) -> Runtime:
        return self.rt

    async def agents(self, *ids: str, state: AgentState = AgentState.AVAILABLE) -> None:
        for agent_id in ids:
            await self.service.agents.create(agent_id.upper(), agent_id=agent_id, state=state)

    async def campaign(self, **overrides: Any) -> Any:
        email = {"subject": "Hello {first_name}", "body": "Hi {first_name} of {company}"}
        body = campaign_body("Test campaign", email, overrides, agent_ids=[], wrap_up_seconds=5)
        return await self.service.create_campaign(body, actor=ADMIN)


@asynccontextmanager
async def harness(
    db_url: str,
    tmp_path: Path,
    *,
    profile: SimProfile | None = None,
    seed: int = 7,
    time_scale: float = 1.0,
    start: float = MONDAY_10_NY,
    **settings: Any,
) -> AsyncIterator[Harness]:
    clock, sim = carrier(profile=profile, seed=seed, time_scale=time_scale, start=start)
    async with open_runtime(db_url, tmp_path, clock, sim, **settings) as h:
        yield h


@asynccontextmanager
async def open_runtime(
    db_url: str,
    tmp_path: Path,
    clock: FakeClock,
    sim: SimulatedVoice,
    worker: str = "w1",
    **overrides: Any,
) -> AsyncIterator[Harness]:
    """One worker process over a database and a carrier that both outlive it."""
    w = worker_channels(tmp_path, clock, sim)
    config = settings(db_url, worker, **overrides)
    async with Runtime.open(
        config, clock=clock, voice=w.voice, email=w.email, run_engine=False
    ) as rt:
        yield Harness(w.clock, w.sim, w.voice, w.email, rt)
