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

With `--workers 1,2,3` it runs the same fence across processes instead (issue 10,
docs/architecture.md §12.2): `dialer serve` plus N `dialer worker` processes on a fresh
PostgreSQL database and a throwaway `redis-server`, the fake Twilio as the shared carrier and
one Maildir as the shared mail server (tests/scaleout/rig.py). An agentless voice campaign
and an email campaign run flat out; attempts/s is what reached the carrier and the mailbox
per second over `--measure-seconds` before the cycles. Each cycle pauses both campaigns at
once mid-load (timed from the client: the whole HTTP request), watches for `--watch-ms`, and
counts what went out after the answer, by the mailbox's file names and ns mtimes and the
fake's record (creation order, created_at): "after ack", which must be 0.

    .venv/bin/python bench/pause_fence.py --workers 1,2,3 --cycles 50
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import random
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
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
from prometheus_client.parser import text_string_to_metric_families

from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import SystemClock
from dialer.engine.engine import Engine
from tests.faults.rig import wait_for
from tests.scaleout.rig import Cluster, ClusterSpec, Late, call_duplicates, mail_duplicates

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
                await self.engine.tick(settle=False)  # as the engine's own loop
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


def metric_value(text: str, name: str) -> tuple[float, float]:
    """A histogram's sum and count in one process's /metrics text."""
    values = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for kind in values:
                if sample.name == f"{name}_{kind}":
                    values[kind] += sample.value
    return values["sum"], values["count"]


def measure_processes(db_url: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """serve + `workers` worker processes on `db_url`: attempts/s, then the pause cycles."""
    with tempfile.TemporaryDirectory(prefix="dialer-bench-scaleout-") as tmp:
        spec = ClusterSpec(
            db_url,
            Path(tmp),
            workers=workers,
            seed=7,
            lease_seconds=args.lease_seconds,
            email_batch=args.email_batch,
            account_cps=args.cps,
            fake_cps=args.cps * 4,
            extra_env={} if args.serve_engine else {"DIALER_SERVE_ENGINE": "false"},
        )
        with Cluster(spec) as cl:
            voice = cl.voice_campaign(args.leads, capacity=args.lines, start=False)
            email = cl.email_campaign(args.leads, steps=5, start=False)
            cl.start(voice)
            cl.start(email)

            def out() -> int:
                return cl.mailbox.count() + cl.calls_count()

            wait_for(lambda: out() > 0, WAIT_SECONDS, "the first dispatch", interval=0.01)
            n0, t0 = out(), time.monotonic()
            time.sleep(args.measure_seconds)
            rate = (out() - n0) / (time.monotonic() - t0)
            latencies: list[float] = []
            late: list[Late] = []
            jitter = random.Random(7)
            in_flight = 0
            for i in range(args.cycles):
                mails, calls = cl.mailbox.count(), cl.calls_count()
                wait_for(
                    lambda m=mails, c=calls: cl.mailbox.count() > m and cl.calls_count() > c,
                    WAIT_SECONDS,
                    "mails and calls flowing",
                    interval=0.005,
                )
                time.sleep(jitter.uniform(0, args.jitter_ms / 1000))
                with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                    acks = list(pool.map(cl.pause, [voice, email]))
                if any(a.status != 200 for a in acks):
                    raise RuntimeError(f"pause failed: {[(a.status, a.body) for a in acks]}")
                latencies += [a.seconds for a in acks]
                in_flight += sum(len(a.body["in_flight"]) for a in acks)
                time.sleep(args.watch_ms / 1000)
                late += cl.after_ack(acks[0], None, voice) + cl.after_ack(acks[1], email, None)
                cl.resume(voice)
                cl.resume(email)
                if (i + 1) % max(1, args.cycles // 5) == 0:
                    print(f"  {workers} worker(s): {i + 1} cycles, {out():,} out", flush=True)
            for x in late[:20]:
                print(f"  AFTER ACK: {x}", flush=True)
            halt = metric_value(cl.metrics_texts()["serve"], "dialer_pause_duration_seconds")
            duplicates = len(mail_duplicates(cl.mailbox.mails())) + len(
                call_duplicates(cl.twilio.calls())
            )
            return {
                "workers": workers,
                "processes": workers + 1,
                "cycles": args.cycles,
                "pause_p50_ms": percentile(latencies, 50) * 1000,
                "pause_p99_ms": percentile(latencies, 99) * 1000,
                "pause_max_ms": max(latencies) * 1000,
                # serve's own dialer_pause_duration_seconds: state change + every process's ack
                "halt_mean_ms": halt[0] / max(1.0, halt[1]) * 1000,
                "dispatches_after_ack": len(late),
                "attempts_per_s": rate,
                "in_flight_reported": in_flight,
                "mails": cl.mailbox.count(),
                "calls": cl.calls_count(),
                "duplicates": duplicates,
            }


async def main_processes(args: argparse.Namespace) -> None:
    results = []
    for n in [int(w) for w in args.workers.split(",") if w.strip()]:
        async with database("postgres", args.postgres_url) as url:
            results.append(await asyncio.to_thread(measure_processes, url, n, args))
    print()
    print(
        f"{args.cycles} pause/resume cycles of 2 campaigns (voice + email) across processes, "
        f"serve + N workers, PostgreSQL + Redis"
    )
    columns = [
        ("workers", "workers"),
        ("pause p50 ms", "pause_p50_ms"),
        ("pause p99 ms", "pause_p99_ms"),
        ("pause max ms", "pause_max_ms"),
        ("halt mean ms", "halt_mean_ms"),
        ("after ack", "dispatches_after_ack"),
        ("attempts/s", "attempts_per_s"),
        ("in flight", "in_flight_reported"),
        ("mails", "mails"),
        ("calls", "calls"),
        ("duplicates", "duplicates"),
    ]
    print_table([h for h, _ in columns], [[r[k] for _, k in columns] for r in results])
    ok = all(r["dispatches_after_ack"] == 0 and r["duplicates"] == 0 for r in results)
    emit_json("pause_fence", mode="processes", ok=ok, results=results)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000, help="pause/resume cycles")
    parser.add_argument("--leads", type=int, default=20_000, help="leads of the campaign")
    parser.add_argument("--ticks", type=int, default=3, help="engine ticks to wait per pause")
    parser.add_argument(
        "--jitter-ms", type=float, default=20.0, help="pause up to this long after a dial"
    )
    add_backend_args(parser, default="sqlite")
    group = parser.add_argument_group("across processes (--workers)")
    group.add_argument("--workers", help="comma list of worker counts, e.g. 1,2,3")
    group.add_argument(
        "--no-serve-engine",
        dest="serve_engine",
        action="store_false",
        help="serve runs no engine of its own (DIALER_SERVE_ENGINE=false): API and callbacks",
    )
    group.add_argument("--lease-seconds", type=float, default=5.0, help="DIALER_LEASE_SECONDS")
    group.add_argument("--email-batch", type=int, default=50, help="DIALER_EMAIL_BATCH")
    group.add_argument("--cps", type=float, default=100.0, help="shared calls per second")
    group.add_argument("--lines", type=int, default=100, help="agentless lines (voice)")
    group.add_argument("--measure-seconds", type=float, default=4.0, help="attempts/s window")
    group.add_argument("--watch-ms", type=float, default=300.0, help="watched after each ack")
    args = parser.parse_args()
    if args.workers:
        if args.cycles == parser.get_default("cycles"):
            args.cycles = 50
        if args.leads == parser.get_default("leads"):
            args.leads = 10_000  # the rig's most: 5 email steps each, enough for 3 workers
        await main_processes(args)
        return
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
