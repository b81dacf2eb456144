"""The pause fence over whole pause/resume cycles and a graceful stop (docs/architecture.md
§4), driven the way the engine drives it: control messages from the bus
(`Fence.on_control`), views from the database (`Fence.see`), one `section` per hand-off of an
attempt claimed at some version. Each test fails on a mutant of dialer/engine/fence.py the
other tests let through (README, "Mutation testing")."""

from __future__ import annotations

import asyncio

from dialer.bus.base import ControlMessage
from dialer.engine.fence import Fence

CID = "c1"


async def hand_off(fence: Fence, version: int, sent: list[int]) -> None:
    """What the dispatcher does with an attempt claimed at `version`: hand it to the channel
    only inside an allowed section."""
    async with fence.section(CID, version) as allowed:
        if allowed:
            sent.append(version)


async def test_an_attempt_claimed_before_a_pause_is_not_sent_after_the_resume() -> None:
    """Claimed at version 1, its hand-off delayed (a slow tick, a full queue) until after
    a pause (2) and a resume (3): the pause already cancelled it and reported the campaign
    quiet, and the resume starts from the database, where the lead is due again. Letting the
    old attempt through because the campaign is running again would call the lead twice."""
    fence = Fence()
    await fence.on_control(ControlMessage(CID, "running", 1))
    sent: list[int] = []
    await hand_off(fence, 1, sent)
    assert sent == [1]

    await asyncio.wait_for(fence.on_control(ControlMessage(CID, "paused", 2)), 1)
    await asyncio.wait_for(fence.on_control(ControlMessage(CID, "running", 3)), 1)
    await hand_off(fence, 1, sent)  # the delayed hand-off, claimed under version 1
    assert sent == [1], "an attempt claimed before the pause went out after the resume"
    await hand_off(fence, 3, sent)  # claimed after the resume: goes
    assert sent == [1, 3]


async def test_a_hand_off_racing_a_pause_goes_before_the_pause_returns_or_not_at_all() -> None:
    """The check and the count happen with no await between them: a hand-off that passed
    its check is counted before a pause can look, so the pause waits for it. An await in
    between would let the pause find nothing in flight, return, and the call go out after."""
    fence = Fence()
    await fence.on_control(ControlMessage(CID, "running", 1))
    pause_returned = False
    seen_at_hand_off: list[bool] = []

    async def racing_hand_off() -> None:
        async with fence.section(CID, 1) as allowed:
            if allowed:
                seen_at_hand_off.append(pause_returned)

    task = asyncio.create_task(racing_hand_off())
    await asyncio.sleep(0)  # the hand-off starts first
    # Awaited directly, not in a task of its own: the pause runs as soon as the hand-off
    # yields, as the bus's control callback does.
    await fence.on_control(ControlMessage(CID, "paused", 2))
    pause_returned = True
    await asyncio.wait_for(task, 1)
    assert seen_at_hand_off in ([], [False]), "a hand-off went out after the pause returned"


async def test_a_late_message_of_an_older_version_changes_nothing() -> None:
    """The bus may deliver a resync's view after a newer message (docs/architecture.md §4):
    the fence keeps the newest version, whatever arrives last."""
    fence = Fence()
    await fence.on_control(ControlMessage(CID, "running", 3))
    fence.see(CID, "paused", 2)  # older: ignored
    sent: list[int] = []
    await hand_off(fence, 3, sent)
    assert sent == [3]
    await asyncio.wait_for(fence.on_control(ControlMessage(CID, "paused", 4)), 1)
    fence.see(CID, "running", 3)  # older: does not reopen the paused campaign
    await hand_off(fence, 3, sent)
    assert sent == [3]


async def test_close_stops_every_hand_off_and_waits_for_those_past_their_check() -> None:
    fence = Fence()
    await fence.on_control(ControlMessage(CID, "running", 1))
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def slow_hand_off() -> None:
        async with fence.section(CID, 1) as allowed:
            assert allowed
            inside.set()
            await leave.wait()

    task = asyncio.create_task(slow_hand_off())
    await inside.wait()
    closing = asyncio.create_task(fence.close())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not closing.done(), "close returned while a hand-off was past its check"
    sent: list[int] = []
    await hand_off(fence, 1, sent)  # the campaign runs at this version: only close refuses
    assert sent == []
    leave.set()
    await asyncio.wait_for(task, 1)
    await asyncio.wait_for(closing, 1)
    await hand_off(fence, 1, sent)
    assert sent == []


async def test_close_with_nothing_in_flight_returns_at_once() -> None:
    fence = Fence()
    await fence.on_control(ControlMessage(CID, "running", 1))
    await hand_off(fence, 1, [])  # a section opened and closed: nothing left open
    await asyncio.wait_for(fence.close(), 1)
