"""The pause fence: after `Bus.publish` of a control message returns, no new attempt of
that campaign reaches a channel from this process (docs/architecture.md §4).

Every dispatch holds the campaign's section while it checks the campaign's version and
hands the attempt to the channel. A control message raises the version first (so any later
check fails), then waits for the sections already past their check: those attempts are the
ones "in flight" that the pause reports.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dialer.bus.base import ControlMessage
from dialer.domain.states import CampaignState


@dataclass(frozen=True, slots=True)
class View:
    state: str
    version: int


class Fence:
    def __init__(self) -> None:
        self._views: dict[str, View] = {}
        self._busy: defaultdict[str, int] = defaultdict(int)
        self._idle = asyncio.Condition()
        self.closed = False

    def see(self, campaign_id: str, state: str, version: int) -> None:
        """Record a campaign's state; views only ever move to a newer version."""
        view = self._views.get(campaign_id)
        if view is None or version > view.version:
            self._views[campaign_id] = View(state, version)

    def allows(self, campaign_id: str, version: int) -> bool:
        view = self._views.get(campaign_id)
        return (
            not self.closed
            and view is not None
            and view.state == CampaignState.RUNNING
            and view.version == version
        )

    @asynccontextmanager
    async def section(self, campaign_id: str, version: int) -> AsyncIterator[bool]:
        """Yields whether the dispatch may go ahead; an allowed one holds the section until
        it exits. A refused one holds nothing, so a pause never waits for work it stopped.
        (The check and the count happen with no await between them.)"""
        if not self.allows(campaign_id, version):
            yield False
            return
        self._busy[campaign_id] += 1
        try:
            yield True
        finally:
            async with self._idle:
                self._busy[campaign_id] -= 1
                if self._busy[campaign_id] == 0:
                    del self._busy[campaign_id]
                self._idle.notify_all()

    async def on_control(self, msg: ControlMessage) -> None:
        self.see(msg.campaign_id, msg.state, msg.version)
        if msg.state != CampaignState.RUNNING:
            async with self._idle:
                await self._idle.wait_for(lambda: self._busy.get(msg.campaign_id, 0) == 0)

    async def close(self) -> None:
        """Stop every dispatch (graceful stop) and wait for those past their check."""
        self.closed = True
        async with self._idle:
            await self._idle.wait_for(lambda: not self._busy)
