"""Pacing: how many dials (or sends) to start on this tick (docs/architecture.md §8).

Pure arithmetic over a snapshot the engine takes; no clock, no I/O.

Predictive pacing sizes the lines in flight so that the answers they bring are expected to
overflow the agents who can take them by no more than an abandon budget. The answers of `n`
lines are Binomial(n, answer_rate); the agents able to take them are the free ones, those
whose wrap-up ends within the expected ring time, and the expected share of agents on a call
that ends (plus its wrap-up) within that ring time. The budget comes from the room the
campaign has left under its abandon cap over the rolling window (docs/architecture.md §7.3),
less a reserve of abandons kept for a burst (`abandon_reserve`, more for a larger floor), so
the ratio adapts: it rises from the first answers on as the room grows, stays high while the
campaign is well under its cap, and falls back to one line per free agent (progressive) at
the cap, while there is too little data to trust, or while the room is within the reserve.

The cap holds in the other modes too: power's ratio is throttled down to one line per free
agent as the rolling abandon rate nears the cap, and progressive dials for half of its free
agents while the campaign is at or over it (the abandons then come from agents that left or
that another campaign took).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum

# Guards floor() against float products landing just under an integer (4.35 * 100 is
# 434.99999999999994), which would silently drop a line.
_EPSILON = 1e-9
# Fewer human answers than this in the window and the figures are noise: dial progressively.
MIN_ANSWERS = 20
# How far above the cap's headroom the model may aim. The binomial model treats every answer
# as arriving at once, against agents frozen in place; real answers spread over the ring time
# while agents free up, so the model overstates abandons and may aim at twice the headroom.
BUDGET_GAIN = 2.0
# Abandons of room a power campaign must have left under its cap over the window before it
# dials more than one line per free agent: abandons come in bursts (several answers of one
# round finding nobody), and a burst must not break the cap at any moment of the window.
ALLOWANCE_FLOOR = 3.0
# Predictive keeps this many abandons of room per agent engaged with the campaign in reserve
# (at least `RESERVE_MIN`) and aims the rest: a burst grows with the lines in flight, so with
# the floor (docs/architecture.md §8).
RESERVE_PER_AGENT = 0.1
RESERVE_MIN = 1.0
# Power's ratio falls linearly from lines_per_agent to 1 over the last third of the cap.
THROTTLE_BAND = 1 / 3


class PacingMode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"
    AGENTLESS = "agentless"


@dataclass(frozen=True, slots=True)
class PacingInput:
    """A snapshot of one campaign's capacity and recent figures; all non-negative.

    The recent figures are only read in predictive mode; their defaults (no data) make it
    behave like progressive.
    """

    mode: PacingMode
    lines_per_agent: float  # power ratio; progressive always uses 1, predictive adapts
    available_agents: int  # engaged with the campaign and free now
    live_calls: int  # queued/ringing at the carrier, not yet answered
    max_lines: int | None = None  # hard cap on concurrent unanswered calls
    agentless_capacity: int = 10  # concurrent dials in agentless mode
    # -- predictive ---------------------------------------------------------------------
    max_lines_per_agent: float = 3.0  # settings.predictive_max_lines_per_agent
    max_abandon_rate: float = 0.03  # the campaign's cap, of human answers
    abandon_rate: float = 0.0  # abandoned / human answers over the rolling window
    answered_humans: int = 0  # human answers over the rolling window
    answer_rate: float = 0.0  # human answers per finished dial, recent
    mean_ring_seconds: float = 0.0  # dial to answer, recent
    mean_talk_seconds: float = 0.0  # bridged talk time, recent
    wrap_up_seconds: float = 0.0  # the campaign's wrap-up after each call
    agents_on_call: int = 0
    wrap_up_left: tuple[float, ...] = ()  # seconds left, one per agent in wrap-up

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be finite and >= 0: {value}")
        for rate in ("max_abandon_rate", "abandon_rate", "answer_rate"):
            if getattr(self, rate) > 1:
                raise ValueError(f"{rate} must be <= 1: {getattr(self, rate)}")
        if self.max_lines_per_agent < 1:
            raise ValueError(f"max_lines_per_agent must be >= 1: {self.max_lines_per_agent}")
        if any(not math.isfinite(w) or w < 0 for w in self.wrap_up_left):
            raise ValueError("wrap_up_left must be finite and >= 0")
        object.__setattr__(self, "wrap_up_left", tuple(self.wrap_up_left))


def _lines(agents: int, ratio: float) -> int:
    return math.floor(agents * ratio + _EPSILON)


def dials_to_place(p: PacingInput) -> int:
    """How many new calls to start now; never negative.

    - preview: 0, the agent clicks to dial and the engine never auto-dials;
    - progressive: one line per free agent (half of them, rounded up, at or over the cap);
    - power: floor(free agents * `power_ratio`) lines, the ratio throttled near the cap;
    - predictive: `predictive_lines` (adaptive, between 1 line per free agent and
      `max_lines_per_agent` per agent able to answer);
    - agentless: `agentless_capacity` lines whatever the agents.

    Calls already live count against the target, and `max_lines` caps live + new.
    """
    match p.mode:
        case PacingMode.PREVIEW:
            target = 0
        case PacingMode.PROGRESSIVE:
            target = p.available_agents
            if over_cap(p):
                target = math.ceil(p.available_agents / 2)
        case PacingMode.POWER:
            target = _lines(p.available_agents, power_ratio(p))
        case PacingMode.PREDICTIVE:
            target = predictive_lines(p)
        case PacingMode.AGENTLESS:
            target = p.agentless_capacity
    if p.max_lines is not None:
        target = min(target, p.max_lines)
    return max(0, target - p.live_calls)


def over_cap(p: PacingInput) -> bool:
    """At or over the abandon cap, with enough answers in the window to say so."""
    return p.answered_humans >= MIN_ANSWERS and p.abandon_rate >= p.max_abandon_rate


def power_ratio(p: PacingInput) -> float:
    """Power's lines per free agent: `lines_per_agent` until the campaign has abandoned a
    call in the window; then 1 at or over the cap or with fewer than `ALLOWANCE_FLOOR`
    abandons of room left, and in between falling linearly to 1 over the last
    `THROTTLE_BAND` of the cap. A ratio under 1 is the operator's and is kept."""
    ratio = p.lines_per_agent
    if ratio <= 1 or p.abandon_rate <= 0:
        return ratio
    cap = p.max_abandon_rate
    if p.abandon_rate >= cap or abandon_allowance(p) < ALLOWANCE_FLOOR:
        return 1.0
    room = (cap - p.abandon_rate) / (cap * THROTTLE_BAND)
    return 1.0 + (ratio - 1.0) * min(1.0, room)


