"""Memory of a running engine over a large campaign: the process stays flat (issue 11).

A campaign of `--leads` leads (a million by default) is started and the real engine
dispatches `--attempts` of them, `tick(settle=False)` + `FakeClock.advance(1)` as in
dispatch.py, the simulated carrier at time_scale=inf (voice) or a Maildir on a tmpfs
(email). The process's resident set (/proc/self/statm) is read after the leads are in, then
after every tick; the figures are the RSS when dispatching started, its peak, at the end,
and the growth per 10,000 attempts over the second half of the run (flat: about 0).

    .venv/bin/python bench/memory.py --leads 1000000 --attempts 40000 --channels email,voice
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    ADMIN,
    MONDAY_10_NY,
    add_backend_args,
    backends,
    bulk_leads,
    database,
    email_campaign,
    emit_json,
    memory_dir,
    open_dialer,
    print_table,
    rss_mb,
    voice_campaign,
)

from dialer.channels.maildir import MaildirEmail
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import FakeClock

LIMIT_MB = 300.0


async def measure(backend: str, channel: str, args: argparse.Namespace) -> dict[str, Any]:
    clock = FakeClock(MONDAY_10_NY, concurrent=True)
    voice = SimulatedVoice(
        clock, SimProfile(answer_rate=0.3, machine_rate=0.1), seed=7, time_scale=math.inf
    )
    async with database(backend, args.postgres_url) as url:
        with tempfile.TemporaryDirectory(prefix="dialer-mem-", dir=memory_dir()) as tmp:
            email = MaildirEmail(Path(tmp) / "maildir", clock)
            async with open_dialer(
                url, clock=clock, voice=voice, email=email, email_batch=args.batch
            ) as rt:
                make = voice_campaign if channel == "voice" else email_campaign
                c = await rt.service.create_campaign(make(name="memory"), actor=ADMIN)
                t0 = time.perf_counter()
                await bulk_leads(rt.db, c.id, args.leads, clock.now())
                load_s = time.perf_counter() - t0
                await rt.service.start(c.id, actor=ADMIN)
                start = rss_mb()
                samples: list[tuple[int, float]] = [(0, start)]
                dispatched = idle = 0
                t0 = time.perf_counter()
                while dispatched < args.attempts and idle < 50:
                    report = await rt.engine.tick(settle=False)  # as the engine's loop
                    dispatched += report.dispatched
                    idle = 0 if report.dispatched else idle + 1
                    await clock.advance(1.0)
                    samples.append((dispatched, rss_mb()))
                await rt.engine.dispatcher.settle()
                wall = time.perf_counter() - t0
    half = [(n, mb) for n, mb in samples if n >= dispatched / 2]
    growth = (half[-1][1] - half[0][1]) / max(1, half[-1][0] - half[0][0]) * 10_000 if half else 0.0
    return {
        "backend": backend,
        "channel": channel,
        "leads": args.leads,
        "attempts": dispatched,
        "load_s": load_s,
        "per_s": dispatched / wall,
        "rss_start_mb": start,
        "rss_peak_mb": max(mb for _, mb in samples),
        "rss_end_mb": samples[-1][1],
        "growth_mb_per_10k": growth,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads of the campaign")
    parser.add_argument("--attempts", type=int, default=40_000, help="attempts to dispatch")
    parser.add_argument("--channels", default="email,voice", help="comma list of voice, email")
    parser.add_argument("--batch", type=int, default=100, help="the engine's email batch")
    add_backend_args(parser, default="sqlite")
    args = parser.parse_args()
    results = []
    for backend in backends(args.backends):
        for channel in [c.strip() for c in args.channels.split(",") if c.strip()]:
            r = await measure(backend, channel, args)
            results.append(r)
            print(f"{backend} {channel}: peak {r['rss_peak_mb']:.0f} MB", flush=True)
    print()
    print(
        f"RSS of one process running a campaign of {args.leads:,} leads (limit {LIMIT_MB:.0f} MB)"
    )
    print_table(
        [
            "backend",
            "channel",
            "attempts",
            "att/s",
            "RSS start MB",
            "peak MB",
            "end MB",
            "MB per 10k (2nd half)",
        ],
        [
            [
                r["backend"],
                r["channel"],
                r["attempts"],
                r["per_s"],
                r["rss_start_mb"],
                r["rss_peak_mb"],
                r["rss_end_mb"],
                f"{r['growth_mb_per_10k']:+.2f}",
            ]
            for r in results
        ],
    )
    ok = all(r["rss_peak_mb"] < LIMIT_MB for r in results)
    emit_json("memory", ok=ok, limit_mb=LIMIT_MB, results=results)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
