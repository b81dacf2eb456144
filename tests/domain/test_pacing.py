from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.domain.pacing import (
    BUDGET_GAIN,
    MIN_ANSWERS,
    PacingInput,
    PacingMode,
    abandon_budget,
    abandon_reserve,
    agents_soon_free,
    agents_working,
    dials_to_place,
    email_batch,
    expected_overflow,
    predictive_lines,
)

P = PacingMode


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        # preview never auto-dials
        (PacingInput(P.PREVIEW, 1.0, available_agents=5, live_calls=0), 0),
        # progressive: one line per free agent, minus calls already ringing
        (PacingInput(P.PROGRESSIVE, 3.0, available_agents=5, live_calls=0), 5),
        (PacingInput(P.PROGRESSIVE, 3.0, available_agents=5, live_calls=2), 3),
        (PacingInput(P.PROGRESSIVE, 1.0, available_agents=2, live_calls=5), 0),
        (PacingInput(P.PROGRESSIVE, 1.0, available_agents=0, live_calls=0), 0),
        # power: floor(agents * ratio) lines
        (PacingInput(P.POWER, 2.0, available_agents=3, live_calls=0), 6),
        (PacingInput(P.POWER, 2.0, available_agents=3, live_calls=4), 2),
        (PacingInput(P.POWER, 1.5, available_agents=3, live_calls=0), 4),
        (PacingInput(P.POWER, 4.35, available_agents=100, live_calls=0), 435),  # no float loss
        (PacingInput(P.POWER, 0.5, available_agents=3, live_calls=0), 1),
        (PacingInput(P.POWER, 2.0, available_agents=0, live_calls=0), 0),
        # predictive without figures: progressive (see the predictive tables below)
        (PacingInput(P.PREDICTIVE, 2.5, available_agents=2, live_calls=1), 1),
        (PacingInput(P.PREDICTIVE, 0.5, available_agents=4, live_calls=0), 4),
        (PacingInput(P.PREDICTIVE, 2.0, available_agents=0, live_calls=0), 0),
        # agentless ignores agents
        (PacingInput(P.AGENTLESS, 1.0, available_agents=0, live_calls=3), 7),
        (PacingInput(P.AGENTLESS, 1.0, 0, 0, agentless_capacity=25), 25),
        (PacingInput(P.AGENTLESS, 1.0, 0, 30, agentless_capacity=25), 0),
        # max_lines caps live + new
        (PacingInput(P.POWER, 3.0, available_agents=4, live_calls=2, max_lines=8), 6),
        (PacingInput(P.POWER, 3.0, available_agents=4, live_calls=9, max_lines=8), 0),
        (PacingInput(P.AGENTLESS, 1.0, 0, 1, max_lines=5, agentless_capacity=10), 4),
        (PacingInput(P.PROGRESSIVE, 1.0, 5, 0, max_lines=0), 0),
    ],
)
def test_dials_to_place(p: PacingInput, expected: int) -> None:
    assert dials_to_place(p) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lines_per_agent": -1.0},
        {"lines_per_agent": math.nan},
        {"lines_per_agent": math.inf},
        {"available_agents": -1},
        {"live_calls": -1},
        {"max_lines": -1},
        {"agentless_capacity": -1},
        {"answer_rate": 1.5},
        {"abandon_rate": -0.1},
        {"max_abandon_rate": 2.0},
        {"mean_talk_seconds": math.nan},
        {"max_lines_per_agent": 0.5},
        {"agents_on_call": -1},
        {"wrap_up_left": (1.0, -2.0)},
    ],
)
def test_input_rejects_negative_or_non_finite(kwargs: dict[str, float]) -> None:
    args: dict[str, object] = {"lines_per_agent": 1.0, "available_agents": 1, "live_calls": 0}
    args.update(kwargs)
    with pytest.raises(ValueError):
        PacingInput(P.POWER, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("capacity", "in_flight", "expected"),
    [(10, 0, 10), (10, 4, 6), (10, 10, 0), (10, 12, 0), (0, 0, 0)],
)
def test_email_batch(capacity: int, in_flight: int, expected: int) -> None:
    assert email_batch(capacity, in_flight) == expected


counts = st.integers(0, 10_000)
inputs = st.builds(
    PacingInput,
    mode=st.sampled_from(PacingMode),
    lines_per_agent=st.floats(0, 10, allow_nan=False),
    available_agents=st.integers(0, 500),
    live_calls=counts,
    max_lines=st.none() | counts,
    agentless_capacity=counts,
)


