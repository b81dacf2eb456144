"""Pause and resume cost against the number of leads (docs/architecture.md §5: O(1) in leads).

For each backend and size N: a fresh database, a voice campaign with N leads (bulk insert),
started with the engine not running; then 5 pause/resume cycles. Prints the median pause and
resume times, the SQL statements each issued, and how many of those wrote to `leads`
(must be 0: a pause moves the campaign clock, never the leads).

    .venv/bin/python bench/pause_scaling.py --sizes 1000,100000 --backends sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from common import (
    ADMIN,
    StatementLog,
    add_backend_args,
    backends,
    bulk_leads,
    database,
    emit_json,
    open_dialer,
    print_table,
    voice_campaign,
)
from sqlalchemy import func, select

from dialer.store.models import Lead


async def measure(backend: str, n: int, cycles: int, postgres_url: str) -> dict[str, Any]:
    async with database(backend, postgres_url) as url, open_dialer(url) as rt:
        service, log = rt.service, StatementLog(rt.db)
        c = await service.create_campaign(voice_campaign(name=f"pause {n}"), actor=ADMIN)
        t0 = time.perf_counter()
        await bulk_leads(rt.db, c.id, n, rt.clock.now())
        insert_s = time.perf_counter() - t0
        async with rt.db.read() as conn:
            count = await conn.scalar(select(func.count()).select_from(Lead))
        assert count == n, f"{count} leads inserted, {n} wanted"
        await service.start(c.id, actor=ADMIN)
        pauses: list[float] = []
        resumes: list[float] = []
        pause_sql: list[int] = []
        resume_sql: list[int] = []
        lead_writes = 0
        for _ in range(cycles):
            with log.capture() as stmts:
                t0 = time.perf_counter()
                result = await service.pause(c.id, actor=ADMIN, reason="bench")
                pauses.append(time.perf_counter() - t0)
            assert result.changed and result.campaign.state == "paused"
            pause_sql.append(len(stmts))
            lead_writes += log.lead_writes(stmts)
            with log.capture() as stmts:
                t0 = time.perf_counter()
                resumed = await service.resume(c.id, actor=ADMIN)
                resumes.append(time.perf_counter() - t0)
            assert resumed.state == "running"
            resume_sql.append(len(stmts))
            lead_writes += log.lead_writes(stmts)
        return {
            "backend": backend,
            "leads": n,
            "insert_s": insert_s,
            "pause_ms": statistics.median(pauses) * 1000,
            "pause_max_ms": max(pauses) * 1000,
            "resume_ms": statistics.median(resumes) * 1000,
            "resume_max_ms": max(resumes) * 1000,
            "pause_statements": max(pause_sql),
            "resume_statements": max(resume_sql),
            "lead_writes": lead_writes,
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma list of N")
    parser.add_argument("--cycles", type=int, default=5, help="pause/resume cycles per N")
    add_backend_args(parser)
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    results: list[dict[str, Any]] = []
    for backend in backends(args.backends):
        for n in sizes:
            r = await measure(backend, n, args.cycles, args.postgres_url)
            results.append(r)
            print(
                f"{backend} N={n:,}: inserted in {r['insert_s']:.1f}s, "
                f"pause {r['pause_ms']:.2f} ms, resume {r['resume_ms']:.2f} ms",
                flush=True,
            )
    print()
    print(f"pause/resume, median of {args.cycles} cycles (engine not running)")
    print_table(
        [
            "backend",
            "leads",
            "pause ms",
            "pause max",
            "resume ms",
            "resume max",
            "pause stmts",
            "resume stmts",
            "lead writes",
        ],
        [
            [
                r["backend"],
                r["leads"],
                r["pause_ms"],
                r["pause_max_ms"],
                r["resume_ms"],
                r["resume_max_ms"],
                r["pause_statements"],
                r["resume_statements"],
                r["lead_writes"],
            ]
            for r in results
        ],
    )
    for backend in dict.fromkeys(r["backend"] for r in results):
        mine = sorted((r for r in results if r["backend"] == backend), key=lambda r: r["leads"])
        if len(mine) > 1:
            lo, hi = mine[0], mine[-1]
            print(
                f"{backend}: pause at {hi['leads']:,} leads / at {lo['leads']:,} leads = "
                f"{hi['pause_ms'] / lo['pause_ms']:.2f}x"
            )
    emit_json(
        "pause_scaling",
        cycles=args.cycles,
        ok=all(r["lead_writes"] == 0 for r in results),
        results=results,
    )


if __name__ == "__main__":
    asyncio.run(main())
