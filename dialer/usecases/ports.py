"""What the use cases need of the engine: a small control port, not the engine itself.

`dialer.engine.engine.Engine` implements it; the use cases never reach past it
(docs/architecture.md §10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dialer.domain.campaign import CampaignSpec
from dialer.store.models import Campaign


class EngineControl(Protocol):
    async def announce(self, c: Campaign) -> None:
        """Tell every engine of a campaign's new state and version (the pause fence)."""

    async def cancel_calls(self, queued: Sequence[tuple[int, str]]) -> list[str]:
        """Cancel these (attempt id, carrier id) calls if still queued; the attempt ids."""

    async def drain(self, campaign_id: str) -> bool:
        """stopping -> stopped once nothing of the campaign is in flight."""

    def spec(self, c: Campaign) -> CampaignSpec:
        """The campaign's typed configuration, parsed once per version."""

    async def dial_preview(
        self, campaign_id: str, lead_id: int, agent_id: str, *, actor: str
    ) -> int | None:
        """An agent's preview dial of one lead, under the pause fence (docs/architecture.md
        §3.4); the attempt id, or None when nothing was dialled."""
