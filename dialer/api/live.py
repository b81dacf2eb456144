"""The live event stream's hub (being written): polls the events table, fans out to SSE."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dialer.runtime import Runtime


class LiveHub:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
