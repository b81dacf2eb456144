"""The fence on its own (docs/architecture.md §4): a hand-off goes only for a running
campaign at exactly the version it was claimed under, and a control message returns only
once the sections past their check are done."""

from __future__ import annotations

import asyncio

from dialer.bus.base import ControlMessage
from dialer.engine.fence import Fence


def test_only_the_running_campaign_at_the_claimed_version_is_allowed() -> None:
    fence = Fence()
    assert not fence.allows("c1", 1)  # never seen: no
    fence.see("c1", "running", 2)
    assert fence.allows("c1", 2)
    assert not fence.allows("c1", 1)  # claimed under an older version (before a pause)
    assert not fence.allows("c1", 3)
    assert not fence.allows("c2", 2)
    fence.see("c1", "running", 1)  # views never move back
    assert fence.allows("c1", 2) and not fence.allows("c1", 1)
    fence.see("c1", "paused", 3)
    assert not fence.allows("c1", 3) and not fence.allows("c1", 2)
    fence.see("c1", "running", 4)
    fence.closed = True
    assert not fence.allows("c1", 4)


async def test_a_refused_section_holds_nothing_and_a_pause_waits_for_allowed_ones() -> None:
    fence = Fence()
    fence.see("c1", "running", 1)
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def hand_off() -> bool:
        async with fence.section("c1", 1) as allowed:
            inside.set()
            await leave.wait()
            return allowed

    task = asyncio.create_task(hand_off())
    await inside.wait()
    async with fence.section("c1", 0) as stale:
        assert stale is False
    pause = asyncio.create_task(fence.on_control(ControlMessage("c1", "paused", 2)))
    await asyncio.sleep(0.01)
    assert not pause.done(), "the pause returned while a hand-off was past its check"
    async with fence.section("c1", 1) as after:
        assert after is False  # the view moved first: no new section
    leave.set()
    assert await task is True
    await asyncio.wait_for(pause, 1)


async def test_resume_does_not_wait() -> None:
    fence = Fence()
    fence.see("c1", "paused", 2)
    await asyncio.wait_for(fence.on_control(ControlMessage("c1", "running", 3)), 1)
    assert fence.allows("c1", 3)
