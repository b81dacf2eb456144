"""A discrete-event model of the engine's voice loop around the pure pacer, for bench/pacing.py.

The real engine spends a few database transactions per tick and per call report, which makes
8 simulated hours take half an hour of wall time on SQLite; this model keeps everything in
memory and mirrors what the engine does, in the same order, once per virtual second:

1. answered people waiting for an agent: bridge to a free agent, else after the 2 s grace
   abandon them (message, hang-up) (`Outcomes.check_abandons`);
2. end wrap-ups that are over (`pool.end_wrap_ups`);
3. `dials_to_place` on the snapshot the dispatcher takes (`StatsWindow.pacing_input`: live
   calls = queued/ringing, free agents, the abandon figures for every mode and for predictive
   the recent figures too, cached 5 s),
   through a calls-per-second token bucket, then dial (`Dispatcher._dial`).

Between ticks the carrier (`SimulatedVoice` on a `FakeClock`) reports calls as they go, and
the report handler acts like `Outcomes`: a machine is hung up with the message, a person is
bridged at once if an agent is free, a bridged call's end puts its agent in wrap-up.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

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
    abandoned_at: float | None = None
    done: bool = False
    talk_until: float | None = None
    duration: float | None = None  # talk time, once a bridged call ended


@dataclass
class Outcome:
    dials: int = 0
    humans: int = 0
    abandoned: int = 0
    talk_seconds: float = 0.0
    # The highest abandon rate over the cap's rolling window (30 days: the whole run) at any
    # moment of the run, from the first human answer on.
    max_window_abandon_rate: float = 0.0


Pacer = Callable[["Model", float], int]  # lines to start now, before the calls-per-second bucket


def engine_pacer(model: Model, now: float) -> int:
    """The engine's own pacer, on the snapshot the dispatcher takes."""
    return dials_to_place(model.snapshot(now))


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
    pacer: Pacer = engine_pacer
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
                call.abandoned_at = now
                self.abandoned += 1
                await self.sim.hangup(self.carrier[attempt_id], message="sorry")
                continue
            still.append(attempt_id)
        self.waiting = still
        for agent, until in list(self.wrap_until.items()):  # pool.end_wrap_ups
            if until <= now:
                del self.wrap_until[agent]
                self.free.append(agent)
        n = self._take(now, self.pacer(self, now))
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
        if self._figures[0] <= now:
            self._figures = (now + STATS_TTL, self._recent())
        figures = self._figures[1]
        if self.mode is not PacingMode.PREDICTIVE:  # the abandon figures only
            return replace(
                base,
                abandon_rate=figures["abandon_rate"],
                answered_humans=figures["answered_humans"],
            )
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
        # The rate only rises at an abandon: look at it there, against the answers so far.
        answers = sorted(
            c.answered_at
            for c in self.calls.values()
            if c.human and c.answered_at is not None and c.answered_at < end
        )
        drops = sorted(
            c.abandoned_at
            for c in self.calls.values()
            if c.abandoned_at is not None and c.abandoned_at < end
        )
        for n, at in enumerate(drops, start=1):
            humans = bisect_right(answers, at)
            out.max_window_abandon_rate = max(out.max_window_abandon_rate, n / max(1, humans))
        return out


def fixed_ratio(ratio: float) -> Pacer:
    """A fixed dial ratio: floor(free agents x ratio) lines in flight, whatever the abandons
    (the `hindsight ratio` row searches the best one after the fact)."""

    def pacer(model: Model, now: float) -> int:
        return max(0, math.floor(len(model.free) * ratio + 1e-9) - len(model.live))

    return pacer


