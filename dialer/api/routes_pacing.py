"""A campaign's pacing now: the rolling abandon rate against its cap and the dial level
(docs/api.md §4.3a, docs/architecture.md §8)."""

from __future__ import annotations

from aiohttp import web

from dialer.api.auth import READERS, requires
from dialer.api.docs import doc, reply
from dialer.api.keys import RUNTIME
from dialer.api.schemas import Out
from dialer.engine.stats_window import PacingStatus

routes = web.RouteTableDef()


class PacingOut(Out):
    mode: str
    abandon_rate: float
    max_abandon_rate: float
    answered_humans: int
    abandoned: int
    window_days: float
    dial_level: float
    available_agents: int
    live_calls: int
    dials_now: int

    @classmethod
    def of(cls, p: PacingStatus) -> PacingOut:
        return cls.model_validate(p, from_attributes=True)


@routes.get("/api/v1/campaigns/{id}/pacing")
@requires(*READERS)
@doc("Rolling abandon rate against the cap, and the dial level", response=PacingOut)
async def pacing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    status = await rt.service.pacing(
        request.match_info["id"],
        max_lines_per_agent=rt.settings.predictive_max_lines_per_agent,
    )
    return reply(PacingOut.of(status))
