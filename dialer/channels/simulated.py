"""A simulated voice carrier: a small discrete-event model of calls on the injected clock.

Every outcome is drawn from a seeded `random.Random` when the call is dialled (outcome, ring
time and talk time together), so a seeded run is reproducible whatever the engine does in
between. All timing goes through `clock.schedule`: on a `FakeClock` a test drives the carrier
deterministically, on the system clock it runs in (scaled) real time.

Events are never delivered from inside `dial`/`cancel`/`bridge`/`hangup`: they are queued per
call and delivered by a scheduled task, so the engine has stored the carrier id before the
first report arrives, and the reports of one call reach the sink in order, one at a time.
"""

from __future__ import annotations

import logging
import math
import random
from bisect import bisect_right
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import accumulate

from dialer.channels.base import (
    NOT_PLACED,
    CallEvent,
    CallEventSink,
    CallFate,
    CallQuery,
    ChannelError,
    DialRequest,
    FateKind,
)
from dialer.clock import Clock, Handle
from dialer.domain.campaign import AnsweredBy
from dialer.domain.states import ATTEMPT_FINAL, AttemptStatus

log = logging.getLogger(__name__)

# US rules (and good manners): an unanswered call rings at least 15 s before giving up.
MIN_RING_TIMEOUT = 15.0
# A report the engine could not take is sent again after 0.5 s, doubling up to 10 s.
REDELIVERY_BASE = 0.5
REDELIVERY_CAP = 10.0


@dataclass(frozen=True)
class SimProfile:
    answer_rate: float = 0.3  # human answers among all calls
    machine_rate: float = 0.1
    busy_rate: float = 0.1
    fail_rate: float = 0.02  # the rest is no-answer
    queue_seconds: float = 0.5  # carrier queue before it rings (pause cancels calls still there)
    ring_mean: float = 12.0
    ring_min: float = 3.0
    talk_mean: float = 90.0
    talk_min: float = 5.0
    machine_message_seconds: float = 20.0
    message_seconds: float = 5.0  # a message played by `hangup(message=...)`

    def __post_init__(self) -> None:
        rates = (self.answer_rate, self.machine_rate, self.busy_rate, self.fail_rate)
        if min(rates) < 0 or sum(rates) > 1 + 1e-9:
            raise ValueError("outcome rates must be >= 0 and sum to at most 1")
        if self.ring_mean <= 0 or self.talk_mean <= 0:
            raise ValueError("ring_mean and talk_mean must be > 0")


class Outcome(StrEnum):
    HUMAN = AnsweredBy.HUMAN.value
    MACHINE = AnsweredBy.MACHINE.value
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no_answer"


class Phase(StrEnum):
    QUEUED = "queued"
    RINGING = "ringing"
    ANSWERED = "answered"  # a human waiting for bridge() or hangup(), or a machine's greeting
    BRIDGED = "bridged"
    ENDING = "ending"  # hung up, playing a message before it completes
    DONE = "done"


@dataclass(eq=False)
class SimCall:
    """One call in the carrier's log: what was drawn and what happened."""

    carrier_id: str
    request: DialRequest
    outcome: Outcome
    ring_seconds: float  # unscaled; for a no-answer, the ring timeout
    talk_seconds: float  # unscaled, used if bridged
    phase: Phase = Phase.QUEUED
    bridged_to: str | None = None
    connected_at: float | None = None
    timeline: list[CallEvent] = field(default_factory=list)
    _step: Handle | None = field(default=None, repr=False)
    _outbox: deque[CallEvent] = field(default_factory=deque, repr=False)
    _flushing: bool = field(default=False, repr=False)
    _flusher: Handle | None = field(default=None, repr=False)  # a delivery not yet started
    _failures: int = field(default=0, repr=False)  # deliveries in a row the sink refused

    @property
    def status(self) -> AttemptStatus:
        return self.timeline[-1].status


def _lognormal(rng: random.Random, mean: float, floor: float, sigma: float) -> float:
    """A right-skewed duration with the given mean, never below `floor`."""
    return max(floor, rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma))


KEEP_FINISHED = 5_000  # finished calls the simulated carrier remembers (about 9 MB)


