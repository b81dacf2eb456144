"""The recent figures predictive pacing reads, per campaign, from the attempts table.

Two windows (docs/architecture.md §8, §7.3):

- the abandon rate over a rolling 30 days: abandoned calls / human answers (the regulation's
  measure, and what the campaign's `max_abandon_rate` caps);
- the last `recent_attempts` resolved dials (answered, or ended without an answer): the
  answer rate, the mean ring time (dial to answer) and the mean talk time, which follow the
  list and the hour of the day, so a short window.

The dispatcher asks every tick; the figures move slowly, so they are cached per campaign for
`ttl` seconds of clock time. Agent load (who is on a call, whose wrap-up ends when) is live
and read each time. Every mode gets the abandon figures (power and progressive throttle
down near the cap); only predictive gets the rest.

`pacing_status` is what the campaign page shows: the rolling abandon rate against the cap and
the dial level the pacer applies now (docs/api.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dialer.domain.campaign import AnsweredBy, CampaignSpec
from dialer.domain.pacing import PacingInput, PacingMode, dial_level, dials_to_place
from dialer.domain.states import ATTEMPT_DIALING, AgentState
from dialer.store import agents as agent_store
from dialer.store import attempts as attempt_store
from dialer.store.db import DbSession

ABANDON_WINDOW_SECONDS = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Recent:
    answered_humans: int = 0  # over the abandon window
    abandoned: int = 0  # over the abandon window
    answer_rate: float = 0.0  # human answers per resolved dial, recent
    mean_ring_seconds: float = 0.0
    mean_talk_seconds: float = 0.0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.answered_humans if self.answered_humans else 0.0


@dataclass(frozen=True, slots=True)
class PacingStatus:
    """A campaign's pacing now: its abandon rate over the rolling window against its cap,
    and the lines per agent the pacer keeps in flight (`domain.pacing.dial_level`)."""

    mode: str
    abandon_rate: float  # abandoned / human answers over the window
    max_abandon_rate: float
    answered_humans: int
    abandoned: int
    window_days: float
    dial_level: float
    available_agents: int
    live_calls: int
    dials_now: int  # what the pacer would start on this tick


@dataclass(frozen=True, slots=True)
class AgentLoad:
    on_call: int = 0
    wrap_up_left: tuple[float, ...] = ()


class StatsWindow:
    def __init__(
        self,
        *,
        ttl: float = 5.0,
        abandon_window: float = ABANDON_WINDOW_SECONDS,
        recent_attempts: int = 200,
    ) -> None:
        self.ttl = ttl
        self.abandon_window = abandon_window
        self.recent_attempts = recent_attempts
        self._cache: dict[str, tuple[float, Recent]] = {}

    async def recent(self, s: DbSession, campaign_id: str, now: float) -> Recent:
        cached = self._cache.get(campaign_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        figures = await self._read(s, campaign_id, now)
        self._cache[campaign_id] = (now + self.ttl, figures)
        return figures

    async def pacing_input(
        self,
        s: DbSession,
        campaign_id: str,
        spec: CampaignSpec,
        *,
        available_agents: int,
        live_calls: int,
        max_lines_per_agent: float,
        now: float,
    ) -> PacingInput:
        """The pacer's snapshot of a campaign; the recent figures only for predictive."""
        pacing = spec.pacing
        base = PacingInput(
            mode=pacing.mode,
            lines_per_agent=pacing.lines_per_agent,
            available_agents=available_agents,
            live_calls=live_calls,
            agentless_capacity=pacing.agentless_capacity,
            max_lines_per_agent=max_lines_per_agent,
            max_abandon_rate=pacing.max_abandon_rate,
            wrap_up_seconds=spec.wrap_up_seconds,
        )
        if pacing.mode in (PacingMode.PREVIEW, PacingMode.AGENTLESS):
            return base
        recent = await self.recent(s, campaign_id, now)
        base = replace(
            base, abandon_rate=recent.abandon_rate, answered_humans=recent.answered_humans
        )
        if pacing.mode is not PacingMode.PREDICTIVE:
            return base
        load = await agent_load(s, campaign_id, now)
        return replace(
            base,
            answer_rate=recent.answer_rate,
            mean_ring_seconds=recent.mean_ring_seconds,
            mean_talk_seconds=recent.mean_talk_seconds,
            agents_on_call=load.on_call,
            wrap_up_left=load.wrap_up_left,
        )

    async def _read(self, s: DbSession, campaign_id: str, now: float) -> Recent:
        humans, abandoned = await attempt_store.human_answers(
            s, campaign_id, now - self.abandon_window
        )
        # Ended without an answer counts besides the answers; a call we cancelled ourselves
        # (pause) says nothing about the list and is left out.
        rows = await attempt_store.recent_resolved(s, campaign_id, self.recent_attempts)
        answered = [r for r in rows if r.answered_at is not None]
        rings = [max(0.0, r.answered_at - r.created_at) for r in answered]
        talks = [r.duration for r in answered if r.agent_id is not None and r.duration]
        human_answers = sum(1 for r in answered if r.answered_by != AnsweredBy.MACHINE)
        return Recent(
            answered_humans=humans,
            abandoned=abandoned,
            answer_rate=human_answers / len(rows) if rows else 0.0,
            mean_ring_seconds=sum(rings) / len(rings) if rings else 0.0,
            mean_talk_seconds=sum(talks) / len(talks) if talks else 0.0,
        )


async def pacing_status(
    s: DbSession,
    campaign_id: str,
    spec: CampaignSpec,
    *,
    now: float,
    max_lines_per_agent: float,
    window: StatsWindow | None = None,
) -> PacingStatus:
    """The pacer's view of a campaign now, from the same snapshot the dispatcher takes."""
    window = window or StatsWindow(ttl=0.0)
    live = await attempt_store.count_voice(s, campaign_id, ATTEMPT_DIALING)
    available = await agent_store.count_available(s, campaign_id)
    p = await window.pacing_input(
        s,
        campaign_id,
        spec,
        available_agents=available,
        live_calls=live,
        max_lines_per_agent=max_lines_per_agent,
        now=now,
    )
    recent = await window.recent(s, campaign_id, now)
    return PacingStatus(
        mode=str(spec.pacing.mode),
        abandon_rate=round(recent.abandon_rate, 4),
        max_abandon_rate=spec.pacing.max_abandon_rate,
        answered_humans=recent.answered_humans,
        abandoned=recent.abandoned,
        window_days=window.abandon_window / 86400,
        dial_level=round(dial_level(p), 3),
        available_agents=available,
        live_calls=live,
        dials_now=dials_to_place(p),
    )


async def agent_load(s: DbSession, campaign_id: str, now: float) -> AgentLoad:
    rows = await agent_store.busy(s, campaign_id)
    return AgentLoad(
        on_call=sum(1 for state, _ in rows if state == AgentState.ON_CALL),
        wrap_up_left=tuple(
            max(0.0, (until or now) - now) for state, until in rows if state == AgentState.WRAP_UP
        ),
    )
