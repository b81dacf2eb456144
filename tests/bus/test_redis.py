"""The Redis bus against a real Redis (docs/architecture.md §12.2): the pause fence across
processes (each bus here stands for one process), the registry, reconnects and the shared
rate limit."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from dialer.bus import ControlMessage, bus_from_url
from dialer.bus.base import BusUnavailable, worker_info
from dialer.bus.redis import RedisBus
from dialer.clock import SystemClock
from tests.conftest import free_port

pytestmark = pytest.mark.redis

Factory = Callable[..., RedisBus]


@pytest.fixture
async def buses(redis_url: str) -> AsyncIterator[Factory]:
    prefix = f"t{secrets.token_hex(4)}"
    made: list[RedisBus] = []

    def make(lease: float = 2.0) -> RedisBus:
        bus = RedisBus(redis_url, SystemClock(), lease_seconds=lease, prefix=prefix)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.aclose()


def msg(version: int, state: str = "paused") -> ControlMessage:
    return ControlMessage("c1", state, version)


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_publish_returns_after_every_worker_handled_it(buses: Factory) -> None:
    api, w1, w2 = buses(), buses(), buses()
    done: list[tuple[str, int]] = []
    release = asyncio.Event()

    def handler(name: str, slow: bool) -> Callable[[ControlMessage], object]:
        async def handle(m: ControlMessage) -> None:
            if slow:
                await release.wait()  # a hand-off past its check, still going
            done.append((name, m.version))

        return handle

    w1.subscribe(handler("w1", slow=False))  # type: ignore[arg-type]
    w2.subscribe(handler("w2", slow=True))  # type: ignore[arg-type]
    await w1.join(worker_info("w1", 0.0))
    await w2.join(worker_info("w2", 0.0))
    publish = asyncio.create_task(api.publish(msg(2)))
    await eventually(lambda: ("w1", 2) in done)
    await asyncio.sleep(0.1)
    assert not publish.done(), "returned before w2's hand-off was done"
    release.set()
    await asyncio.wait_for(publish, 5)
    assert sorted(done) == [("w1", 2), ("w2", 2)]
    assert {w["id"] for w in await api.workers()} == {"w1", "w2"}


async def test_a_dead_worker_stops_counting_when_its_heartbeat_expires(buses: Factory) -> None:
    api, w1 = buses(lease=1.0), buses(lease=1.0)
    never = asyncio.Event()

    async def stuck(_m: ControlMessage) -> None:
        await never.wait()

    w1.subscribe(stuck)
    await w1.join(worker_info("w1", 0.0))
    # The process freezes: its tasks stop, its registry entry is left to expire.
    for task in w1._tasks:
        task.cancel()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(api.publish(msg(3)), 5)
    assert loop.time() - started <= 1.5  # at most a lease (and a poll)
    assert await api.workers() == []


async def test_a_worker_out_of_touch_fences_before_its_heartbeat_expires(
    buses: Factory,
) -> None:
    w1 = buses(lease=1.0)
    await w1.join(worker_info("w1", 0.0))
    clock = SystemClock()
    await eventually(lambda: clock.now() - w1.last_contact() < 0.2)
    for task in w1._tasks:  # deaf and mute, as if Redis were unreachable
        task.cancel()
    await asyncio.sleep(0.6)
    assert clock.now() - w1.last_contact() > 0.5  # more than half a lease: fenced
    assert [w["id"] for w in await buses(lease=1.0).workers()] == ["w1"]  # still registered


async def test_missed_messages_are_replaced_by_the_database_after_a_reconnect(
    buses: Factory, redis_url: str
) -> None:
    """Pub/sub drops what is published while a subscriber is away: after it resubscribes
    it reads every campaign's version from the database (`set_resync`) and acknowledges it,
    so the publisher waiting on it is released."""
    api, w1 = buses(lease=5.0), buses(lease=5.0)
    truth = {"version": 1}
    seen: list[int] = []

    async def handle(m: ControlMessage) -> None:
        seen.append(m.version)

    async def resync() -> list[ControlMessage]:
        return [msg(truth["version"])]

    w1.subscribe(handle)
    w1.set_resync(resync)
    await w1.join(worker_info("w1", 0.0))
    await eventually(lambda: seen == [1])
    admin = aioredis.from_url(redis_url)
    try:
        truth["version"] = 2  # the pause is in the database...
        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # ...the message lost
        await asyncio.wait_for(api.publish(msg(2)), 5)
    finally:
        await admin.aclose()
    assert 2 in seen and w1.reconnects >= 1


async def test_the_calls_per_second_bucket_is_shared(buses: Factory) -> None:
    a, b = buses(), buses()
    got = [await a.take("cps:acct", 5.0, 4), await b.take("cps:acct", 5.0, 4)]
    assert got == [4, 1]  # one second of burst: 5 tokens between both processes
    assert await a.take("cps:other", 5.0, 4) == 4
    with pytest.raises(ValueError):
        await a.take("cps:acct", 0.0, 1)


def test_bus_from_url_picks_redis_and_keeps_secrets_out_of_errors() -> None:
    bus = bus_from_url("redis://:s3cret@127.0.0.1:6379/15", SystemClock())
    assert isinstance(bus, RedisBus)
    with pytest.raises(ValueError) as caught:
        bus_from_url("amqp://:s3cret@host/", SystemClock())
    assert "s3cret" not in str(caught.value)


async def test_an_idle_subscription_stays_in_touch(buses: Factory) -> None:
    """No control message for longer than a lease: the subscription's pings keep the worker
    in touch (a worker that fenced itself whenever nobody paused would dispatch nothing)."""
    w1 = buses(lease=1.0)
    await w1.join(worker_info("w1", 0.0))
    clock = SystemClock()
    await asyncio.sleep(1.5)
    assert clock.now() - w1.last_contact() < 0.5


async def test_a_publish_redis_cannot_take_raises_bus_unavailable() -> None:
    """Nothing listens where the bus points: the publish fails as BusUnavailable (the API's
    503 and a retry), not as one of redis-py's own errors (a 500)."""
    bus = RedisBus(
        f"redis://127.0.0.1:{free_port()}/0", SystemClock(), lease_seconds=2.0, prefix="gone"
    )
    try:
        with pytest.raises(BusUnavailable):
            await bus.publish(msg(1))
    finally:
        await bus.aclose()
