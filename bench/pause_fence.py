"""Pause fence under load: no dial of a campaign after its pause returned (docs/architecture.md §4).

The engine ticks in its own task, as fast as it can, on the system clock; the simulated
carrier runs at time_scale=inf behind a recording voice channel. A large agentless campaign
always has due work (no-answers are retried at once). Each cycle: resume, wait until the
engine dials the campaign again, pause (timed, up to --jitter-ms later) and note how many
dials were recorded when it returned (the ack), let the engine tick a few more times, and
count the campaign's dials recorded after the ack: "dispatches after ack", which must be 0.
"halt" is the service's own pause_duration metric (state change + fence); the rest of a pause
is the in-flight report, carrier cancels and agent release.

    .venv/bin/python bench/pause_fence.py --cycles 100 --backends sqlite,postgres
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common import (
    ADMIN,
    RecordingVoice,
    add_backend_args,
    backends,
    bulk_leads,
    database,
    emit_json,
    open_dialer,
    percentile,
    print_table,
    voice_campaign,
)

from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import SystemClock
from dialer.engine.engine import Engine

WAIT_SECONDS = 30.0  # for the engine to dial again, or to tick: longer means it is stuck


@dataclass
class Ticker:
    """The engine loop under test: tick, tick, tick, in a task of its own."""

    engine: Engine
    ticks: int = 0
    errors: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stop.is_set():
            try:
                await self.engine.tick()
            except Exception as exc:
                self.errors += 1
                print(f"tick failed: {exc!r}", flush=True)
            self.ticks += 1
            await asyncio.sleep(0)


async def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {WAIT_SECONDS:.0f}s for {what}")
        await asyncio.sleep(0.001)


def daytime_zone() -> str:
    """A fixed-offset zone where it is now early afternoon: inside the leads' calling hours."""
    offset = (14 - datetime.now(UTC).hour + 12) % 24 - 12
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc signs are inverted


async def measure(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    clock = SystemClock()
    sim = SimulatedVoice(clock, SimProfile(), seed=7, time_scale=float("inf"))
    voice = RecordingVoice(sim)
    async with database(backend, args.postgres_url) as url, open_dialer(url, voice=voice) as rt:
        service = rt.service
        step = {"channel": "voice", "max_attempts": 20, "retry_delay_seconds": 0}
        c = await service.create_campaign(voice_campaign(sequence=[step]), actor=ADMIN)
        await bulk_leads(rt.db, c.id, args.leads, clock.now(), tz=daytime_zone())
        await service.start(c.id, actor=ADMIN)
        ticker = Ticker(rt.engine)
        task = asyncio.create_task(ticker.run(), name="bench-engine")
        latencies: list[float] = []
        jitter = random.Random(7)
        after_ack = in_flight = 0
        try:
            for i in range(args.cycles):
                seen = len(voice.dials)
                await until(lambda n=seen: len(voice.dials) > n, "a dial")  # mid-dispatch
                await asyncio.sleep(jitter.uniform(0, args.jitter_ms / 1000))
                t0 = time.perf_counter()
                result = await service.pause(c.id, actor=ADMIN, reason="bench")
                latencies.append(time.perf_counter() - t0)
                ack = len(voice.dials)
                in_flight += len(result.in_flight)
                target = ticker.ticks + args.ticks + 1  # the tick under way may predate it
                await until(lambda t=target: ticker.ticks >= t, "engine ticks")
                after_ack += sum(1 for d in voice.dials[ack:] if d.campaign_id == c.id)
                await service.resume(c.id, actor=ADMIN)
                if (i + 1) % max(1, args.cycles // 10) == 0:
                    print(f"  {backend}: {i + 1} cycles, {len(voice.dials):,} dials", flush=True)
        finally:
            ticker.stop.set()
            await task
        sample = rt.metrics.registry.get_sample_value
        fenced = sample("dialer_dispatch_total", {"channel": "voice", "outcome": "fenced"})
        halt_s = sample("dialer_pause_duration_seconds_sum") or 0.0
    return {
        "backend": backend,
        "cycles": args.cycles,
        "pause_p50_ms": percentile(latencies, 50) * 1000,
        "pause_p99_ms": percentile(latencies, 99) * 1000,
        "pause_max_ms": max(latencies) * 1000,
        "halt_mean_ms": halt_s / len(latencies) * 1000,  # the service's own pause_duration
        "dispatches_after_ack": after_ack,
        "dials": len(voice.dials),
        "fenced": int(fenced or 0),
        "in_flight_reported": in_flight,
        "ticks": ticker.ticks,
        "tick_errors": ticker.errors,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000, help="pause/resume cycles")
    parser.add_argument("--leads", type=int, default=20_000, help="leads of the campaign")
    parser.add_argument("--ticks", type=int, default=3, help="engine ticks to wait per pause")
    parser.add_argument(
        "--jitter-ms", type=float, default=20.0, help="pause up to this long after a dial"
    )
    add_backend_args(parser, default="sqlite")
    args = parser.parse_args()
    results = []
    for backend in backends(args.backends):
        results.append(await measure(backend, args))
    print()
    print(f"{args.cycles} pause/resume cycles under load ({args.ticks} ticks after each ack)")
    columns = [
        ("backend", "backend"),
        ("pause p50 ms", "pause_p50_ms"),
        ("pause p99 ms", "pause_p99_ms"),
        ("pause max ms", "pause_max_ms"),
        ("halt mean ms", "halt_mean_ms"),
        ("after ack", "dispatches_after_ack"),
        ("dials", "dials"),
        ("fenced", "fenced"),
        ("in flight", "in_flight_reported"),
        ("ticks", "ticks"),
        ("tick errors", "tick_errors"),
    ]
    print_table([h for h, _ in columns], [[r[k] for _, k in columns] for r in results])
    ok = all(r["dispatches_after_ack"] == 0 and r["tick_errors"] == 0 for r in results)
    emit_json("pause_fence", ok=ok, ticks_after_ack=args.ticks, results=results)


if __name__ == "__main__":
    asyncio.run(main())
