"""Control fan-out and shared rate limits, picked by `DIALER_BUS_URL`."""

from __future__ import annotations

from urllib.parse import urlsplit

from dialer.bus.base import Bus, BusClosed, ControlMessage, Handler, Unsubscribe
from dialer.bus.memory import MemoryBus
from dialer.clock import Clock

__all__ = [
    "Bus",
    "BusClosed",
    "ControlMessage",
    "Handler",
    "MemoryBus",
    "Unsubscribe",
    "bus_from_url",
]


def bus_from_url(url: str, clock: Clock) -> Bus:
    """`memory://` is the in-process bus; `redis://…` comes with scale-out."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBus(clock)
    if scheme in ("redis", "rediss", "unix"):
        # Do not echo the URL: it may carry a password.
        raise ValueError(f"DIALER_BUS_URL: the {scheme}:// bus is not available yet; use memory://")
    raise ValueError(
        f"DIALER_BUS_URL: unsupported scheme {scheme!r}; expected memory:// or redis://"
    )
