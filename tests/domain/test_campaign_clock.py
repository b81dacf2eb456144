"""The campaign clock and the verdict on a lead after an attempt (docs/architecture.md §5,
§6.4), through the functions the engine calls: `clock_on_run` / `clock_on_halt` on every
state change (engine/control.py), `CampaignClock.now` for the claim's `due_before`,
`missed_during_pause` under `deadline`, `judge` for a final attempt. Wall time comes from a
FakeClock moved by the test. Each test here fails on a mutant of dialer/domain/timeline.py
that the engine tests let through (README, "Mutation testing")."""

from __future__ import annotations

import pytest

from dialer.clock import FakeClock
from dialer.domain.campaign import AnsweredBy, ResumePolicy
from dialer.domain.states import AttemptStatus
from dialer.domain.timeline import (
    CampaignClock,
    Outcome,
    Verdict,
    clock_on_halt,
    clock_on_run,
    judge,
    missed_during_pause,
)


def created(policy: ResumePolicy) -> CampaignClock:
    """A campaign never started, as engine/control.py reads it from its row."""
    return CampaignClock(policy, False, 0.0, 0.0, None)


def run(clock: CampaignClock, wall: float) -> CampaignClock:
    """Start or resume at `wall`: the row's clock columns as `control._run` writes them."""
    change = clock_on_run(clock, wall)
    return CampaignClock(
        clock.policy, True, change.active_seconds, change.clock_offset, change.running_since
    )


def halt(clock: CampaignClock, wall: float) -> CampaignClock:
    """Pause, terminate or complete at `wall` (`control._halt`)."""
    change = clock_on_halt(clock, wall)
    return CampaignClock(
        clock.policy, False, change.active_seconds, change.clock_offset, change.running_since
    )


async def test_freeze_clock_counts_only_running_time() -> None:
    wall = FakeClock()
    clock = run(created(ResumePolicy.FREEZE), wall.now())
    assert clock.now(wall.now()) == 0.0  # a new campaign's clock starts at zero
    await wall.advance(100)
    assert clock.now(wall.now()) == 100.0
    assert clock.active(wall.now()) == 100.0

    clock = halt(clock, wall.now())
    await wall.advance(3600)  # an hour paused: the clock stands still
    assert clock.now(wall.now()) == 100.0
    assert clock.active(wall.now()) == 100.0

    clock = run(clock, wall.now())
    assert clock.now(wall.now()) == 100.0  # goes on from where it stopped
    await wall.advance(50)
    assert clock.now(wall.now()) == 150.0
    assert clock.active(wall.now()) == 150.0

    clock = halt(clock, wall.now())  # a second pause banks the second stretch too
    await wall.advance(7200)
    clock = run(clock, wall.now())
    await wall.advance(25)
    assert clock.now(wall.now()) == clock.active(wall.now()) == 175.0


async def test_a_delay_set_before_a_pause_is_frozen_while_paused() -> None:
    """A retry due 300 s (campaign clock) after a try 200 s before the pause is due 100 s
    of running after the resume, however long the pause lasted."""
    wall = FakeClock()
    clock = run(created(ResumePolicy.FREEZE), wall.now())
    await wall.advance(1000)
    due = clock.now(wall.now() - 200) + 300
    clock = halt(clock, wall.now())
    await wall.advance(86_400)
    assert not due <= clock.now(wall.now())  # the claim's test: nothing falls due paused
    clock = run(clock, wall.now())
    await wall.advance(99)
    assert not due <= clock.now(wall.now())
    await wall.advance(1)
    assert due <= clock.now(wall.now())


async def test_deadline_clock_is_the_wall_clock_paused_or_not() -> None:
    wall = FakeClock()
    clock = run(created(ResumePolicy.DEADLINE), wall.now())
    assert clock.now(wall.now()) == wall.now()
    await wall.advance(100)
    clock = halt(clock, wall.now())
    await wall.advance(500)
    assert clock.now(wall.now()) == wall.now()  # pausing stops no countdown
    assert clock.active(wall.now()) == 100.0  # but only running time counts as active
    clock = run(clock, wall.now())
    await wall.advance(30)
    assert clock.now(wall.now()) == wall.now()
    assert clock.active(wall.now()) == 130.0


