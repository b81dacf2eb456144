"""Time, injected everywhere (docs/architecture.md §14.4): the system clock, and a fake for tests.

`schedule(delay, fn)` runs the coroutine function `fn` after `delay` seconds. On the system
clock it is a task owned by the clock; on the fake clock it runs when a test advances time
past it, in time order, awaited one by one, so a test is deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

log = logging.getLogger(__name__)

Scheduled = Callable[[], Awaitable[None]]

# How often `FakeClock.advance` yields to the event loop between items, so that tasks woken
# by one item (a future resolved, an event put on a queue) run before the next item.
_YIELDS = 5


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""

    def utcnow(self) -> datetime:
        """`now()` as a timezone-aware UTC datetime."""

    def schedule(self, delay: float, fn: Scheduled) -> Handle:
        """Run `fn()` after `delay` seconds; the handle cancels it if it has not run yet."""

    async def sleep(self, delay: float) -> None: ...

    async def aclose(self) -> None:
        """Cancel scheduled work that has not finished and wait for it."""


class _SystemHandle:
    def __init__(self) -> None:
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            self.task.cancel()


class SystemClock:
    """Wall-clock time; scheduled work runs as tasks the clock owns until `aclose`."""

    def __init__(self) -> None:
        self._handles: set[_SystemHandle] = set()

    def now(self) -> float:
        return time.time()

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def schedule(self, delay: float, fn: Scheduled) -> Handle:
        loop = asyncio.get_running_loop()
        handle = _SystemHandle()
        handle.timer = loop.call_later(max(0.0, delay), self._start, handle, fn)
        self._handles.add(handle)
        return handle

    def _start(self, handle: _SystemHandle, fn: Scheduled) -> None:
        handle.timer = None
        if handle.cancelled:
            self._handles.discard(handle)
            return

        async def run() -> None:
            await fn()

        handle.task = asyncio.get_running_loop().create_task(run())
        handle.task.add_done_callback(lambda task: self._done(handle, task))

    def _done(self, handle: _SystemHandle, task: asyncio.Task[None]) -> None:
        self._handles.discard(handle)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("scheduled task failed", exc_info=exc)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))

    async def aclose(self) -> None:
        handles = list(self._handles)
        for handle in handles:
            handle.cancel()
        tasks = [h.task for h in handles if h.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._handles.clear()


class _FakeHandle:
    def __init__(self, clock: FakeClock, fn: Scheduled) -> None:
        self._clock = clock
        self.fn = fn
        self.cancelled = False
        self.done = False

    def cancel(self) -> None:
        if not (self.cancelled or self.done):
            self.cancelled = True
            self._clock._pending -= 1


class FakeClock:
    """Virtual time that moves only when a test calls `advance` or `run_until_idle`.

    Scheduled functions run inside `advance`, in order of due time and then of scheduling,
    and their exceptions propagate to the test. A scheduled function must not wait on this
    clock's time moving (`sleep`), since time moves only once it returns.
    """

    def __init__(self, start: float = 1_767_225_600.0, *, concurrent: bool = False) -> None:
        """`concurrent`: the items due at the same instant run side by side (gathered), as
        SystemClock runs them; by default one after the other, for tests that want one
        order (2026-01-01T00:00Z is the default start)."""
        self._concurrent = concurrent
        self._now = start
        self._seq = itertools.count()
        self._queue: list[tuple[float, int, _FakeHandle]] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._pending = 0

    def now(self) -> float:
        return self._now

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    def schedule(self, delay: float, fn: Scheduled) -> Handle:
        handle = _FakeHandle(self, fn)
        heapq.heappush(self._queue, (self._now + max(0.0, delay), next(self._seq), handle))
        self._pending += 1
        return handle

    def pending(self) -> int:
        """Scheduled items not yet run nor cancelled."""
        return self._pending

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + delay, next(self._seq), future))
        await future

    async def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._now + seconds
        await self._yield()  # let tasks just created reach their first sleep/schedule
        while True:
            self._drop_cancelled()
            due = [q[0][0] for q in (self._queue, self._sleepers) if q and q[0][0] <= target]
            if not due:
                break
            self._now = max(self._now, min(due))
            if self._wake_sleepers():
                await self._yield()
                continue
            if not self._queue or self._queue[0][0] > self._now:
                continue  # what was due was a sleeper that gave up (cancelled)
            handles = [heapq.heappop(self._queue)[2]]
            while self._concurrent and self._queue and self._queue[0][0] <= self._now:
                handles.append(heapq.heappop(self._queue)[2])
            handles = [h for h in handles if not h.cancelled]
            for handle in handles:
                handle.done = True
                self._pending -= 1
            if len(handles) == 1:
                await handles[0].fn()
            else:
                await asyncio.gather(*(h.fn() for h in handles))
            await self._yield()
        self._now = target
        self._wake_sleepers()
        await self._yield()

    async def run_until_idle(self, max_seconds: float = 86400 * 30) -> None:
        """Advance to each next scheduled item until none is left, or `max_seconds` passed.

        Sleepers alone do not keep the clock going: only scheduled items do.
        """
        limit = self._now + max_seconds
        await self._yield()
        while True:
            self._drop_cancelled()
            if not self._queue or self._queue[0][0] > limit:
                return
            await self.advance(max(0.0, self._queue[0][0] - self._now))

    async def aclose(self) -> None:
        for _, _, handle in self._queue:
            handle.cancel()
        self._queue.clear()
        for _, _, future in self._sleepers:
            future.cancel()
        self._sleepers.clear()

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    def _wake_sleepers(self) -> bool:
        woken = False
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
                woken = True
        return woken

    @staticmethod
    async def _yield() -> None:
        for _ in range(_YIELDS):
            await asyncio.sleep(0)
