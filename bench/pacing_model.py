"""A discrete-event model of the engine's voice loop around the pure pacer, for bench/pacing.py.

The real engine spends a few database transactions per tick and per call report, which makes
8 simulated hours take half an hour of wall time on SQLite; this model keeps everything in
memory and mirrors what the engine does, in the same order, once per virtual second:

1. answered people waiting for an agent: bridge to a free agent, else after the 2 s grace
   abandon them (message, hang-up) (`Outcomes.check_abandons`);
2. end wrap-ups that are over (`pool.end_wrap_ups`);
3. `dials_to_place` on the snapshot the dispatcher takes (`StatsWindow.pacing_input`: live
   calls = queued/ringing, free agents, and for predictive the recent figures, cached 5 s),
   through a calls-per-second token bucket, then dial (`Dispatcher._dial`).

Between ticks the carrier (`SimulatedVoice` on a `FakeClock`) reports calls as they go, and
the report handler acts like `Outcomes`: a machine is hung up with the message, a person is
bridged at once if an agent is free, a bridged call's end puts its agent in wrap-up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from dialer.channels.base import CallEvent, DialRequest
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.domain.pacing import PacingInput, PacingMode, dials_to_place
from dialer.domain.states import AttemptStatus

GRACE = 2.0
STATS_TTL = 5.0
RECENT = 200
UNANSWERED_ENDS = (AttemptStatus.BUSY, AttemptStatus.NO_ANSWER, AttemptStatus.FAILED)


@dataclass
class Call:
    created_at: float
    answered_at: float | None = None
    human: bool = False
    agent: int | None = None
    abandoned: bool = False
    done: bool = False
    talk_until: float | None = None
    duration: float | None = None  # talk time, once a bridged call ended


@dataclass
class Outcome:
    dials: int = 0
    humans: int = 0
    abandoned: int = 0
    talk_seconds: float = 0.0


@dataclass
class Model:
    clock: FakeClock
    sim: SimulatedVoice
    mode: PacingMode
    lines_per_agent: float
    agents: int
    wrap_up: float
    max_lines_per_agent: float = 3.0
    max_abandon_rate: float = 0.03
    calls_per_second: float = 20.0
    calls: dict[str, Call] = field(default_factory=dict)  # attempt id -> call
    carrier: dict[str, str] = field(default_factory=dict)  # attempt id -> carrier id
    free: deque[int] = field(default_factory=deque)
    on_call: set[int] = field(default_factory=set)
    wrap_until: dict[int, float] = field(default_factory=dict)
    resolved: deque[Call] = field(default_factory=lambda: deque(maxlen=RECENT))
    waiting: list[str] = field(default_factory=list)  # answered people, no agent yet
    live: set[str] = field(default_factory=set)  # queued or ringing
    humans: int = 0
    abandoned: int = 0
    _tokens: float = 0.0
    _last: float = 0.0
    _figures: tuple[float, dict[str, Any]] = (-1.0, {})

    def __post_init__(self) -> None:
        self.free.extend(range(self.agents))
        self.sim.set_sink(self.on_event)
        self._last = self.clock.now()

    # -- carrier reports (Outcomes.on_call_event) ---------------------------------------
    async def on_event(self, ev: CallEvent) -> None:
        call = self.calls[ev.attempt_id]
        if ev.status is AttemptStatus.IN_PROGRESS and call.answered_at is None:
            self.live.discard(ev.attempt_id)
            call.answered_at = ev.at
            call.human = ev.answered_by != "machine"
            self.humans += call.human
            self.resolved.append(call)
            if not call.human:
                await self.sim.hangup(ev.carrier_id, message="sorry")
            elif not await self._connect(ev.attempt_id):
                self.waiting.append(ev.attempt_id)
        elif ev.status in UNANSWERED_ENDS:
            self.resolved.append(call)
        if ev.status.value in ("completed", "busy", "no_answer", "failed", "canceled"):
            self.live.discard(ev.attempt_id)
            call.done = True
            if call.agent is not None:
                call.duration = ev.duration_seconds or 0.0
                self.on_call.discard(call.agent)
                if self.wrap_up > 0:
                    self.wrap_until[call.agent] = self.clock.now() + self.wrap_up
                else:
                    self.free.append(call.agent)

    async def _connect(self, attempt_id: str) -> bool:
        if not self.free:
            return False
        call = self.calls[attempt_id]
        call.agent = self.free.popleft()
        self.on_call.add(call.agent)
        carrier_id = self.carrier[attempt_id]
        await self.sim.bridge(carrier_id, str(call.agent))
        sim_call = self.sim.record[carrier_id]
        call.talk_until = self.clock.now() + sim_call.talk_seconds
        return True

    # -- one engine tick ----------------------------------------------------------------
    async def tick(self) -> None:
        now = self.clock.now()
        still: list[str] = []
        for attempt_id in self.waiting:  # Outcomes.check_abandons
            call = self.calls[attempt_id]
            if call.done or await self._connect(attempt_id):
                continue
            if call.answered_at is not None and now - call.answered_at >= GRACE:
                call.abandoned = True
                self.abandoned += 1
                await self.sim.hangup(self.carrier[attempt_id], message="sorry")
                continue
            still.append(attempt_id)
        self.waiting = still
        for agent, until in list(self.wrap_until.items()):  # pool.end_wrap_ups
            if until <= now:
                del self.wrap_until[agent]
                self.free.append(agent)
        n = dials_to_place(self.snapshot(now))
        n = self._take(now, n)
        for _ in range(n):
            await self._dial(now)

    def snapshot(self, now: float) -> PacingInput:
        live = len(self.live)
        base = PacingInput(
            mode=self.mode,
            lines_per_agent=self.lines_per_agent,
            available_agents=len(self.free),
            live_calls=live,
            max_lines_per_agent=self.max_lines_per_agent,
            max_abandon_rate=self.max_abandon_rate,
            wrap_up_seconds=self.wrap_up,
        )
        if self.mode is not PacingMode.PREDICTIVE:
            return base
        if self._figures[0] <= now:
            self._figures = (now + STATS_TTL, self._recent())
        figures = self._figures[1]
        return replace(
            base,
            **figures,
            agents_on_call=len(self.on_call),
            wrap_up_left=tuple(max(0.0, u - now) for u in self.wrap_until.values()),
        )

    def _recent(self) -> dict[str, Any]:
        rows = list(self.resolved)
        answered = [c for c in rows if c.answered_at is not None]
        talks = [c.duration for c in answered if c.duration]
        return {
            "abandon_rate": self.abandoned / self.humans if self.humans else 0.0,
            "answered_humans": self.humans,
            "answer_rate": sum(1 for c in answered if c.human) / len(rows) if rows else 0.0,
            "mean_ring_seconds": (
                sum((c.answered_at or 0.0) - c.created_at for c in answered) / len(answered)
                if answered
                else 0.0
            ),
            "mean_talk_seconds": sum(talks) / len(talks) if talks else 0.0,
        }

    def _take(self, now: float, want: int) -> int:  # MemoryBus.take
        capacity = max(1.0, self.calls_per_second)
        self._tokens = min(capacity, self._tokens + (now - self._last) * self.calls_per_second)
        self._last = now
        granted = max(0, min(want, int(self._tokens)))
        self._tokens -= granted
        return granted

    async def _dial(self, now: float) -> None:
        attempt_id = str(len(self.calls) + 1)
        self.calls[attempt_id] = Call(created_at=now)
        self.live.add(attempt_id)
        request = DialRequest(attempt_id, f"k{attempt_id}", "bench", "+12125550100", "+1", 25)
        self.carrier[attempt_id] = await self.sim.dial(request)

    def outcome(self, end: float) -> Outcome:
        out = Outcome(dials=len(self.calls))
        for attempt_id, call in self.calls.items():
            if call.answered_at is not None and call.human and call.answered_at < end:
                out.humans += 1
                out.abandoned += call.abandoned
            if call.agent is not None:
                connected = self.sim.record[self.carrier[attempt_id]].connected_at or end
                out.talk_seconds += max(0.0, min(call.talk_until or end, end) - connected)
        return out


async def run_model(
    mode: PacingMode,
    lines_per_agent: float,
    *,
    profile: SimProfile,
    seed: int,
    agents: int,
    wrap_up: float,
    seconds: float,
    start: float,
    max_lines_per_agent: float = 3.0,
) -> Outcome:
    clock = FakeClock(start)
    sim = SimulatedVoice(clock, profile, seed=seed)
    model = Model(
        clock, sim, mode, lines_per_agent, agents, wrap_up, max_lines_per_agent=max_lines_per_agent
    )
    end = start + seconds
    while clock.now() < end:
        await model.tick()
        await clock.advance(1.0)
    out = model.outcome(end)
    await sim.close()
    return out