def test_active_time_never_runs_backwards_nor_counts_when_not_running() -> None:
    since = FakeClock().now()
    running = CampaignClock(ResumePolicy.FREEZE, True, 40.0, since - 40.0, since)
    assert running.active(since) == 40.0
    assert running.active(since - 5) == 40.0  # a wall reading before running_since adds nothing
    # The state decides: a campaign not running counts no time, whatever running_since says.
    stopped = CampaignClock(ResumePolicy.FREEZE, False, 40.0, since - 40.0, since)
    assert stopped.active(since + 60) == 40.0
    assert stopped.now(since + 60) == 40.0


@pytest.mark.parametrize(
    ("due", "missed"),
    [
        (999.0, False),  # fell due before the pause: sent late is not "missed"
        (1000.0, True),  # due the instant the pause began
        (1500.0, True),
        (1999.0, True),
        (2000.0, False),  # due the instant of the resume: sent now
        (2500.0, False),
    ],
)
def test_a_follow_up_due_while_paused_is_missed(due: float, missed: bool) -> None:
    assert missed_during_pause(due, 1, 1000.0, 2000.0) is missed


def test_the_first_step_and_a_campaign_never_paused_miss_nothing() -> None:
    assert missed_during_pause(1500.0, 0, 1000.0, 2000.0) is False
    assert missed_during_pause(1500.0, 2, None, 2000.0) is False
    assert missed_during_pause(1500.0, 2, 1000.0, None) is False
    assert missed_during_pause(1500.0, 2, None, None) is False


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (Outcome(AttemptStatus.SENT), Verdict.ADVANCE),
        (Outcome(AttemptStatus.COMPLETED), Verdict.ADVANCE),  # answered, nobody said who
        (Outcome(AttemptStatus.COMPLETED, AnsweredBy.HUMAN), Verdict.ADVANCE),
        (Outcome(AttemptStatus.COMPLETED, AnsweredBy.UNKNOWN), Verdict.ADVANCE),
        (Outcome(AttemptStatus.COMPLETED, AnsweredBy.MACHINE), Verdict.RETRY),
        (Outcome(AttemptStatus.COMPLETED, AnsweredBy.HUMAN, abandoned=True), Verdict.RETRY),
        (Outcome(AttemptStatus.BOUNCED), Verdict.STOP),
        (Outcome(AttemptStatus.FAILED, retryable=False), Verdict.STOP),
        (Outcome(AttemptStatus.FAILED), Verdict.RETRY),  # failures are retryable by default
        (Outcome(AttemptStatus.BUSY), Verdict.RETRY),
        (Outcome(AttemptStatus.NO_ANSWER), Verdict.RETRY),
        (Outcome(AttemptStatus.CANCELED), Verdict.REQUEUE),
        (Outcome(AttemptStatus.CANCELED, retryable=False), Verdict.REQUEUE),
    ],
    ids=str,
)
def test_judge_with_tries_left(outcome: Outcome, verdict: Verdict) -> None:
    assert judge(outcome, 1, 3) is verdict


@pytest.mark.parametrize(
    ("tries", "verdict"), [(1, Verdict.RETRY), (2, Verdict.RETRY), (3, Verdict.EXHAUSTED)]
)
def test_the_last_try_exhausts_the_step(tries: int, verdict: Verdict) -> None:
    assert judge(Outcome(AttemptStatus.NO_ANSWER), tries, 3) is verdict
    assert judge(Outcome(AttemptStatus.COMPLETED, AnsweredBy.MACHINE), tries, 3) is verdict
    # What ends the step or the lead does so on any try.
    assert judge(Outcome(AttemptStatus.SENT), tries, 3) is Verdict.ADVANCE
    assert judge(Outcome(AttemptStatus.BOUNCED), tries, 3) is Verdict.STOP
    assert judge(Outcome(AttemptStatus.CANCELED), tries, 3) is Verdict.REQUEUE
