"""The abandon cap holds in every mode: power and progressive throttle down near it
(docs/architecture.md §8)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.domain.pacing import (
    ALLOWANCE_FLOOR,
    PacingInput,
    PacingMode,
    dial_level,
    dials_to_place,
    power_ratio,
)

P = PacingMode


def power(free: int, ratio: float = 2.0, **figures: float) -> PacingInput:
    return PacingInput(P.POWER, ratio, free, 0, **figures)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        # nothing abandoned in the window: the operator's ratio
        (power(3), 2.0),
        (power(3, answered_humans=500), 2.0),
        # well under the cap: the full ratio
        (power(3, answered_humans=1000, abandon_rate=0.01), 2.0),
        # in the last third of the cap: linear down to 1
        (power(3, answered_humans=1000, abandon_rate=0.025), 1.5),
        (power(3, 3.0, answered_humans=1000, abandon_rate=0.025), 2.0),
        # at or over the cap: one line per free agent
        (power(3, answered_humans=1000, abandon_rate=0.03), 1.0),
        (power(3, answered_humans=8, abandon_rate=0.125), 1.0),
        # under the cap but too little room left for a burst of abandons
        (power(3, answered_humans=100, abandon_rate=0.01), 1.0),
        # a stricter cap throttles sooner
        (power(3, answered_humans=1000, abandon_rate=0.01, max_abandon_rate=0.01), 1.0),
        # a ratio under 1 is the operator's choice, kept
        (power(3, 0.5, answered_humans=1000, abandon_rate=0.05), 0.5),
    ],
)
def test_power_ratio(p: PacingInput, expected: float) -> None:
    assert power_ratio(p) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (power(3), 6),
        (power(3, answered_humans=1000, abandon_rate=0.025), 4),  # floor(3 x 1.5)
        (power(3, answered_humans=1000, abandon_rate=0.04), 3),
        (replace(power(3, answered_humans=1000, abandon_rate=0.04), live_calls=2), 1),
        # progressive: half the free agents (rounded up) at or over the cap
        (PacingInput(P.PROGRESSIVE, 1.0, 5, 0, answered_humans=100, abandon_rate=0.04), 3),
        (PacingInput(P.PROGRESSIVE, 1.0, 1, 0, answered_humans=100, abandon_rate=0.04), 1),
        (PacingInput(P.PROGRESSIVE, 1.0, 5, 0, answered_humans=100, abandon_rate=0.02), 5),
        # too few answers to judge: one line per free agent
        (PacingInput(P.PROGRESSIVE, 1.0, 5, 0, answered_humans=10, abandon_rate=0.1), 5),
    ],
)
def test_dials_near_the_cap(p: PacingInput, expected: int) -> None:
    assert dials_to_place(p) == expected


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (PacingInput(P.PROGRESSIVE, 1.0, 5, 0), 1.0),
        (PacingInput(P.PROGRESSIVE, 1.0, 5, 0, answered_humans=100, abandon_rate=0.05), 0.5),
        (power(3, answered_humans=1000, abandon_rate=0.025), 1.5),
        (PacingInput(P.PREDICTIVE, 1.0, 4, 0), 1.0),  # no figures: progressive
        (PacingInput(P.AGENTLESS, 1.0, 0, 0), 0.0),
        (PacingInput(P.PREVIEW, 1.0, 3, 0), 0.0),
    ],
)
def test_dial_level(p: PacingInput, expected: float) -> None:
    assert dial_level(p) == pytest.approx(expected)


def test_predictive_dial_level_is_lines_per_agent_working() -> None:
    p = PacingInput(
        P.PREDICTIVE,
        1.0,
        5,
        0,
        answered_humans=1000,
        answer_rate=0.3,
        mean_ring_seconds=15.0,
        mean_talk_seconds=90.0,
        wrap_up_seconds=10.0,
    )
    assert dials_to_place(p) == 12
    assert dial_level(p) == pytest.approx(12 / 5)
    # Agents on a call count (as in VICIdial's level), wrap-ups ending within the ring too;
    # the level stays within the configured lines per agent.
    busy = replace(p, agents_on_call=4, wrap_up_left=(3.0, 40.0))
    lines = dials_to_place(busy)
    assert lines > 12
    assert dial_level(busy) == pytest.approx(lines / (5 + 4 + 1))
    assert dial_level(busy) <= busy.max_lines_per_agent


@given(
    st.floats(1, 5),
    st.integers(0, 5000),
    st.floats(0, 0.2),
    st.floats(0, 0.2),
    st.floats(0.001, 0.2),
)
def test_power_backs_off_as_abandons_rise(
    ratio: float, humans: int, rate: float, more: float, cap: float
) -> None:
    p = power(10, ratio, answered_humans=humans, abandon_rate=rate, max_abandon_rate=cap)
    worse = replace(p, abandon_rate=min(1.0, rate + more))
    assert 1.0 <= power_ratio(worse) <= power_ratio(p) <= ratio
    if rate > 0 and (rate >= cap or humans * (cap - rate) < ALLOWANCE_FLOOR):
        assert power_ratio(p) == 1.0


# -- closed loop --------------------------------------------------------------------------------
# A small floor, one step a second: a line is answered by a person with probability 0.3 after
# 3-25 s of ring, else ends unanswered; an answer takes a free agent at once or is abandoned;
# talk 30-150 s, then 10 s of wrap-up. The pacer sees what the engine's snapshot holds.


@dataclass
class Floor:
    agents: int
    ratio: float
    throttle: bool
    rng: random.Random = field(default_factory=lambda: random.Random(15))
    busy_until: list[float] = field(default_factory=list)
    lines: list[tuple[float, bool]] = field(default_factory=list)  # (resolves at, a person)
    humans: int = 0
    abandoned: int = 0
    worst_after_100: float = 0.0

    def run(self, seconds: int) -> float:
        self.busy_until = [0.0] * self.agents
        for now in range(seconds):
            due = [line for line in self.lines if line[0] <= now]
            self.lines = [line for line in self.lines if line[0] > now]
            for _, person in due:
                if not person:
                    continue
                self.humans += 1
                free = [i for i, t in enumerate(self.busy_until) if t <= now]
                if free:
                    self.busy_until[free[0]] = now + self.rng.uniform(30, 150) + 10
                else:
                    self.abandoned += 1
            rate = self.abandoned / self.humans if self.humans else 0.0
            if self.humans >= 100:
                self.worst_after_100 = max(self.worst_after_100, rate)
            p = PacingInput(
                P.POWER,
                self.ratio,
                available_agents=sum(1 for t in self.busy_until if t <= now),
                live_calls=len(self.lines),
                answered_humans=self.humans if self.throttle else 0,
                abandon_rate=rate if self.throttle else 0.0,
            )
            for _ in range(dials_to_place(p)):
                person = self.rng.random() < 0.3
                self.lines.append((now + self.rng.uniform(3, 25), person))
        return self.abandoned / self.humans


def test_a_small_power_campaign_stays_under_its_cap() -> None:
    # Without the throttle, 3 agents at 2 lines each abandon far over the 3 % cap...
    unthrottled = Floor(3, 2.0, throttle=False).run(4 * 3600)
    assert unthrottled > 0.08
    # ...with it, the campaign stays under the cap over its window once it has 100 answers.
    floor = Floor(3, 2.0, throttle=True)
    assert floor.run(4 * 3600) <= 0.03
    assert floor.worst_after_100 <= 0.04
