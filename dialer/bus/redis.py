"""The Redis bus: control messages, the pause fence and shared rate limits across processes
(docs/architecture.md §12.2).

PostgreSQL stays the source of truth: a campaign's state and version decide, Redis only
carries the news and the acknowledgements.

- **Registry.** Every engine process joins with a heartbeat: a hash `<p>:worker:<id>`
  (host, pid, started, campaigns) that expires after a lease, and its expiry time in the
  sorted set `<p>:workers`. A worker that dies without a word stops counting when its
  heartbeat expires.
- **Pause fence.** `publish` publishes the new version on `<p>:control` and returns once
  every worker that was live has acknowledged it: each one runs its handlers (its fence waits
  for its hand-offs past their check), then records the highest version it has handled in
  `<p>:acked:<campaign>`. A worker whose heartbeat expires meanwhile stops counting, so a
  publish never waits longer than a lease.
- **Fail closed.** A worker out of touch with Redis (its heartbeat or its subscription) for
  half a lease dispatches nothing, before its heartbeat (a whole lease) expires.
- **Reconnects.** Pub/sub drops what is published while a subscriber reconnects. After every
  (re)subscription the worker re-reads every campaign's state and version from the database
  (`set_resync`) and handles and acknowledges them, so a missed message is replaced by its
  newer truth.
- **Rate limits.** `take` is one Lua script: a token bucket on Redis's own clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dialer.bus.base import (
    BusClosed,
    BusUnavailable,
    ControlMessage,
    Handler,
    Unsubscribe,
    WorkerInfo,
)
from dialer.clock import Clock

log = logging.getLogger(__name__)

Resync = Callable[[], Awaitable[list[ControlMessage]]]

# KEYS[1] bucket; ARGV rate per second, tokens wanted. Burst: one second's worth (at least 1).
TAKE = """
local rate = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap = math.max(1, rate)
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1]) or cap
local ts = tonumber(v[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local granted = math.max(0, math.min(want, math.floor(tokens)))
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - granted), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
return granted
"""

CONNECT_ERRORS = (RedisError, OSError, TimeoutError)


@dataclass(slots=True)
class _Contact:
    heartbeat: float = -math.inf  # the registry write that last succeeded
    listener: float = -math.inf  # the subscription last known alive


@dataclass(slots=True)
class Joined:
    info: WorkerInfo
    campaigns: Callable[[], list[str]] = field(default=lambda: [])


class RedisBus:
    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        lease_seconds: float = 60.0,
        prefix: str = "dialer",
        poll_seconds: float = 0.005,
    ) -> None:
        self._redis: aioredis.Redis = aioredis.from_url(
            url,
            decode_responses=True,
            socket_timeout=max(1.0, lease_seconds / 4),
            socket_connect_timeout=max(1.0, lease_seconds / 4),
            health_check_interval=0,
        )
        # The subscription on its own client, without decoding: redis-py recognises a
        # pub/sub PONG only as bytes, and the pongs are how a deaf subscription is noticed.
        self._sub: aioredis.Redis = aioredis.from_url(
            url,
            decode_responses=False,
            socket_timeout=max(1.0, lease_seconds / 4),
            socket_connect_timeout=max(1.0, lease_seconds / 4),
            health_check_interval=0,
        )
        self._clock = clock
        self.lease = lease_seconds
        self.p = prefix
        self.poll_seconds = poll_seconds
        self._handlers: dict[int, Handler] = {}
        self._ids = itertools.count()
        self._resync: Resync | None = None
        self._joined: Joined | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._contact = _Contact()
        self._closed = False
        self._take = self._redis.register_script(TAKE)
        self.reconnects = 0  # subscriptions re-established after a loss
        self.handled: dict[str, int] = {}  # campaign -> highest version handled here

    # -- keys ------------------------------------------------------------------------------
    @property
    def channel(self) -> str:
        return f"{self.p}:control"

    def _worker_key(self, worker_id: str) -> str:
        return f"{self.p}:worker:{worker_id}"

    def _acked_key(self, campaign_id: str) -> str:
        return f"{self.p}:acked:{campaign_id}"

    # -- the Bus interface -----------------------------------------------------------------
    async def publish(self, msg: ControlMessage) -> None:
        """Publish `msg` and wait until every live worker has handled it (at most a lease).
        Raises BusUnavailable when Redis cannot be reached or does not answer in time."""
        if self._closed:
            raise BusClosed("publish on a closed bus")
        try:
            await self._publish(msg)
        except CONNECT_ERRORS as exc:
            raise BusUnavailable(f"the control bus did not answer: {exc!r}") from exc

    async def _publish(self, msg: ControlMessage) -> None:
        data = json.dumps({"c": msg.campaign_id, "s": msg.state, "v": msg.version})
        expect = set(await self._live())
        await self._redis.publish(self.channel, data)
        self._touch()
        deadline = time.monotonic() + self.lease
        while expect:
            acked = await self._redis.hgetall(self._acked_key(msg.campaign_id))
            expect = {w for w in expect if int(acked.get(w, -1)) < msg.version}
            if not expect:
                break
            expect &= set(await self._live())  # a dead worker stops counting
            if not expect:
                break
            if time.monotonic() > deadline:
                log.warning(
                    "bus.ack_timeout",
                    extra={
                        "campaign": msg.campaign_id,
                        "version": msg.version,
                        "workers": sorted(expect),
                    },
                )
                break
            await asyncio.sleep(self.poll_seconds)

    def subscribe(self, handler: Handler) -> Unsubscribe:
        if self._closed:
            raise BusClosed("subscribe on a closed bus")
        key = next(self._ids)
        self._handlers[key] = handler

        def unsubscribe() -> None:
            self._handlers.pop(key, None)

        return unsubscribe

    def set_resync(self, resync: Resync) -> None:
        self._resync = resync

    async def join(
        self, info: WorkerInfo, campaigns: Callable[[], list[str]] | None = None
    ) -> None:
        """Take part in every pause as an engine process: heartbeat and subscription."""
        if self._joined is not None:
            return
        self._joined = Joined(info, campaigns or (lambda: []))
        with contextlib.suppress(*CONNECT_ERRORS):
            await self._beat()
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="bus-heartbeat"))
        self._tasks.append(asyncio.create_task(self._listen(), name="bus-listener"))

    async def take(self, key: str, rate_per_second: float, want: int) -> int:
        if rate_per_second <= 0:
            raise ValueError(f"rate_per_second must be positive, got {rate_per_second}")
        if want <= 0:
            return 0
        try:
            granted = await self._take(
                keys=[f"{self.p}:bucket:{key}"], args=[rate_per_second, want]
            )
        except CONNECT_ERRORS as exc:
            log.warning("bus.take_failed", extra={"error": type(exc).__name__})
            return 0  # fail closed: no shared limit, no dial
        self._touch()
        return int(granted)

    def last_contact(self) -> float:
        """When this process was last known to be in touch: for an engine process, the older
        of its heartbeat and its subscription (a worker deaf to control messages is not in
        touch even if it can still write)."""
        if self._joined is None:
            return self._contact.heartbeat
        return min(self._contact.heartbeat, self._contact.listener)

    async def healthy(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), timeout=2.0))
        except (TimeoutError, *CONNECT_ERRORS):
            return False

    async def workers(self) -> list[dict[str, Any]]:
        """The live engine processes, as their heartbeats describe them."""
        out: list[dict[str, Any]] = []
        for worker_id in await self._live():
            info = await self._redis.hgetall(self._worker_key(worker_id))
            if not info:
                continue
            out.append(
                {
                    "id": worker_id,
                    "host": info.get("host", ""),
                    "pid": int(info.get("pid", 0)),
                    "started_at": float(info.get("started_at", 0)),
                    "heartbeat_at": float(info.get("heartbeat_at", 0)),
                    "campaigns": json.loads(info.get("campaigns", "[]")),
                }
            )
        return out

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, *CONNECT_ERRORS):
                await task
        if self._joined is not None:  # leave at once: no pause waits for us any more
            worker_id = self._joined.info.worker_id
            with contextlib.suppress(*CONNECT_ERRORS):
                await self._redis.zrem(f"{self.p}:workers", worker_id)
                await self._redis.delete(self._worker_key(worker_id))
        self._handlers.clear()
        with contextlib.suppress(*CONNECT_ERRORS):
            await self._redis.aclose()
            await self._sub.aclose()

    # -- inside ----------------------------------------------------------------------------
    def _touch(self) -> None:
        if self._joined is None:
            self._contact.heartbeat = self._clock.now()

    async def _live(self) -> list[str]:
        now = time.time()
        members = await self._redis.zrangebyscore(f"{self.p}:workers", now, "+inf")
        return [str(m) for m in members]

    async def _beat(self) -> None:
        assert self._joined is not None
        info = self._joined.info
        now = time.time()
        ttl_ms = int(self.lease * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._worker_key(info.worker_id),
                mapping={
                    "host": info.host,
                    "pid": str(info.pid),
                    "started_at": str(info.started_at),
                    "heartbeat_at": str(now),
                    "campaigns": json.dumps(self._joined.campaigns()),
                },
            )
            pipe.pexpire(self._worker_key(info.worker_id), ttl_ms)
            pipe.zadd(f"{self.p}:workers", {info.worker_id: now + self.lease})
            pipe.zremrangebyscore(f"{self.p}:workers", "-inf", now)
            await pipe.execute()
        self._contact.heartbeat = self._clock.now()

    async def _heartbeat(self) -> None:
        every = max(0.05, min(1.0, self.lease / 6))
        failing = False
        while not self._closed:
            try:
                await self._beat()
                if failing:
                    log.info("bus.heartbeat_recovered")
                failing = False
            except CONNECT_ERRORS as exc:
                if not failing:
                    log.warning("bus.heartbeat_failed", extra={"error": type(exc).__name__})
                failing = True
            await asyncio.sleep(every)

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while not self._closed:
            pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._contact.listener = self._clock.now()
                if not first:
                    self.reconnects += 1
                    log.info("bus.resubscribed")
                first = False
                # Subscribed first, then read the truth: nothing falls in between.
                await self._catch_up()
                backoff = 0.1
                await self._pump(pubsub)
            except asyncio.CancelledError:
                raise
            except CONNECT_ERRORS as exc:
                log.warning("bus.subscription_lost", extra={"error": type(exc).__name__})
            finally:
                with contextlib.suppress(*CONNECT_ERRORS, RuntimeError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(2.0, backoff * 2)

    async def _pump(self, pubsub: Any) -> None:
        every = max(0.05, min(1.0, self.lease / 6))
        pinged = time.monotonic()
        while not self._closed:
            message = await pubsub.get_message(timeout=every)
            if time.monotonic() - pinged >= every:
                await pubsub.ping()
                pinged = time.monotonic()
            if message is None:
                continue
            self._contact.listener = self._clock.now()
            if message.get("type") != "message":
                continue  # a pong
            try:
                body = json.loads(message["data"])
                msg = ControlMessage(str(body["c"]), str(body["s"]), int(body["v"]))
            except (ValueError, KeyError, TypeError):
                log.warning("bus.bad_message")
                continue
            await self._handle([msg])

    async def _catch_up(self) -> None:
        if self._resync is None:
            return
        await self._handle(await self._resync())

    async def _handle(self, messages: list[ControlMessage]) -> None:
        for msg in messages:
            for handler in list(self._handlers.values()):
                try:
                    await handler(msg)
                except Exception:
                    log.exception(
                        "bus.handler_failed",
                        extra={"campaign_id": msg.campaign_id, "version": msg.version},
                    )
            if msg.version > self.handled.get(msg.campaign_id, -1):
                self.handled[msg.campaign_id] = msg.version
        await self._ack(messages)

    async def _ack(self, messages: list[ControlMessage]) -> None:
        if self._joined is None or not messages:
            return
        worker_id = self._joined.info.worker_id
        async with self._redis.pipeline(transaction=False) as pipe:
            for msg in messages:
                key = self._acked_key(msg.campaign_id)
                pipe.hset(key, worker_id, str(self.handled[msg.campaign_id]))
                pipe.expire(key, 7 * 86400)
            await pipe.execute()