def dial_level(p: PacingInput) -> float:
    """Lines the mode keeps in flight per agent (the figure the campaign page shows):
    progressive 1 per free agent (0.5 over the cap), power its throttled ratio, predictive its
    lines over the agents working (`agents_working`), agentless and preview 0."""
    match p.mode:
        case PacingMode.PROGRESSIVE:
            return 0.5 if over_cap(p) else 1.0
        case PacingMode.POWER:
            return power_ratio(p)
        case PacingMode.PREDICTIVE:
            working = agents_working(p)
            return predictive_lines(p) / working if working else 1.0
        case _:
            return 0.0


def abandon_allowance(p: PacingInput) -> float:
    """Abandons the campaign can still afford over its window: cap x answers - abandons."""
    return p.answered_humans * (p.max_abandon_rate - p.abandon_rate)


def abandon_reserve(p: PacingInput) -> float:
    """Abandons of room predictive keeps for a burst: `RESERVE_PER_AGENT` per agent engaged
    with the campaign (free, on a call or in wrap-up), at least `RESERVE_MIN`."""
    pool = p.available_agents + p.agents_on_call + len(p.wrap_up_left)
    return max(RESERVE_MIN, RESERVE_PER_AGENT * pool)


def abandon_budget(p: PacingInput) -> float:
    """The abandon rate the model may aim at now; 0 means dial progressively.

    `BUDGET_GAIN` x the room under the cap past the reserve, per human answer in the window:
    (cap x answers - abandons - reserve) / answers. It is the cap's margin (cap - rate) once
    the window holds many answers, and grows from 0 as the first answers come in.
    """
    if p.answered_humans < MIN_ANSWERS or p.abandon_rate >= p.max_abandon_rate:
        return 0.0
    room = abandon_allowance(p) - abandon_reserve(p)
    if room <= 0:
        return 0.0
    return BUDGET_GAIN * room / p.answered_humans


