"""Pacing simulator: agent occupancy and abandon rate of progressive, power and predictive.

The pure pacer (`dials_to_place`) against the simulated carrier (`SimulatedVoice`) on a
`FakeClock`, once a virtual second, two ways:

- `--engine model` (default, seconds of wall time): `pacing_model.py`, a discrete-event model
  of the engine's voice loop that feeds the pacer the snapshot the dispatcher takes and acts
  on the carrier's reports as `Outcomes` does (bridge to a free agent, talk, wrap-up; a
  machine gets the message; an answered person with no agent after 2 s is abandoned);
- `--engine real`: the engine itself (`Engine.tick()`, as `tests/harness.py` drives it) on
  SQLite; about 6 minutes of wall time per virtual hour. On the same seed the two agree to a
  few dials (1 h: 2,092 vs 2,094 predictive dials, the same 618 human answers and 11 abandons).

Defaults (issue 5): 20 agents, 30 % of dials answered by a person, mean talk 90 s, wrap-up
10 s, mean ring 15 s, 8 simulated hours, one seed for every mode (the carrier draws each
call's outcome from it, so the modes differ only by their pacing).

- occupancy = talk time / logged-in time (agents x hours), talk cut at the end of the run;
- abandon rate = abandoned / human answers (the campaign has no older calls, so this is its
  30-day rate).

    .venv/bin/python bench/pacing.py                  # 3 modes x 8 h, in parallel processes
    .venv/bin/python bench/pacing.py --hours 1 --modes predictive
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from common import (
    ADMIN,
    MONDAY_10_NY,
    bulk_leads,
    database,
    emit_json,
    open_dialer,
    print_table,
)
from pacing_model import run_model
from sqlalchemy import case, func, select

from dialer.channels.simulated import Phase, SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.domain.pacing import PacingMode
from dialer.domain.states import AgentState
from dialer.store.models import Attempt

MODES: dict[str, dict[str, Any]] = {
    "progressive": {"mode": "progressive"},
    "power 2.0": {"mode": "power", "lines_per_agent": 2.0},
    "predictive": {"mode": "predictive"},
}
TARGET_ABANDON = 0.03
TARGET_GAIN = 1.4


@dataclass
class Row:
    mode: str
    dials: int
    humans: int
    abandoned: int
    abandon_rate: float
    occupancy: float
    talk_hours: float
    wall_seconds: float


def profile(answer_rate: float, ring: float, talk: float) -> SimProfile:
    return SimProfile(answer_rate=answer_rate, ring_mean=ring, talk_mean=talk)


async def simulate_model(mode: str, args: argparse.Namespace) -> Row:
    started = time.perf_counter()
    pacing = MODES[mode]
    out = await run_model(
        PacingMode(pacing["mode"]),
        float(pacing.get("lines_per_agent", 1.0)),
        profile=profile(args.answer_rate, args.ring, args.talk),
        seed=args.seed,
        agents=args.agents,
        wrap_up=args.wrap_up,
        seconds=args.hours * 3600,
        start=MONDAY_10_NY,
        max_lines_per_agent=args.max_lines_per_agent,
    )
    return Row(
        mode=mode,
        dials=out.dials,
        humans=out.humans,
        abandoned=out.abandoned,
        abandon_rate=out.abandoned / out.humans if out.humans else 0.0,
        occupancy=out.talk_seconds / (args.agents * args.hours * 3600),
        talk_hours=out.talk_seconds / 3600,
        wall_seconds=time.perf_counter() - started,
    )


async def simulate_engine(mode: str, args: argparse.Namespace) -> Row:
    started = time.perf_counter()
    clock = FakeClock(MONDAY_10_NY)
    sim = SimulatedVoice(
        clock, profile(args.answer_rate, args.ring, args.talk), seed=args.seed, time_scale=1.0
    )
    seconds = int(args.hours * 3600)
    async with (
        database("sqlite") as url,
        open_dialer(
            url,
            clock=clock,
            voice=sim,
            tick_seconds=1.0,
            predictive_max_lines_per_agent=args.max_lines_per_agent,
        ) as rt,
    ):
        agent_ids = [f"a{i:02d}" for i in range(args.agents)]
        for agent_id in agent_ids:
            await rt.service.agents.create(
                agent_id.upper(), agent_id=agent_id, state=AgentState.AVAILABLE
            )
        body = {
            "name": f"pacing {mode}",
            "sequence": [{"channel": "voice", "max_attempts": 1, "ring_timeout_seconds": 25}],
            "caller_ids": ["+14155550100"],
            "agent_ids": agent_ids,
            "wrap_up_seconds": args.wrap_up,
            "pacing": {**MODES[mode], "calls_per_second": 20},
        }
        c = await rt.service.create_campaign(body, actor=ADMIN)
        await bulk_leads(rt.db, c.id, args.leads, clock.now())
        await rt.service.start(c.id, actor=ADMIN)
        end = clock.now() + seconds
        while clock.now() < end:
            await rt.engine.tick()
            await clock.advance(1.0)
        async with rt.db.reader() as s:
            humans, abandoned = (
                await s.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(case((Attempt.abandoned.is_(True), 1), else_=0)), 0),
                    ).where(
                        Attempt.campaign_id == c.id,
                        Attempt.answered_at.is_not(None),
                        Attempt.answered_by != "machine",
                    )
                )
            ).one()
        talk = sum(_talk(call.connected_at, call.talk_seconds, end) for call in _bridged(sim))
        dials = len(sim.record)
        await sim.close()
    humans, abandoned = int(humans), int(abandoned)
    return Row(
        mode=mode,
        dials=dials,
        humans=humans,
        abandoned=abandoned,
        abandon_rate=abandoned / humans if humans else 0.0,
        occupancy=talk / (args.agents * seconds),
        talk_hours=talk / 3600,
        wall_seconds=time.perf_counter() - started,
    )


def _bridged(sim: SimulatedVoice) -> list[Any]:
    return [c for c in sim.record.values() if c.bridged_to is not None and c.phase != Phase.QUEUED]


def _talk(connected_at: float | None, talk_seconds: float, end: float) -> float:
    if connected_at is None or connected_at >= end:
        return 0.0
    return min(connected_at + talk_seconds, end) - connected_at


def run_one(mode: str, args: argparse.Namespace) -> Row:
    simulate = simulate_engine if args.engine == "real" else simulate_model
    return asyncio.run(simulate(mode, args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma list of " + ", ".join(MODES)
    )
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--answer-rate", type=float, default=0.3)
    parser.add_argument("--talk", type=float, default=90.0, help="mean talk seconds")
    parser.add_argument("--wrap-up", type=float, default=10.0, help="wrap-up seconds")
    parser.add_argument("--ring", type=float, default=15.0, help="mean ring seconds")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--leads", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-lines-per-agent", type=float, default=3.0, help="predictive cap")
    parser.add_argument(
        "--engine",
        choices=("model", "real"),
        default="model",
        help="model: the in-memory loop of bench/pacing_model.py (seconds); real: the engine "
        "on SQLite (about 6 min of wall time per simulated hour)",
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown mode(s) {sorted(unknown)}; use {', '.join(MODES)}")
    with ProcessPoolExecutor(max_workers=len(modes)) as pool:
        rows = list(pool.map(run_one, modes, [args] * len(modes)))
    print(
        f"{args.agents} agents, answer rate {args.answer_rate:.0%}, talk {args.talk:.0f} s, "
        f"wrap-up {args.wrap_up:.0f} s, ring {args.ring:.0f} s, {args.hours:g} h, "
        f"seed {args.seed}; "
        + (
            "real engine on SQLite"
            if args.engine == "real"
            else "discrete-event model of the engine (bench/pacing_model.py)"
        )
        + " + simulated carrier on a FakeClock"
    )
    print_table(
        ("mode", "dials", "human answers", "abandoned", "abandon %", "occupancy %", "wall s"),
        [
            (
                r.mode,
                r.dials,
                r.humans,
                r.abandoned,
                100 * r.abandon_rate,
                100 * r.occupancy,
                r.wall_seconds,
            )
            for r in rows
        ],
    )
    by_mode = {r.mode: r for r in rows}
    ok: bool | None = None
    gain: float | None = None
    if "predictive" in by_mode and "progressive" in by_mode:
        pred, prog = by_mode["predictive"], by_mode["progressive"]
        gain = pred.occupancy / prog.occupancy if prog.occupancy else None
        ok = pred.abandon_rate <= TARGET_ABANDON and gain is not None and gain >= TARGET_GAIN
        print(
            f"predictive / progressive occupancy: {gain:.2f}x (target >= {TARGET_GAIN}x); "
            f"predictive abandon {100 * pred.abandon_rate:.2f} % (target <= "
            f"{100 * TARGET_ABANDON:.0f} %): {'met' if ok else 'NOT met'}"
        )
    emit_json(
        "pacing",
        params={k: v for k, v in vars(args).items() if k != "modes"},
        rows=[asdict(r) for r in rows],
        occupancy_gain=gain,
        ok=ok,
    )


if __name__ == "__main__":
    main()
