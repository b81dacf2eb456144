"""Dispatch throughput of the real engine, next to the bare claim statement on the same db.

Engine: a FakeClock, the simulated carrier at time_scale=inf (every call ends as soon as the
clock moves), an agentless voice campaign (capacity 200, 100 calls/s) and an email-only
campaign (Maildir in a temp dir). The loop is `engine.tick()` + `clock.advance(1)` until N
leads have been handed to a channel; attempts/s is N over the loop's wall-clock time, carrier
callbacks and their database writes included.

Raw claim: the engine's own claim statement (dialer.store.leads.claim: UPDATE leads ... WHERE
id IN (SELECT ... LIMIT n) RETURNING ...), batch after batch, each in its own transaction,
over N other leads until none is left; rows/s and the engine/raw ratio.

    .venv/bin/python bench/dispatch.py --leads 2000 --backends sqlite --channels email

With `--workers 1,2,3` it dispatches across processes instead (PostgreSQL + Redis, issue 10):
`dialer serve` (no engine of its own) and N `dialer worker` processes on a fresh database
and a throwaway `redis-server` (tests/scaleout/rig.py), one Maildir as the mail server and
the fake Twilio process as the carrier (time scale 1000: a call ends within milliseconds;
its signed callbacks go to serve over HTTP). A campaign of `--leads` leads, one step, is
started; attempts/s is the leads over the time until every one reached the mailbox (email)
or the carrier (voice, one try each: a campaign's pacing allows at most 100 calls/s, so
voice here shows that the workers keep up with it). The raw claim then runs on the same
database; RSS is each worker's peak (VmHWM). Email only unless `--channels` says otherwise.

    .venv/bin/python bench/dispatch.py --workers 1,2,3 --leads 20000
"""

from __future__ import annotations

import argparse
import asyncio
import math
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
from dialer.engine.control import campaign_clock
from dialer.runtime import Runtime
from dialer.store import leads as lead_store
from tests.faults.rig import wait_for
from tests.scaleout.rig import Cluster, ClusterSpec

CHANNELS = ("voice", "email")
STALL_TICKS = 50  # ticks in a row that dispatch nothing: something is wrong, stop
WAIT_SECONDS = 600.0  # for every lead to go out across processes: longer means stuck


async def engine_loop(rt: Runtime, clock: FakeClock, campaign_id: str, n: int) -> dict[str, Any]:
    await rt.service.start(campaign_id, actor=ADMIN)
    dispatched = ticks = idle = 0
    t0 = time.perf_counter()
    while dispatched < n and idle < STALL_TICKS:
        report = await rt.engine.tick(settle=False)  # as the engine's own loop does
        dispatched += report.dispatched
        ticks += 1
        idle = 0 if report.dispatched else idle + 1
        await clock.advance(1.0)
    await rt.engine.dispatcher.settle()  # every result written
    wall = time.perf_counter() - t0
    if dispatched < n:
        raise RuntimeError(f"engine stalled: {dispatched} of {n} dispatched in {ticks} ticks")
    return {"dispatched": dispatched, "ticks": ticks, "seconds": wall, "per_s": dispatched / wall}


async def raw_claim(rt: Runtime, campaign_id: str, batch: int, check_dnc: bool) -> dict[str, Any]:
    c = await rt.service.start(campaign_id, actor=ADMIN)
    now = rt.clock.now()
    req = lead_store.ClaimRequest(
        campaign_id=c.id,
        version=c.version,
        worker_id="bench-raw",
        steps=[0],
        limit=batch,
        now=now,
        due_before=campaign_clock(c).now(now),
        lease_until=now + 3600,
        check_dnc=check_dnc,
    )
    claimed = batches = 0
    t0 = time.perf_counter()
    while True:
        async with rt.db.begin() as conn:
            rows = await lead_store.claim(conn, req, skip_locked=not rt.db.is_sqlite)
        if not rows:
            break
        claimed += len(rows)
        batches += 1
    wall = time.perf_counter() - t0
    return {"claimed": claimed, "batches": batches, "seconds": wall, "per_s": claimed / wall}


