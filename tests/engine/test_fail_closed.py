"""A worker that lost contact with the control bus dispatches nothing (docs/architecture.md §4)."""

from __future__ import annotations

from pathlib import Path

from dialer.bus.memory import MemoryBus
from dialer.clock import FakeClock
from tests.harness import ADMIN, harness, leads


class SilentBus(MemoryBus):
    """The in-process bus, except that its last contact froze at a given time."""

    def __init__(self, clock: FakeClock, since: float) -> None:
        super().__init__(clock)
        self.since = since

    def last_contact(self) -> float:
        return self.since


async def test_no_dispatch_without_the_bus(tmp_path: Path) -> None:
    async with harness(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", tmp_path) as h:
        c = await h.campaign(
            sequence=[{"channel": "voice"}], pacing={"mode": "agentless", "agentless_capacity": 3}
        )
        await h.service.leads.add(c.id, leads(3))
        await h.service.start(c.id, actor=ADMIN)
        # Half a lease (60 s) without contact: fenced, before the registry gives up on us.
        h.rt.engine.d.bus = SilentBus(h.clock, since=h.clock.now() - 30.5)
        assert (await h.tick()).dispatched == 0
        assert h.voice.dials == []
        h.rt.engine.d.bus = SilentBus(h.clock, since=h.clock.now() - 29.5)
        assert (await h.tick()).dispatched == 1  # calls_per_second 1: one now
