"""Is the carrier (or the mail server) reachable? A circuit breaker per channel.

A failure to reach a channel is an outage, not an outcome of the attempt
(docs/architecture.md §15.3): it uses no try. After `threshold` outages in a row the
channel is held: no dial (or send) goes out until `retry_at`, when one probe may pass; the
probe's success brings the channel back, its failure doubles the wait (up to `cap`).
The engine records the change on every running campaign that uses the channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dialer.domain.campaign import Channel


class Change(StrEnum):
    DOWN = "down"
    UP = "up"


@dataclass(slots=True)
class ChannelState:
    up: bool = True
    failures: int = 0  # outages in a row
    since: float | None = None  # when it went down
    retry_at: float = 0.0  # when the next probe may go
    error: str = ""
    probing: bool = False  # a probe is out
    wait: float = 0.0  # the current backoff


class ChannelHealth:
    def __init__(self, *, threshold: int = 3, base: float = 1.0, cap: float = 60.0) -> None:
        if threshold < 1 or base <= 0 or cap < base:
            raise ValueError("threshold >= 1 and 0 < base <= cap")
        self.threshold = threshold
        self.base = base
        self.cap = cap
        self.states: dict[Channel, ChannelState] = {c: ChannelState() for c in Channel}

    def up(self, channel: Channel) -> bool:
        return self.states[channel].up

    def allowance(self, channel: Channel, now: float) -> int | None:
        """How many hand-offs may go now: None = no limit, 1 = a probe, 0 = held."""
        st = self.states[channel]
        if st.up:
            return None
        if st.probing or now < st.retry_at:
            return 0
        return 1

    def probing(self, channel: Channel) -> None:
        """A probe goes out (one hand-off while the channel is held)."""
        st = self.states[channel]
        if not st.up:
            st.probing = True

    def unprobe(self, channel: Channel) -> None:
        """The probe never reached the channel (the fence refused it): another may go."""
        self.states[channel].probing = False

    def failed(self, channel: Channel, error: str, now: float) -> Change | None:
        """The channel could not be reached; DOWN when this holds it. A failed probe
        doubles the wait; failures of hand-offs that left before the hold change nothing."""
        st = self.states[channel]
        st.failures += 1
        st.error = error
        if st.up:
            if st.failures < self.threshold:
                return None
            st.up = False
            st.since = now
            st.wait = self.base
            st.retry_at = now + st.wait
            return Change.DOWN
        if st.probing:
            st.probing = False
            st.wait = min(self.cap, st.wait * 2)
            st.retry_at = now + st.wait
        return None

    def succeeded(self, channel: Channel) -> Change | None:
        """The channel answered; UP when it was held."""
        st = self.states[channel]
        was_down = not st.up
        self.states[channel] = ChannelState()
        return Change.UP if was_down else None
