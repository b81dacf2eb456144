"""The control bus: how a campaign's state change reaches every engine
(docs/architecture.md §4, §12).

A control message carries the campaign's state and its fencing `version`. `publish` is the
pause fence: when it returns, every subscriber of this process has handled the message, so
no engine of this process still acts on the old version. The bus also hosts the rate limits
that all workers share (a carrier account's calls per second).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ControlMessage:
    campaign_id: str
    state: str  # the campaign's state after the change
    version: int  # fencing number: engines ignore anything older than what they hold


Handler = Callable[[ControlMessage], Awaitable[None]]
Unsubscribe = Callable[[], None]


class BusClosed(RuntimeError):
    """The bus was closed; nothing more is published or subscribed."""


class Bus(Protocol):
    async def publish(self, msg: ControlMessage) -> None:
        """Deliver `msg` and return once every subscriber of this process has handled it.

        If a handler raises, the others still get the message; the error is raised to the
        caller afterwards, because the fence is then not guaranteed for that subscriber.
        """

    def subscribe(self, handler: Handler) -> Unsubscribe:
        """Call `handler` for every message published from now on; returns the unsubscribe."""

    async def take(self, key: str, rate_per_second: float, want: int) -> int:
        """Take up to `want` tokens of the token bucket `key` (burst: one second's worth).

        Returns how many actions may happen now (0..want), without waiting: the engine
        claims no more work than the shared calls-per-second limit lets it dial.
        """

    def last_contact(self) -> float:
        """Clock time of the last successful contact with the bus (fail closed when stale)."""

    async def healthy(self) -> bool: ...

    async def aclose(self) -> None: ...