def _mails(root: Path) -> int:
    return sum(1 for _ in (root / "new").iterdir()) if (root / "new").exists() else 0


async def measure(backend: str, channel: str, args: argparse.Namespace) -> dict[str, Any]:
    # Carrier reports of calls due at the same instant arrive side by side, as they do
    # from a real carrier (concurrent webhooks) and on the system clock.
    clock = FakeClock(MONDAY_10_NY, concurrent=True)
    profile = SimProfile(answer_rate=args.answer_rate, machine_rate=0.1)
    voice = SimulatedVoice(clock, profile, seed=7, time_scale=math.inf)
    async with database(backend, args.postgres_url) as url:
        with tempfile.TemporaryDirectory(prefix="dialer-bench-", dir=memory_dir()) as tmp:
            email = MaildirEmail(Path(tmp) / "maildir", clock)
            async with open_dialer(
                url, clock=clock, voice=voice, email=email, email_batch=args.batch
            ) as rt:
                make = voice_campaign if channel == "voice" else email_campaign
                main = await rt.service.create_campaign(make(name="engine"), actor=ADMIN)
                raw = await rt.service.create_campaign(make(name="raw claim"), actor=ADMIN)
                for c in (main, raw):
                    await bulk_leads(rt.db, c.id, args.leads, clock.now())
                engine = await engine_loop(rt, clock, main.id, args.leads)
                rss = rss_mb()
                claim = await raw_claim(rt, raw.id, args.batch, check_dnc=channel == "voice")
                sent = voice.counts["dialed"] if channel == "voice" else _mails(email.root)
    return {
        "backend": backend,
        "channel": channel,
        "leads": args.leads,
        "engine_per_s": engine["per_s"],
        "engine_s": engine["seconds"],
        "ticks": engine["ticks"],
        "raw_per_s": claim["per_s"],
        "raw_s": claim["seconds"],
        "raw_claimed": claim["claimed"],
        "ratio": engine["per_s"] / claim["per_s"],
        "channel_count": sent,
        "rss_mb": rss,
    }


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def across_workers(db_url: str, workers: int, channel: str, args: argparse.Namespace) -> dict:
    """serve + `workers` worker processes dispatch one campaign: attempts/s and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="dialer-bench-workers-", dir=memory_dir()) as tmp:
        spec = ClusterSpec(
            db_url,
            Path(tmp),
            workers=workers,
            seed=7,
            lease_seconds=10.0,
            tick_seconds=0.05,
            email_batch=args.batch,
            twilio_time_scale=1000.0,
            account_cps=args.cps,
            fake_cps=args.cps * 4,
            extra_env={"DIALER_SERVE_ENGINE": "false"},
        )
        with Cluster(spec) as cl:
            if channel == "email":
                cid = cl.email_campaign(args.leads, steps=1, start=False)
                count = cl.mailbox.count
            else:
                cid = cl.voice_campaign(
                    args.leads, max_attempts=1, capacity=args.lines, start=False
                )
                count = cl.calls_count
            t0 = time.monotonic()
            cl.start(cid)
            wait_for(lambda: count() >= args.leads, WAIT_SECONDS, "every lead dispatched", 0.02)
            wall = time.monotonic() - t0
            rss = [peak_rss_mb(w.process.pid) for w in cl.workers if w.process is not None]
            sent = count()
    return {"seconds": wall, "per_s": args.leads / wall, "rss_mb": max(rss), "sent": sent}


async def measure_workers(workers: int, channel: str, args: argparse.Namespace) -> dict:
    async with database("postgres", args.postgres_url) as url:
        run = await asyncio.to_thread(across_workers, url, workers, channel, args)
        clock = FakeClock(MONDAY_10_NY)
        async with open_dialer(url, clock=clock) as rt:
            make = voice_campaign if channel == "voice" else email_campaign
            raw = await rt.service.create_campaign(make(name="raw claim"), actor=ADMIN)
            await bulk_leads(rt.db, raw.id, args.leads, clock.now())
            claim = await raw_claim(rt, raw.id, args.batch, check_dnc=channel == "voice")
    return {
        "backend": "postgres",
        "workers": workers,
        "channel": channel,
        "leads": args.leads,
        "engine_per_s": run["per_s"],
        "engine_s": run["seconds"],
        "raw_per_s": claim["per_s"],
        "ratio": run["per_s"] / claim["per_s"],
        "channel_count": run["sent"],
        "rss_mb": run["rss_mb"],
    }


async def main_workers(args: argparse.Namespace, channels: list[str]) -> None:
    results: list[dict[str, Any]] = []
    for n in [int(w) for w in args.workers.split(",") if w.strip()]:
        for channel in channels:
            r = await measure_workers(n, channel, args)
            results.append(r)
            print(f"{n} worker(s) {channel}: {r['engine_per_s']:,.0f}/s", flush=True)
    print()
    print(f"dispatch of {args.leads:,} leads across processes (serve + N workers, PostgreSQL)")
    print_table(
        ["workers", "channel", "att/s", "s", "raw claim rows/s", "engine/raw", "peak RSS MB"],
        [
            [
                r["workers"],
                r["channel"],
                r["engine_per_s"],
                r["engine_s"],
                r["raw_per_s"],
                f"{r['ratio']:.3f}",
                r["rss_mb"],
            ]
            for r in results
        ],
    )
    emit_json("dispatch", leads=args.leads, batch=args.batch, workers=True, results=results)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000, help="leads to dispatch (N)")
    parser.add_argument(
        "--channels", help="comma list of voice, email (default: both; email with --workers)"
    )
    parser.add_argument("--batch", type=int, default=100, help="email batch and raw claim size")
    parser.add_argument("--answer-rate", type=float, default=0.3, help="simulated human answers")
    add_backend_args(parser)
    group = parser.add_argument_group("across processes (--workers)")
    group.add_argument("--workers", help="comma list of worker counts, e.g. 1,2,3")
    group.add_argument("--cps", type=float, default=100.0, help="calls per second (max 100)")
    group.add_argument("--lines", type=int, default=200, help="agentless lines (voice)")
    args = parser.parse_args()
    default = "email" if args.workers else "voice,email"
    channels = [c.strip() for c in (args.channels or default).split(",") if c.strip()]
    if set(channels) - set(CHANNELS):
        raise SystemExit(f"--channels: use {', '.join(CHANNELS)}")
    if args.workers:
        await main_workers(args, channels)
        return
    results: list[dict[str, Any]] = []
    for backend in backends(args.backends):
        for channel in channels:
            r = await measure(backend, channel, args)
            results.append(r)
            print(
                f"{backend} {channel}: engine {r['engine_per_s']:,.0f}/s, "
                f"raw claim {r['raw_per_s']:,.0f} rows/s",
                flush=True,
            )
    print()
    print(f"dispatch of {args.leads:,} leads (FakeClock, simulated carrier at time_scale=inf)")
    print_table(
        [
            "backend",
            "channel",
            "engine att/s",
            "engine s",
            "ticks",
            "raw claim rows/s",
            "raw s",
            "engine/raw",
            "RSS MB",
        ],
        [
            [
                r["backend"],
                r["channel"],
                r["engine_per_s"],
                r["engine_s"],
                r["ticks"],
                r["raw_per_s"],
                r["raw_s"],
                f"{r['ratio']:.3f}",
                r["rss_mb"],
            ]
            for r in results
        ],
    )
    emit_json("dispatch", leads=args.leads, batch=args.batch, results=results)


if __name__ == "__main__":
    asyncio.run(main())