class SimulatedVoice:
    """The `VoiceChannel` of the demo and the benchmarks.

    `record` is the carrier's call log (carrier id -> `SimCall`), `counts` its counters.
    `time_scale` divides every wait (`math.inf` makes them all 0); the durations it reports
    are the call's own, unscaled seconds (a 90 s call reports 90 s however fast it ran).
    `calls_per_second` is the account's rate in clock time, not scaled. The log keeps the
    `keep_finished` most recent finished calls (memory stays flat over millions of calls);
    a lookup of a call older than the ones it forgot answers "unknown", never "not placed".
    """

    name = "simulated"

    def __init__(
        self,
        clock: Clock,
        profile: SimProfile = SimProfile(),
        *,
        seed: int | None = None,
        time_scale: float = 1.0,
        calls_per_second: float | None = None,
        keep_finished: int = KEEP_FINISHED,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if calls_per_second is not None and calls_per_second <= 0:
            raise ValueError("calls_per_second must be > 0")
        self.profile = profile
        self.record: dict[str, SimCall] = {}  # carrier id -> call, in dial order
        self.counts: Counter[str] = Counter()
        self._clock = clock
        self._rng = random.Random(seed)
        self._scale = time_scale
        # The rate is the carrier account's, in clock time: time_scale does not change it.
        self._interval = 0.0 if calls_per_second is None else 1.0 / calls_per_second
        self._next_exit = -math.inf
        self._by_key: dict[str, SimCall] = {}
        self._keep = keep_finished
        self._finished: deque[SimCall] = deque()
        self._forgot_until = -math.inf  # the latest dial time of a call the log dropped
        self._sink: CallEventSink | None = None
        self._closed = False
        # The record covers calls placed since this carrier came up; of older ones (a crash
        # of the process) it knows nothing.
        self._born = clock.now()
        self.redeliveries = 0  # reports the sink failed to take and that were sent again

    def set_sink(self, sink: CallEventSink) -> None:
        self._sink = sink

    async def dial(self, request: DialRequest) -> str:
        if self._sink is None:
            raise RuntimeError("set_sink() must be called before dial()")
        if self._closed:
            raise RuntimeError("the simulated carrier is closed")
        known = self._by_key.get(request.idempotency_key)
        if known is not None:
            self.counts["deduplicated"] += 1
            return known.carrier_id
        call = self._draw(request)
        self.record[call.carrier_id] = call
        self._by_key[request.idempotency_key] = call
        self.counts["dialed"] += 1
        self._emit(call, AttemptStatus.QUEUED)
        now = self._clock.now()
        leave_at = max(now + self._scaled(self.profile.queue_seconds), self._next_exit)
        self._next_exit = leave_at + self._interval
        call._step = self._clock.schedule(leave_at - now, lambda: self._ring(call))
        return call.carrier_id

    def _draw(self, request: DialRequest) -> SimCall:
        p, rng = self.profile, self._rng
        carrier_id = f"SIM{rng.getrandbits(128):032x}"
        u = rng.random()
        ring = _lognormal(rng, p.ring_mean, p.ring_min, 0.5)
        talk = _lognormal(rng, p.talk_mean, p.talk_min, 0.8)
        timeout = max(float(request.ring_timeout_seconds), MIN_RING_TIMEOUT)
        cuts = list(accumulate((p.answer_rate, p.machine_rate, p.busy_rate, p.fail_rate)))
        outcome = list(Outcome)[bisect_right(cuts, u)]  # Outcome is declared in this order
        if outcome in (Outcome.BUSY, Outcome.FAILED):
            ring = p.ring_min  # a busy line or a carrier failure is known quickly
        elif outcome is Outcome.NO_ANSWER or ring > timeout:
            outcome, ring = Outcome.NO_ANSWER, timeout
        return SimCall(carrier_id, request, outcome, ring, talk)

    async def _ring(self, call: SimCall) -> None:
        call._step = None
        call.phase = Phase.RINGING
        self._emit(call, AttemptStatus.INITIATED)
        self._emit(call, AttemptStatus.RINGING)
        call._step = self._clock.schedule(self._scaled(call.ring_seconds), lambda: self._pick(call))

    async def _pick(self, call: SimCall) -> None:
        call._step = None
        match call.outcome:
            case Outcome.HUMAN | Outcome.MACHINE:
                call.phase = Phase.ANSWERED
                call.connected_at = self._clock.now()
                self.counts[f"answered_{call.outcome}"] += 1
                self._emit(call, AttemptStatus.IN_PROGRESS, answered_by=AnsweredBy(call.outcome))
                if call.outcome is Outcome.MACHINE:  # its greeting plays, then it hangs up
                    greeting = self.profile.machine_message_seconds
                    self._complete_after(call, self._scaled(greeting), greeting)
            case Outcome.BUSY:
                self._emit(call, AttemptStatus.BUSY)
            case Outcome.FAILED:
                self._emit(call, AttemptStatus.FAILED, error="simulated carrier failure")
            case Outcome.NO_ANSWER:
                self._emit(call, AttemptStatus.NO_ANSWER)

    async def cancel(self, carrier_id: str) -> bool:
        call = self.record.get(carrier_id)
        if call is None or call.phase is not Phase.QUEUED or self._closed:
            return False
        self._cancel_step(call)
        self._emit(call, AttemptStatus.CANCELED)
        return True

    async def bridge(self, carrier_id: str, agent_id: str) -> None:
        call = self._call(carrier_id)
        if call.phase is not Phase.ANSWERED:
            raise ChannelError(f"call {carrier_id} is {call.phase}, not answered", retryable=False)
        self._cancel_step(call)  # a machine's greeting, if one is playing
        call.phase = Phase.BRIDGED
        call.bridged_to = agent_id
        call.connected_at = self._clock.now()
        self.counts["bridged"] += 1
        self._complete_after(call, self._scaled(call.talk_seconds), call.talk_seconds)

    async def hangup(self, carrier_id: str, *, message: str | None = None) -> None:
        call = self._call(carrier_id)
        if call.phase in (Phase.QUEUED, Phase.RINGING):
            raise ChannelError(f"call {carrier_id} is {call.phase}, not answered", retryable=False)
        if call.phase in (Phase.ENDING, Phase.DONE):
            return  # hanging up twice is a no-op
        self._cancel_step(call)
        talked = 0.0
        if call.phase is Phase.BRIDGED and call.connected_at is not None:
            talked = self._unscaled(self._clock.now() - call.connected_at, call.talk_seconds)
        call.phase = Phase.ENDING
        played = self.profile.message_seconds if message else 0.0
        self._complete_after(call, self._scaled(played), talked + played)

    async def lookup(self, query: CallQuery) -> CallFate:
        call = self._by_key.get(query.idempotency_key)
        if call is not None:
            return CallFate(FateKind.KNOWN, call.timeline[-1])
        if query.placed_after >= self._born and query.placed_after > self._forgot_until:
            return NOT_PLACED
        if query.placed_after >= self._born:
            return CallFate(FateKind.UNKNOWN, why="the carrier's record of calls that old is gone")
        return CallFate(FateKind.UNKNOWN, why="the carrier's record died with its process")

    async def close(self) -> None:
        self._closed = True
        for call in self.record.values():
            self._cancel_step(call)
            call._outbox.clear()
            if call._flusher is not None:  # a delivery already running stops by itself
                call._flusher.cancel()
                call._flusher = None

    def _call(self, carrier_id: str) -> SimCall:
        call = self.record.get(carrier_id)
        if call is None:
            raise ChannelError(f"unknown call {carrier_id}", retryable=False)
        return call

    def _cancel_step(self, call: SimCall) -> None:
        if call._step is not None:
            call._step.cancel()
            call._step = None

    def _complete_after(self, call: SimCall, delay: float, duration: float) -> None:
        async def complete() -> None:
            call._step = None
            self._emit(call, AttemptStatus.COMPLETED, duration_seconds=duration)

        call._step = self._clock.schedule(delay, complete)

    def _emit(
        self,
        call: SimCall,
        status: AttemptStatus,
        *,
        answered_by: AnsweredBy | None = None,
        duration_seconds: float | None = None,
        error: str | None = None,
    ) -> None:
        ids, at = (call.request.attempt_id, call.carrier_id), self._clock.now()
        event = CallEvent(*ids, status, at, answered_by, duration_seconds, error)
        call.timeline.append(event)
        if status in ATTEMPT_FINAL:
            call.phase = Phase.DONE
            self.counts[status.value] += 1
            self._forget_old(call)
        call._outbox.append(event)
        if not call._flushing:
            call._flushing = True
            call._flusher = self._clock.schedule(0, lambda: self._flush(call))

    async def _flush(self, call: SimCall) -> None:
        """Deliver the call's reports in order. A report the sink fails to take (the
        database is down, say) stays first in line and is sent again after a backoff:
        no report is ever dropped (docs/architecture.md §15.4)."""
        call._flusher = None
        retry = False
        try:
            while call._outbox and not self._closed and self._sink is not None:
                event = call._outbox[0]
                try:
                    await self._sink(event)
                except Exception as exc:
                    log.warning(
                        "call event not applied, will retry",
                        extra={"carrier_id": call.carrier_id, "error": type(exc).__name__},
                    )
                    retry = True
                    break
                if call._outbox and call._outbox[0] is event:  # `close` may have emptied it
                    call._outbox.popleft()
                call._failures = 0
        finally:
            call._flushing = False
        if retry and not self._closed:
            call._failures += 1
            self.redeliveries += 1
            delay = min(REDELIVERY_CAP, REDELIVERY_BASE * 2 ** (call._failures - 1))
            call._flushing = True
            call._flusher = self._clock.schedule(delay, lambda: self._flush(call))

    def _forget_old(self, done: SimCall) -> None:
        self._finished.append(done)
        while len(self._finished) > self._keep:
            call = self._finished.popleft()
            self.record.pop(call.carrier_id, None)
            self._by_key.pop(call.request.idempotency_key, None)
            self._forgot_until = max(self._forgot_until, call.timeline[0].at)

    def _scaled(self, seconds: float) -> float:
        return 0.0 if math.isinf(self._scale) else seconds / self._scale

    def _unscaled(self, elapsed: float, cap: float) -> float:
        """The call's own seconds for `elapsed` seconds of clock time, at most `cap`."""
        if math.isinf(self._scale):
            return cap if elapsed > 0 else 0.0
        return min(cap, elapsed * self._scale)
