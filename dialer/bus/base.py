"""The control bus: how a campaign's state change reaches every engine
(docs/architecture.md §4, §12).

A control message carries the campaign's state and its fencing `version`. `publish` is the
pause fence: when it returns, every subscriber of this process has handled the message, so
no engine of this process still acts on the old version. The bus also hosts the rate limits
that all workers share (a carrier account's calls per second).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ControlMessage:
    campaign_id: str
    state: str  # the campaign's state after the change
    version: int  # fencing number: engines ignore anything older than what they hold


Handler = Callable[[ControlMessage], Awaitable[None]]
Unsubscribe = Callable[[], None]
Resync = Callable[[], Awaitable[list[ControlMessage]]]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """An engine process as the registry shows it (`GET /api/v1/workers`)."""

    worker_id: str
    host: str
    pid: int
    started_at: float


class BusClosed(RuntimeError):
    """The bus was closed; nothing more is published or subscribed."""


class BusUnavailable(ConnectionError):
    """The bus could not be reached while publishing: the state change is in the database,
    its fan-out is not confirmed. The API answers 503 and the caller retries; a repeated
    pause publishes again (docs/architecture.md §12.2)."""


class Bus(Protocol):
    async def publish(self, msg: ControlMessage) -> None:
        """Deliver `msg` and return once every subscriber of this process has handled it.

        If a handler raises, the others still get the message; the error is raised to the
        caller afterwards, because the fence is then not guaranteed for that subscriber.
        """

    def subscribe(self, handler: Handler) -> Unsubscribe:
        """Call `handler` for every message published from now on; returns the unsubscribe."""

    def set_resync(self, resync: Resync) -> None:
        """Where the bus reads every campaign's current state and version (the database)
        after it may have missed messages (a reconnect)."""

    async def join(
        self, info: WorkerInfo, campaigns: Callable[[], list[str]] | None = None
    ) -> None:
        """This process runs an engine: it takes part in every pause from now on."""

    async def workers(self) -> list[dict[str, Any]]:
        """The live engine processes (id, host, pid, started_at, heartbeat_at, campaigns)."""

    async def take(self, key: str, rate_per_second: float, want: int) -> int:
        """Take up to `want` tokens of the token bucket `key` (burst: one second's worth).

        Returns how many actions may happen now (0..want), without waiting: the engine
        claims no more work than the shared calls-per-second limit lets it dial.
        """

    def last_contact(self) -> float:
        """Clock time of the last successful contact with the bus (fail closed when stale)."""

    async def healthy(self) -> bool: ...

    async def aclose(self) -> None: ...


def worker_info(worker_id: str, now: float) -> WorkerInfo:
    """This process as an engine worker."""
    return WorkerInfo(
        worker_id=worker_id, host=socket.gethostname(), pid=os.getpid(), started_at=now
    )
