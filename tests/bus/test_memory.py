from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from dialer.bus import BusClosed, ControlMessage, Handler, MemoryBus, Unsubscribe, bus_from_url
from dialer.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000.0)


@pytest.fixture
def bus(clock: FakeClock) -> MemoryBus:
    return MemoryBus(clock)


def msg(version: int = 1, state: str = "paused") -> ControlMessage:
    return ControlMessage(campaign_id="c1", state=state, version=version)


def test_control_message_is_frozen() -> None:
    m = msg()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.version = 2  # type: ignore[misc]


async def test_publish_returns_after_every_handler_finished(bus: MemoryBus) -> None:
    seen: list[tuple[str, int]] = []

    def handler(name: str) -> Handler:
        async def handle(m: ControlMessage) -> None:
            await asyncio.sleep(0)  # a real await: the fence must wait for it
            seen.append((name, m.version))

        return handle

    bus.subscribe(handler("a"))
    bus.subscribe(handler("b"))
    await bus.publish(msg(version=7))
    assert seen == [("a", 7), ("b", 7)]


async def test_same_handler_twice_is_two_subscriptions(bus: MemoryBus) -> None:
    seen: list[int] = []

    async def handle(m: ControlMessage) -> None:
        seen.append(m.version)

    off = bus.subscribe(handle)
    bus.subscribe(handle)
    await bus.publish(msg(version=1))
    off()
    await bus.publish(msg(version=2))
    assert seen == [1, 1, 2]


async def test_unsubscribe_stops_delivery_and_is_idempotent(bus: MemoryBus) -> None:
    seen: list[int] = []

    async def handle(m: ControlMessage) -> None:
        seen.append(m.version)

    off = bus.subscribe(handle)
    await bus.publish(msg(version=1))
    off()
    off()
    await bus.publish(msg(version=2))
    assert seen == [1]


async def test_handler_may_unsubscribe_another_during_publish(bus: MemoryBus) -> None:
    seen: list[str] = []
    offs: list[Unsubscribe] = []

    async def first(m: ControlMessage) -> None:
        seen.append("first")
        offs[1]()

    async def second(m: ControlMessage) -> None:
        seen.append("second")

    offs.append(bus.subscribe(first))
    offs.append(bus.subscribe(second))
    await bus.publish(msg(version=1))  # delivered to the snapshot taken at publish time
    await bus.publish(msg(version=2))
    assert seen == ["first", "second", "first"]


async def test_failing_handler_does_not_hide_the_message_from_others(
    bus: MemoryBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def broken(m: ControlMessage) -> None:
        raise RuntimeError("engine broke")

    async def also_broken(m: ControlMessage) -> None:
        raise KeyError("later")

    async def fine(m: ControlMessage) -> None:
        seen.append("fine")

    bus.subscribe(broken)
    bus.subscribe(also_broken)
    bus.subscribe(fine)
    with caplog.at_level(logging.ERROR, logger="dialer.bus.memory"):
        with pytest.raises(RuntimeError, match="engine broke"):
            await bus.publish(msg())
    assert seen == ["fine"]
    assert [r.getMessage() for r in caplog.records] == ["bus.handler_failed"] * 2


async def test_publish_without_subscribers_is_fine(bus: MemoryBus) -> None:
    await bus.publish(msg(version=1))  # returns: nobody to wait for
    seen: list[int] = []

    async def handle(m: ControlMessage) -> None:
        seen.append(m.version)

    bus.subscribe(handle)
    await bus.publish(msg(version=2))
    assert seen == [2]  # nothing was kept for a later subscriber
    assert await bus.healthy()


async def test_take_grants_up_to_a_second_of_rate_at_once(bus: MemoryBus) -> None:
    assert await bus.take("cps:twilio", 2.0, 5) == 2  # a full bucket: one second's worth
    assert await bus.take("cps:twilio", 2.0, 5) == 0


async def test_take_refills_as_the_clock_moves(bus: MemoryBus, clock: FakeClock) -> None:
    assert await bus.take("k", 2.0, 2) == 2
    await clock.advance(0.5)
    assert await bus.take("k", 2.0, 5) == 1
    await clock.advance(10)
    assert await bus.take("k", 2.0, 5) == 2  # idle time does not build up a larger burst


async def test_take_below_one_per_second_grants_one_at_a_time(
    bus: MemoryBus, clock: FakeClock
) -> None:
    assert await bus.take("k", 0.5, 3) == 1
    await clock.advance(1)
    assert await bus.take("k", 0.5, 3) == 0
    await clock.advance(1)
    assert await bus.take("k", 0.5, 3) == 1


async def test_take_keys_are_independent(bus: MemoryBus) -> None:
    assert await bus.take("a", 1.0, 1) == 1
    assert await bus.take("b", 1.0, 1) == 1
    assert await bus.take("a", 1.0, 1) == 0


@pytest.mark.parametrize("rate", [0.0, -1.0])
async def test_take_rate_must_be_positive(bus: MemoryBus, rate: float) -> None:
    with pytest.raises(ValueError, match="rate_per_second"):
        await bus.take("k", rate, 1)


async def test_last_contact_is_now(bus: MemoryBus, clock: FakeClock) -> None:
    assert bus.last_contact() == 1_000.0
    await clock.advance(5)
    assert bus.last_contact() == 1_005.0


async def test_closed_bus_is_unhealthy_and_refuses_work(bus: MemoryBus) -> None:
    assert await bus.healthy()
    await bus.aclose()
    await bus.aclose()
    assert not await bus.healthy()
    with pytest.raises(BusClosed):
        await bus.publish(msg())

    async def handle(m: ControlMessage) -> None:
        pass

    with pytest.raises(BusClosed):
        bus.subscribe(handle)


def test_bus_from_url_memory(clock: FakeClock) -> None:
    assert isinstance(bus_from_url("memory://", clock), MemoryBus)


@pytest.mark.parametrize("url", ["kafka://broker", "", "127.0.0.1:6379"])
def test_bus_from_url_unknown_scheme(clock: FakeClock, url: str) -> None:
    with pytest.raises(ValueError, match="DIALER_BUS_URL"):
        bus_from_url(url, clock)
