"""A whole dialer on a fake clock: real database, simulated carrier, Maildir email.

Tests drive it step by step: `tick()` runs one engine round, `advance(s)` moves virtual time
(running the carrier's timeline). Nothing sleeps; nothing is patched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialer.channels.maildir import MaildirEmail
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.config import Settings
from dialer.domain.states import AgentState
from dialer.runtime import Runtime
from tests.recording import RecordingVoice

ADMIN = "admin:test"


@dataclass
class Harness:
    rt: Runtime
    clock: FakeClock
    sim: SimulatedVoice
    voice: RecordingVoice
    email: MaildirEmail

    @property
    def service(self) -> Any:
        return self.rt.service

    async def tick(self) -> Any:
        return await self.rt.engine.tick()

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    async def run(self, seconds: float, step: float = 1.0) -> None:
        """Tick and advance for `seconds` of virtual time."""
        t = 0.0
        while t < seconds:
            await self.tick()
            await self.advance(step)
            t += step

    async def agents(self, *ids: str, state: AgentState = AgentState.AVAILABLE) -> None:
        for agent_id in ids:
            await self.service.agents.create(agent_id.upper(), agent_id=agent_id, state=state)

    async def campaign(self, **overrides: Any) -> Any:
        body: dict[str, Any] = {
            "name": "Test campaign",
            "sequence": [
                {"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 60},
                {
                    "channel": "email",
                    "delay_seconds": 3600,
                    "subject": "Hello {first_name}",
                    "body": "Hi {first_name} of {company}",
                },
            ],
            "caller_ids": ["+14155550100"],
            "sender": {"email": "sales@example.com", "name": "Sales"},
            "agent_ids": [],
            "wrap_up_seconds": 5,
        }
        body.update(overrides)
        return await self.service.create_campaign(body, actor=ADMIN)


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


# 2026-01-05 was a Monday; 15:00 UTC is 10:00 in New York: inside every calling window.
MONDAY_10_NY = 1_767_625_200.0


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
    clock = FakeClock(start)
    sim = SimulatedVoice(clock, profile or SimProfile(), seed=seed, time_scale=time_scale)
    async with open_runtime(db_url, tmp_path, clock, sim, **settings) as h:
        yield h


@asynccontextmanager
async def open_runtime(
    db_url: str,
    tmp_path: Path,
    clock: FakeClock,
    sim: SimulatedVoice,
    worker: str = "w1",
    **settings: Any,
) -> AsyncIterator[Harness]:
    """One worker process over a database and a carrier that both outlive it."""
    voice = RecordingVoice(sim)
    email = MaildirEmail(tmp_path / "maildir", clock)
    config = Settings(database_url=db_url, worker_id=worker, tick_seconds=1.0, **settings)
    async with Runtime.open(config, clock=clock, voice=voice, email=email, run_engine=False) as rt:
        yield Harness(rt, clock, sim, voice, email)
