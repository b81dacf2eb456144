"""Pacing: how many dials (or sends) to start on this tick (DESIGN.md §5).

Pure arithmetic over a snapshot the engine takes; no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

# Guards floor() against float products landing just under an integer (4.35 * 100 is
# 434.99999999999994), which would silently drop a line.
_EPSILON = 1e-9


class PacingMode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"
    AGENTLESS = "agentless"


@dataclass(frozen=True, slots=True)
class PacingInput:
    """A snapshot of one campaign's capacity; all counts are non-negative."""

    mode: PacingMode
    lines_per_agent: float  # power/predictive ratio; progressive always uses 1
    available_agents: int  # engaged with the campaign and free now
    live_calls: int  # queued/ringing at the carrier, not yet answered
    max_lines: int | None = None  # hard cap on concurrent unanswered calls
    agentless_capacity: int = 10  # concurrent dials in agentless mode

    def __post_init__(self) -> None:
        if not math.isfinite(self.lines_per_agent) or self.lines_per_agent < 0:
            raise ValueError(f"lines_per_agent must be finite and >= 0: {self.lines_per_agent}")
        counts = {
            "available_agents": self.available_agents,
            "live_calls": self.live_calls,
            "agentless_capacity": self.agentless_capacity,
        }
        if self.max_lines is not None:
            counts["max_lines"] = self.max_lines
        for name, value in counts.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0: {value}")


def _lines(agents: int, ratio: float) -> int:
    return math.floor(agents * ratio + _EPSILON)


def dials_to_place(p: PacingInput) -> int:
    """How many new calls to start now; never negative.

    - preview: 0, the agent clicks to dial and the engine never auto-dials;
    - progressive: one line per free agent;
    - power: floor(free agents * lines_per_agent) lines;
    - predictive: for now power with the ratio clamped to at least 1 (never fewer lines than
      agents); the adaptive ratio that holds the abandon rate under the cap comes later;
    - agentless: `agentless_capacity` lines whatever the agents.

    Calls already live count against the target, and `max_lines` caps live + new.
    """
    match p.mode:
        case PacingMode.PREVIEW:
            target = 0
        case PacingMode.PROGRESSIVE:
            target = p.available_agents
        case PacingMode.POWER:
            target = _lines(p.available_agents, p.lines_per_agent)
        case PacingMode.PREDICTIVE:
            target = _lines(p.available_agents, max(1.0, p.lines_per_agent))
        case PacingMode.AGENTLESS:
            target = p.agentless_capacity
    if p.max_lines is not None:
        target = min(target, p.max_lines)
    return max(0, target - p.live_calls)


def email_batch(capacity: int, in_flight: int) -> int:
    """How many emails to hand to the mail channel now; sends need no agents."""
    return max(0, capacity - in_flight)