@dataclass
class VicidialAdaptive:
    """VICIdial's adaptive predictive dial level (`bin/AST_VDadapt.pl`), our own rendering of
    its published algorithm, driving lines the way `AST_VDauto_dial.pl` does.

    - Every second: ready agents (free), calls waiting for an agent (answered, not bridged)
      and agents logged in (every status, wrap-up included: `vicidial_live_agents` grouped
      by status); the differential is the average of ready minus waiting over the last 15
      samples (`count_agents_lines`).
    - Every 15 s (`calculate_dial_level`): level x (1 + intensity-weighted differential /
      average agents), capped at `adaptive_maximum_level`, never under 1.0.
    - Every 60 s the drop figures (`calculate_drops`); over more than 20 calls in the last
      minute with over 50 % of them dropped the level is halved; over 50 calls today with
      drops / human answers over `adaptive_dropped_percentage`, ADAPT_AVERAGE halves the
      level and ADAPT_TAPERED multiplies it by (latest hour - now) / 1000 in HHMM units
      (1 with more than 10 hours left, 1.0 past the latest hour).
    - Lines (`AST_VDauto_dial.pl`): round(level x agents not paused: free or on a call)
      minus the campaign's calls dialling, waiting or connected. Agents in wrap-up are
      paused in VICIdial (disposition), so they count for neither.
    """

    method: str = "ADAPT_AVERAGE"  # or ADAPT_TAPERED
    level: float = 1.0  # auto_dial_level, the campaign's starting level
    maximum_level: float = 3.0  # adaptive_maximum_level
    dropped_percentage: float = 3.0  # adaptive_dropped_percentage
    intensity: float = 0.0  # adaptive_intensity, -40..40
    dl_diff_target: float = 0.0  # adaptive_dl_diff_target
    latest_server_time: int = 2100  # adaptive_latest_server_time, HHMM
    timezone: str = "America/New_York"
    samples: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=15))
    levels: list[float] = field(default_factory=list)
    _next_level: float = 15.0
    _next_drops: float = 0.0
    _calls_one: int = 0
    _drops_one: int = 0
    _calls_today: int = 0
    _answers_today: int = 0
    _drops_today: int = 0
    _start: float | None = None

    def __call__(self, model: Model, now: float) -> int:
        if self._start is None:
            self._start = now
            self._next_level += now
            self._next_drops = now
        waiting = sum(1 for a in model.waiting if not model.calls[a].done)
        agents = len(model.free) + len(model.on_call)  # not paused (wrap-up is paused)
        self.samples.append((len(model.free), waiting, model.agents))
        if now >= self._next_drops:
            self._drops(model, now)
            self._next_drops = now + 60.0
        if now >= self._next_level:
            self._adjust(now)
            self._next_level = now + 15.0
        goal = round(self.level * max(0.0, agents + self.dl_diff_target))
        active = len(model.live) + waiting + len(model.on_call)
        return max(0, goal - active)

    def _drops(self, model: Model, now: float) -> None:
        calls = list(model.calls.values())
        self._calls_one = sum(1 for c in calls if c.created_at > now - 60)
        self._drops_one = sum(1 for c in calls if c.abandoned and c.created_at > now - 60)
        self._calls_today = len(calls)
        self._answers_today = model.humans
        self._drops_today = model.abandoned

    def _adjust(self, now: float) -> None:
        n = len(self.samples)
        ready = sum(s[0] for s in self.samples) / n
        waiting = sum(s[1] for s in self.samples) / n
        agents_avg = sum(s[2] for s in self.samples) / n
        if agents_avg <= 0:
            return
        target = ready - waiting + self.dl_diff_target
        mul = target / agents_avg
        intensity = self.intensity / 100
        diff = mul * (abs(intensity - 1) if mul < 0 else intensity + 1)
        level = min(self.level * (1 + diff), self.maximum_level)
        level = max(level, 1.0)
        if self._calls_one > 20 and 100 * self._drops_one / self._calls_one > 50:
            level /= 2
        answers = max(1, self._answers_today)
        if self._calls_today > 50 and 100 * self._drops_today / answers > self.dropped_percentage:
            if self.method == "ADAPT_AVERAGE":
                level /= 2
            elif self.method == "ADAPT_TAPERED":
                local = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
                left = self.latest_server_time - (local.hour * 100 + local.minute)
                level = 1.0 if left < 0 else level * (1.0 if left > 1000 else left / 1000)
        self.level = max(level, 1.0)
        self.levels.append(self.level)


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
    pacer: Pacer = engine_pacer,
) -> Outcome:
    clock = FakeClock(start)
    sim = SimulatedVoice(clock, profile, seed=seed, keep_finished=10**9)
    model = Model(
        clock,
        sim,
        mode,
        lines_per_agent,
        agents,
        wrap_up,
        max_lines_per_agent=max_lines_per_agent,
        pacer=pacer,
    )
    end = start + seconds
    while clock.now() < end:
        await model.tick()
        await clock.advance(1.0)
    out = model.outcome(end)
    await sim.close()
    return out