def agents_soon_free(p: PacingInput) -> tuple[int, float]:
    """Agents able to take an answer within the expected ring time.

    Returns the agents counted as lines (free, and wrap-ups ending within the ring time) and
    the expected number on a call that will also be free by then (talk time taken as
    exponential: the chance a call ends within t is 1 - exp(-t / mean)).
    """
    ring = p.mean_ring_seconds
    soon = sum(1 for left in p.wrap_up_left if left <= ring)
    horizon = ring - p.wrap_up_seconds
    on_call = 0.0
    if p.agents_on_call and horizon > 0 and p.mean_talk_seconds > 0:
        on_call = p.agents_on_call * -math.expm1(-horizon / p.mean_talk_seconds)
    return p.available_agents + soon, on_call


def agents_working(p: PacingInput) -> int:
    """Agents predictive's ceiling counts: free, finishing wrap-up within the ring time, or
    on a call (VICIdial's dial level counts the same: agents not paused)."""
    counted, _ = agents_soon_free(p)
    return counted + p.agents_on_call


def expected_overflow(lines: int, answer_rate: float, agents: float) -> float:
    """E[max(0, X - agents)] for X ~ Binomial(lines, answer_rate): answers left waiting."""
    if lines <= 0 or answer_rate <= 0:
        return 0.0
    q = 1.0 - answer_rate
    if q <= 0:
        return max(0.0, lines - agents)
    # Walk the pmf upwards with the recurrence P(k+1) = P(k) * (n-k)/(k+1) * p/q, in logs
    # so that large n (q**n underflows) stays exact enough.
    log_pk = lines * math.log(q)
    ratio = math.log(answer_rate) - math.log(q)
    total = 0.0
    for k in range(lines + 1):
        if k > agents:
            total += (k - agents) * math.exp(log_pk)
        if k < lines:
            log_pk += math.log(lines - k) - math.log(k + 1) + ratio
    return total


def predictive_lines(p: PacingInput) -> int:
    """Lines (live + new) to keep in flight under predictive pacing.

    Never fewer than one per free agent; never more than `max_lines_per_agent` per agent
    working (`agents_working`); one per free agent while the budget is 0 or no agent is free
    or about to be.
    """
    budget = abandon_budget(p)
    counted, on_call = agents_soon_free(p)
    if budget <= 0 or p.answer_rate <= 0 or counted == 0:
        return p.available_agents
    floor_lines = p.available_agents
    ceiling = max(floor_lines, _lines(agents_working(p), p.max_lines_per_agent))
    capacity = counted + on_call

    def within(n: int) -> bool:
        return expected_overflow(n, p.answer_rate, capacity) <= budget * n * p.answer_rate

    # The expected abandons rise with n: binary-search the last n within the budget.
    lo, hi = floor_lines, ceiling  # lo is always allowed (the floor), hi maybe not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if within(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def email_batch(capacity: int, in_flight: int) -> int:
    """How many emails to hand to the mail channel now; sends need no agents."""
    return max(0, capacity - in_flight)
