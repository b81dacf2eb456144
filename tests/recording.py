"""A voice channel that records every hand-off, delegating to a real one (injected, like
twilio's recording client in its own tests)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dialer.channels.base import (
    CallEvent,
    CallEventSink,
    CallFate,
    CallQuery,
    ChannelError,
    DialRequest,
    VoiceChannel,
)


class Crash(BaseException):
    """The worker process dies (not an Exception: nothing in the engine may catch it)."""


@dataclass
class RecordingVoice:
    inner: VoiceChannel
    dials: list[DialRequest] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    crash_after_dial: bool = False
    lose_callbacks: bool = False  # the carrier's reports never reach this worker
    gate: asyncio.Event | None = None  # when set up, the next dial waits for it to open
    gate_all: bool = False  # every dial waits at the gate (hand-offs side by side)
    down: bool = False  # the carrier refuses connections: every request fails, nothing placed
    time_out_after_dial: bool = False  # the carrier takes the call, the answer never comes
    at_gate: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = "simulated"

    def set_sink(self, sink: CallEventSink) -> None:
        async def deliver(event: CallEvent) -> None:
            if not self.lose_callbacks:
                await sink(event)

        self.inner.set_sink(deliver)

    async def dial(self, request: DialRequest) -> str:
        self.dials.append(request)
        if self.gate is not None:
            gate = self.gate
            if not self.gate_all:
                self.gate = None
            self.at_gate.set()
            await gate.wait()
        if self.down:
            raise ChannelError("carrier: connection refused", unavailable=True)
        carrier_id = await self.inner.dial(request)
        if self.time_out_after_dial:
            raise ChannelError("carrier: timed out", unavailable=True, maybe_placed=True)
        if self.crash_after_dial:
            raise Crash("worker killed after the carrier took the call")
        return carrier_id

    async def cancel(self, carrier_id: str) -> bool:
        self.cancels.append(carrier_id)
        return await self.inner.cancel(carrier_id)

    async def bridge(self, carrier_id: str, agent_id: str) -> None:
        await self.inner.bridge(carrier_id, agent_id)

    async def hangup(self, carrier_id: str, *, message: str | None = None) -> None:
        await self.inner.hangup(carrier_id, message=message)

    async def lookup(self, query: CallQuery) -> CallFate:
        if self.down:
            raise ChannelError("carrier: connection refused", unavailable=True)
        return await self.inner.lookup(query)

    async def close(self) -> None:
        await self.inner.close()

    def of(self, campaign_id: str) -> list[DialRequest]:
        return [d for d in self.dials if d.campaign_id == campaign_id]
