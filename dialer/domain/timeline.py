"""The campaign clock and what happens to a lead after an attempt (docs/architecture.md §5, §6.4).

A lead's `due` is stored in its campaign's clock. Under `freeze` the clock counts only the
time the campaign runs, so pausing stops every countdown without touching a single lead;
under `deadline` the clock is the wall clock. The claim asks `due + clock_offset <= now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dialer.domain.campaign import AnsweredBy, ResumePolicy
from dialer.domain.states import AttemptStatus


@dataclass(frozen=True, slots=True)
class CampaignClock:
    policy: ResumePolicy
    running: bool
    active_seconds: float  # time spent running, up to running_since
    clock_offset: float
    running_since: float | None

    def now(self, wall: float) -> float:
        """The campaign's clock reading at wall-clock time `wall`."""
        if self.policy is ResumePolicy.DEADLINE:
            return wall
        if self.running:
            return wall - self.clock_offset
        return self.active_seconds

    def active(self, wall: float) -> float:
        """Seconds spent running so far."""
        if self.running and self.running_since is not None:
            return self.active_seconds + max(0.0, wall - self.running_since)
        return self.active_seconds


@dataclass(frozen=True, slots=True)
class ClockChange:
    active_seconds: float
    clock_offset: float
    running_since: float | None


def clock_on_run(clock: CampaignClock, wall: float) -> ClockChange:
    """Start or resume: the clock goes on from where it stopped."""
    offset = 0.0 if clock.policy is ResumePolicy.DEADLINE else wall - clock.active_seconds
    return ClockChange(clock.active_seconds, offset, wall)


def clock_on_halt(clock: CampaignClock, wall: float) -> ClockChange:
    """Pause, terminate or complete: bank the active time; the clock stops (freeze)."""
    return ClockChange(clock.active(wall), clock.clock_offset, None)


def missed_during_pause(
    due: float, step: int, paused_at: float | None, resumed_at: float | None
) -> bool:
    """Under `deadline`: a follow-up (not the first step) that fell due while the campaign
    was paused is skipped, not sent late (Mailmeteor's rule)."""
    if step == 0 or paused_at is None or resumed_at is None:
        return False
    return paused_at <= due < resumed_at


class Verdict(StrEnum):
    ADVANCE = "advance"  # step done: go on to the next step (or complete)
    RETRY = "retry"  # try this step again after a delay
    EXHAUSTED = "exhausted"  # tries used up: go on to the next step
    REQUEUE = "requeue"  # never reached the party through our own doing: same try again
    STOP = "stop"  # the lead must not be contacted again (hard bounce)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: AttemptStatus
    answered_by: str | None = None
    abandoned: bool = False
    retryable: bool = True


def judge(outcome: Outcome, tries: int, max_attempts: int) -> Verdict:
    """What a final attempt means for the lead. `tries` counts this attempt."""
    s = outcome.status
    if s is AttemptStatus.SENT:
        return Verdict.ADVANCE
    if s is AttemptStatus.BOUNCED or (s is AttemptStatus.FAILED and not outcome.retryable):
        return Verdict.STOP
    if s is AttemptStatus.CANCELED:
        return Verdict.REQUEUE
    if (
        s is AttemptStatus.COMPLETED
        and outcome.answered_by != AnsweredBy.MACHINE
        and not outcome.abandoned
    ):
        return Verdict.ADVANCE
    return Verdict.RETRY if tries < max_attempts else Verdict.EXHAUSTED