@given(inputs)
def test_pacing_properties(p: PacingInput) -> None:
    n = dials_to_place(p)
    assert n >= 0
    if p.mode is PacingMode.PROGRESSIVE:
        assert n <= p.available_agents
    if p.mode is PacingMode.PREVIEW:
        assert n == 0
    if p.available_agents == 0 and p.mode is not PacingMode.AGENTLESS:
        assert n == 0
    if p.max_lines is not None:
        assert n == 0 or p.live_calls + n <= p.max_lines
    if p.mode is PacingMode.POWER:
        assert n <= math.ceil(p.available_agents * max(1.0, p.lines_per_agent))
    if p.mode is PacingMode.PREDICTIVE:  # no figures: progressive
        cap = p.available_agents if p.max_lines is None else min(p.available_agents, p.max_lines)
        assert n == max(0, cap - p.live_calls)


@given(st.integers(0, 1000), st.integers(0, 1000))
def test_email_batch_fills_to_capacity(capacity: int, in_flight: int) -> None:
    n = email_batch(capacity, in_flight)
    assert n >= 0
    assert n == 0 or in_flight + n == capacity


# -- predictive -------------------------------------------------------------------------------
# A campaign with enough history: 30 % of dials answered by a person, 15 s ring, 90 s talk,
# 10 s wrap-up, no abandons yet.
SEEN = {
    "answered_humans": 100,
    "answer_rate": 0.3,
    "mean_ring_seconds": 15.0,
    "mean_talk_seconds": 90.0,
    "wrap_up_seconds": 10.0,
}


def predictive(available: int, live: int = 0, **figures: Any) -> PacingInput:
    return PacingInput(P.PREDICTIVE, 1.0, available, live, **{**SEEN, **figures})


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        # too little data (< 20 human answers): one line per free agent
        (predictive(5, answered_humans=19), 5),
        (predictive(5, 2, answered_humans=0), 3),
        # at or over the abandon cap: back to progressive
        (predictive(5, abandon_rate=0.03), 5),
        (predictive(5, 1, abandon_rate=0.05), 4),
        (predictive(5, abandon_rate=0.01, max_abandon_rate=0.01), 5),
        # no answers seen: nothing to predict with
        (predictive(5, answer_rate=0.0), 5),
        # enough data and room under the cap: more lines than agents
        (predictive(5), 11),
        (predictive(5, 4), 7),  # live calls count against the lines
        (predictive(10, max_lines_per_agent=10), 27),
        # the closer to the cap, the fewer lines
        (predictive(10, max_lines_per_agent=10, abandon_rate=0.02, answered_humans=1000), 24),
        (predictive(10, max_lines_per_agent=10, abandon_rate=0.029, answered_humans=9000), 18),
        # less room over the window, fewer lines; none past the reserve: progressive
        (predictive(10, max_lines_per_agent=10, abandon_rate=0.02, answered_humans=299), 23),
        (predictive(10, max_lines_per_agent=10, answered_humans=60), 25),
        (predictive(10, max_lines_per_agent=10, answered_humans=40), 22),
        (predictive(10, max_lines_per_agent=10, answered_humans=33), 10),
        (predictive(10, max_lines_per_agent=10, abandon_rate=0.02, answered_humans=100), 10),
        # the configured ceiling on lines per agent
        (predictive(4, max_lines_per_agent=1.5), 6),
        (predictive(5, max_lines_per_agent=1.0), 5),
        # one free agent alone: a second line would overflow too often
        (predictive(1), 1),
        # agents on a call that may end within the ring time widen the pool (and the reserve:
        # 0.1 abandon per agent engaged)
        (predictive(2, agents_on_call=18, max_lines_per_agent=10), 4),
        # the ceiling counts agents on a call too, as VICIdial's dial level does
        (predictive(2, agents_on_call=18, max_lines_per_agent=1.0), 4),
        # a wrap-up ending within the ring time counts as an agent; a long one does not
        (predictive(0, wrap_up_left=(3.0, 30.0)), 1),
        (predictive(0, wrap_up_left=(30.0,)), 0),
        (predictive(0), 0),
        # max_lines still caps live + new
        (predictive(5, 2, max_lines=6), 4),
    ],
)
def test_predictive(p: PacingInput, expected: int) -> None:
    assert dials_to_place(p) == expected


def overflow_by_hand(n: int, rate: float, agents: float) -> float:
    return sum(
        math.comb(n, k) * rate**k * (1 - rate) ** (n - k) * max(0.0, k - agents)
        for k in range(n + 1)
    )


@given(st.integers(0, 60), st.floats(0, 1), st.floats(0, 40, allow_nan=False))
def test_expected_overflow_is_the_binomial_mean(n: int, rate: float, agents: float) -> None:
    assert expected_overflow(n, rate, agents) == pytest.approx(
        overflow_by_hand(n, rate, agents), rel=1e-6, abs=1e-9
    )


def test_expected_overflow_large_n_does_not_underflow() -> None:
    # q**n underflows to 0 for n = 5000: the log-space walk keeps the mean right.
    mean = 5000 * 0.5
    assert expected_overflow(5000, 0.5, 0) == pytest.approx(mean, rel=1e-6)


