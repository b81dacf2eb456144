from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.domain.pacing import PacingInput, PacingMode, dials_to_place, email_batch

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
        # predictive (for now): power with the ratio at least 1
        (PacingInput(P.PREDICTIVE, 2.5, available_agents=2, live_calls=1), 4),
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
    if p.mode in (PacingMode.POWER, PacingMode.PREDICTIVE):
        assert n <= math.ceil(p.available_agents * max(1.0, p.lines_per_agent))


@given(st.integers(0, 1000), st.integers(0, 1000))
def test_email_batch_fills_to_capacity(capacity: int, in_flight: int) -> None:
    n = email_batch(capacity, in_flight)
    assert n >= 0
    assert n == 0 or in_flight + n == capacity
