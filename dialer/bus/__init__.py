"""Control fan-out and shared rate limits, picked by `DIALER_BUS_URL`."""

from __future__ import annotations

from urllib.parse import urlsplit

from dialer.bus.base import Bus, BusClosed, ControlMessage, Handler, Unsubscribe, WorkerInfo
from dialer.bus.memory import MemoryBus
from dialer.clock import Clock

__all__ = [
    "Bus",
    "BusClosed",
    "ControlMessage",
    "Handler",
    "MemoryBus",
    "Unsubscribe",
    "WorkerInfo",
    "bus_from_url",
]


def bus_from_url(url: str, clock: Clock, *, lease_seconds: float = 60.0) -> Bus:
    """`memory://` is the in-process bus (one process); `redis://`, `rediss://` or
    `unix://` a Redis server shared by every process (docs/architecture.md §12.2)."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBus(clock)
    if scheme in ("redis", "rediss", "unix"):
        from dialer.bus.redis import RedisBus

        return RedisBus(url, clock, lease_seconds=lease_seconds)
    raise ValueError(
        f"DIALER_BUS_URL: unsupported scheme {scheme!r}; expected memory:// or redis://"
    )