rates = st.floats(0, 1, allow_nan=False)
predictive_inputs = st.builds(
    PacingInput,
    mode=st.just(PacingMode.PREDICTIVE),
    lines_per_agent=st.floats(0, 10, allow_nan=False),
    available_agents=st.integers(0, 60),
    live_calls=st.integers(0, 200),
    max_lines=st.none() | st.integers(0, 300),
    max_lines_per_agent=st.floats(1, 5, allow_nan=False),
    max_abandon_rate=st.floats(0, 0.2, allow_nan=False),
    abandon_rate=st.floats(0, 0.2, allow_nan=False),
    answered_humans=st.integers(0, 500),
    answer_rate=rates,
    mean_ring_seconds=st.floats(0, 60, allow_nan=False),
    mean_talk_seconds=st.floats(0, 600, allow_nan=False),
    wrap_up_seconds=st.floats(0, 60, allow_nan=False),
    agents_on_call=st.integers(0, 60),
    wrap_up_left=st.lists(st.floats(0, 120, allow_nan=False), max_size=20).map(tuple),
)


@given(predictive_inputs)
def test_predictive_bounds(p: PacingInput) -> None:
    lines = predictive_lines(p)
    counted, _ = agents_soon_free(p)
    working = agents_working(p)
    # Never below one line per free agent, never above the configured lines per agent working.
    assert lines >= p.available_agents
    assert lines <= max(p.available_agents, math.floor(working * p.max_lines_per_agent + 1e-9))
    n = dials_to_place(p)
    assert n >= 0
    if p.max_lines is None:
        assert n == max(0, lines - p.live_calls)
    if p.abandon_rate >= p.max_abandon_rate or p.answered_humans < MIN_ANSWERS:
        assert lines == p.available_agents  # the fallback: progressive
    room = p.answered_humans * (p.max_abandon_rate - p.abandon_rate) - abandon_reserve(p)
    if room <= 0:
        assert lines == p.available_agents  # nothing past the reserve: progressive
    if lines > p.available_agents:
        # The extra lines are within the abandon budget by the model's own reckoning.
        capacity = counted + agents_soon_free(p)[1]
        share = expected_overflow(lines, p.answer_rate, capacity) / (lines * p.answer_rate)
        assert share <= abandon_budget(p) + 1e-12


@given(predictive_inputs, st.floats(0, 0.2, allow_nan=False))
def test_predictive_backs_off_as_abandons_rise(p: PacingInput, more: float) -> None:
    worse = replace(p, abandon_rate=min(1.0, p.abandon_rate + more))
    assert predictive_lines(worse) <= predictive_lines(p)


@given(predictive_inputs)
def test_budget_is_the_room_past_the_reserve(p: PacingInput) -> None:
    budget = abandon_budget(p)
    assert budget >= 0
    # Never more than the gain times the cap's margin; that margin once the window is large.
    assert budget <= BUDGET_GAIN * max(0.0, p.max_abandon_rate - p.abandon_rate) + 1e-12
    if budget > 0:
        # Aiming at it for the answers already in the window leaves the reserve untouched.
        abandons = p.abandon_rate * p.answered_humans
        spent = abandons + budget / BUDGET_GAIN * p.answered_humans
        assert spent <= p.max_abandon_rate * p.answered_humans - abandon_reserve(p) + 1e-9


@given(predictive_inputs, st.integers(1, 5000))
def test_budget_grows_with_the_answers_at_the_same_rate(p: PacingInput, more: int) -> None:
    # A new campaign's room grows with each answer under the cap: it aims higher and higher,
    # from progressive until the reserve is covered to the cap's margin.
    later = replace(p, answered_humans=p.answered_humans + more)
    assert abandon_budget(later) >= abandon_budget(p) - 1e-12


@pytest.mark.parametrize(
    ("p", "reserve"),
    [
        (predictive(0), 1.0),  # at least one abandon
        (predictive(4, agents_on_call=5), 1.0),
        (predictive(5, agents_on_call=10, wrap_up_left=(3.0,) * 5), 2.0),
        (predictive(5, agents_on_call=45), 5.0),  # a burst grows with the floor
    ],
)
def test_reserve_grows_with_the_floor(p: PacingInput, reserve: float) -> None:
    assert abandon_reserve(p) == pytest.approx(reserve)


def test_a_larger_floor_aims_lower_at_the_same_room() -> None:
    small = predictive(5, agents_on_call=5, answered_humans=200)
    large = replace(small, agents_on_call=45)
    assert 0 < abandon_budget(large) < abandon_budget(small)


@given(predictive_inputs)
def test_new_campaign_dials_progressively_until_the_reserve_is_covered(p: PacingInput) -> None:
    # Before cap x answers exceeds the reserve not one abandon can be afforded (the first
    # would put the window over the cap), so predictive dials one line per free agent.
    fresh = replace(p, abandon_rate=0.0)
    if fresh.answered_humans * fresh.max_abandon_rate <= abandon_reserve(fresh):
        assert predictive_lines(fresh) == fresh.available_agents
