"""The in-process bus: one process, no network. The default (`DIALER_BUS_URL=memory://`)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from dialer.bus.base import BusClosed, ControlMessage, Handler, Resync, Unsubscribe, WorkerInfo
from dialer.clock import Clock

log = logging.getLogger(__name__)


class MemoryBus:
    """Handlers are awaited one by one, in subscription order, inside `publish`.

    A failing handler does not keep the message from the others: every handler runs, each
    failure is logged, and the first one is re-raised once all have run.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._handlers: dict[int, Handler] = {}
        self._ids = itertools.count()
        # Generic cell rate algorithm: per key, the earliest time the next action may happen.
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._closed = False
        self._joined: tuple[WorkerInfo, Callable[[], list[str]]] | None = None

    async def publish(self, msg: ControlMessage) -> None:
        if self._closed:
            raise BusClosed("publish on a closed bus")
        first_error: Exception | None = None
        # A snapshot: handlers may subscribe or unsubscribe while we deliver.
        for handler in list(self._handlers.values()):
            try:
                await handler(msg)
            except Exception as exc:
                log.exception(
                    "bus.handler_failed",
                    extra={"campaign_id": msg.campaign_id, "version": msg.version},
                )
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error

    def subscribe(self, handler: Handler) -> Unsubscribe:
        if self._closed:
            raise BusClosed("subscribe on a closed bus")
        key = next(self._ids)
        self._handlers[key] = handler

        def unsubscribe() -> None:
            self._handlers.pop(key, None)

        return unsubscribe

    def set_resync(self, resync: Resync) -> None:
        """Nothing is ever missed in-process."""

    async def join(
        self, info: WorkerInfo, campaigns: Callable[[], list[str]] | None = None
    ) -> None:
        self._joined = (info, campaigns or (lambda: []))

    async def workers(self) -> list[dict[str, Any]]:
        if self._joined is None:
            return []
        info, campaigns = self._joined
        return [
            {
                "id": info.worker_id,
                "host": info.host,
                "pid": info.pid,
                "started_at": info.started_at,
                "heartbeat_at": self._clock.now(),
                "campaigns": campaigns(),
            }
        ]

    async def take(self, key: str, rate_per_second: float, want: int) -> int:
        if rate_per_second <= 0:
            raise ValueError(f"rate_per_second must be positive, got {rate_per_second}")
        now = self._clock.now()
        capacity = max(1.0, rate_per_second)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - last) * rate_per_second)
        granted = max(0, min(want, int(tokens)))
        self._buckets[key] = (tokens - granted, now)
        return granted

    def last_contact(self) -> float:
        return self._clock.now()

    async def healthy(self) -> bool:
        return not self._closed

    async def aclose(self) -> None:
        self._closed = True
        self._handlers.clear()
