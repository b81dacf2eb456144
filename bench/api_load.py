"""API under load with many live streams: request latency and pause-to-every-screen time.

The real app (engine, hub, routes) on a free loopback port, a temp SQLite database, the
simulated carrier at --time-scale on the system clock, and a running demo campaign
(dialer.cli.demo.seed: five available agents, --leads leads). --clients SSE streams stay open;
--rate mixed reads/s (campaigns, stats, leads, agents; at most --concurrency at once) go out
on a fixed schedule; every --pause-every s the campaign is paused, and resumed half a period
later. "pause sent -> all streams": from sending the pause to its campaign.state
(to_state=paused) frame having arrived on every stream. Errors (non-2xx, exceptions, streams
ended early, pauses a stream never saw) must be 0. Clients, load and server share one
process and event loop, so the figures are upper bounds.

    .venv/bin/python bench/api_load.py --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from common import emit_json, percentile, print_table

from dialer.api.app import create_app
from dialer.api.keys import ACCOUNTS, LIVE, RUNTIME
from dialer.api.live import LiveHub
from dialer.cli.demo import seed
from dialer.config import Settings

BOOTSTRAP = "bench-bootstrap-secret-0123456789"
PATHS = {
    "campaigns": "/api/v1/campaigns",
    "stats": "/api/v1/campaigns/{cid}/stats",
    "leads": "/api/v1/campaigns/{cid}/leads?limit=50",
    "agents": "/api/v1/agents",
}
READS = tuple(PATHS)
EVENT_WAIT = 10.0  # after the run, how long streams get to deliver the last pause
CONNECT_WAIT = 60.0  # for every stream to be subscribed before the load starts


@dataclass
class Tally:
    errors: list[str] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in READS})
    control: list[float] = field(default_factory=list)
    pauses: list[tuple[float, float, int]] = field(default_factory=list)  # sent, acked, version
    arrivals: list[dict[str, float]] = field(default_factory=list)  # per client: event -> when
    paused_rows: dict[int, str] = field(default_factory=dict)  # version -> its row's id
    frames: int = 0

    def error(self, what: str) -> None:
        if len(self.errors) < 1000:
            self.errors.append(what)


async def stream(
    session: aiohttp.ClientSession, url: str, token: str, mine: dict[str, float], t: Tally
) -> None:
    """One SSE client: note when each `campaign.state` to paused arrives."""
    loop = asyncio.get_running_loop()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout()) as r:
            if r.status != 200 or r.content_type != "text/event-stream":
                t.error(f"stream status {r.status}")
                return
            event = ""
            async for raw in r.content:
                line = raw.decode()
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "campaign.state":
                    if '"to_state":"paused"' in line and '"type":"campaign.state"' in line:
                        mine[json.loads(line[5:])["event_id"]] = loop.time()
                elif line in ("\n", "\r\n"):
                    t.frames += event != ""
                    event = ""
        t.error("stream ended early")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        t.error(f"stream: {exc!r}")


async def call(
    session: aiohttp.ClientSession, method: str, url: str, h: dict[str, str], t: Tally
) -> tuple[float, str] | None:
    """Seconds the call took and the body, or None (an error) for an exception or non-200."""
    started = time.perf_counter()
    try:
        async with session.request(method, url, headers=h) as r:
            body = await r.text()
    except Exception as exc:
        t.error(f"{method} {url}: {exc!r}")
        return None
    if r.status != 200:
        t.error(f"{method} {url}: {r.status} {body[:200]}")
        return None
    return time.perf_counter() - started, body


async def one_read(
    session: aiohttp.ClientSession, base: str, cid: str, kind: str, h: dict[str, str], t: Tally
) -> None:
    answer = await call(session, "GET", base + PATHS[kind].format(cid=cid), h, t)
    if answer is not None:
        t.latency[kind].append(answer[0])


async def controller(
    session: aiohttp.ClientSession, base: str, cid: str, h: dict[str, str], args: Any, t: Tally
) -> None:
    """Pause, then resume half a period later, one call at a time (none overtakes another)."""
    loop = asyncio.get_running_loop()
    start, every = loop.time(), args.pause_every
    for at in range(1, int(args.seconds - every / 2 - 1), int(every)):
        for offset, action in ((0.0, "pause"), (every / 2, "resume")):
            await asyncio.sleep(max(0.0, start + at + offset - loop.time()))
            sent = loop.time()
            answer = await call(session, "POST", f"{base}/api/v1/campaigns/{cid}/{action}", h, t)
            if answer is None:
                continue
            t.control.append(answer[0])
            if action == "pause":
                t.pauses.append((sent, loop.time(), json.loads(answer[1])["campaign"]["version"]))


async def load(base: str, cid: str, h: dict[str, str], args: argparse.Namespace, t: Tally) -> None:
    """--rate reads/s on a fixed schedule and a pause/resume pair every --pause-every s."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def bounded(coro: Any) -> None:
        async with gate:
            await coro

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start, n = loop.time(), 0
        tasks.add(asyncio.create_task(controller(session, base, cid, h, args, t)))
        while loop.time() - start < args.seconds:
            kind = READS[n % len(READS)]
            task = asyncio.create_task(bounded(one_read(session, base, cid, kind, h, t)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, start + n / args.rate - loop.time()))
        await asyncio.gather(*tasks)


async def connected(hub: LiveHub, clients: int, t: Tally) -> None:
    """Until every stream is subscribed (bounded): a late one would miss the first pause."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_WAIT
    while hub.subscribers < clients and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if hub.subscribers < clients:
        t.error(f"only {hub.subscribers} of {clients} streams connected")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dialer-bench-api-") as tmp:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            bootstrap_token=BOOTSTRAP,  # type: ignore[arg-type]
            sim_time_scale=args.time_scale,
            sim_seed=7,
            worker_id="bench-api",
            maildir=Path(tmp) / "maildir",
        )
        app = create_app(settings)
        runner = web.AppRunner(app, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        t = Tally()
        try:
            rt = app[RUNTIME]
            campaign = await seed(rt.service, leads=args.leads)
            await rt.service.start(campaign.id, actor="bench")
            token, _ = await app[ACCOUNTS].create_token("supervisor", name="bench")
            h = {"Authorization": f"Bearer {token}"}
            t.arrivals = [{} for _ in range(args.clients)]
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as sse:
                clients = [
                    asyncio.create_task(stream(sse, f"{base}/api/v1/events", token, mine, t))
                    for mine in t.arrivals
                ]
                await connected(app[LIVE], args.clients, t)
                await load(base, campaign.id, h, args, t)
                deadline = asyncio.get_running_loop().time() + EVENT_WAIT
                while asyncio.get_running_loop().time() < deadline and any(
                    len(a) < len(t.pauses) for a in t.arrivals
                ):
                    await asyncio.sleep(0.1)
                t.paused_rows = {
                    int(e.data["version"]): str(e.id)
                    for e in await rt.service.events(campaign.id)
                    if e.type == "campaign.state" and e.to_state == "paused"
                }
                dropped = app[LIVE].dropped
                for c in clients:
                    c.cancel()
                await asyncio.gather(*clients, return_exceptions=True)
        finally:
            closing = time.perf_counter()
            await runner.cleanup()
            shutdown = time.perf_counter() - closing
    return report(t, args, dropped, shutdown)


def report(t: Tally, args: argparse.Namespace, dropped: int, shutdown: float) -> dict[str, Any]:
    to_all: list[float] = []
    after_ack: list[float] = []
    for i, (sent, acked, version) in enumerate(t.pauses):
        row = t.paused_rows.get(version)
        got = [a[row] for a in t.arrivals if row in a]
        if len(got) < len(t.arrivals):
            t.error(f"pause {i} (v{version}): seen by {len(got)} of {len(t.arrivals)} streams")
        if got:
            to_all.append(max(got) - sent)
            after_ack.append(max(0.0, max(got) - acked))
    ms = 1000.0
    reads = [x for v in t.latency.values() for x in v]
    series = {
        **t.latency,
        "all reads": reads,
        "pause/resume": t.control,
        "pause sent -> all streams": to_all,
        "pause ack -> all streams": after_ack,
    }
    rows = [
        [k, len(v), percentile(v, 50) * ms, percentile(v, 99) * ms, max(v, default=0) * ms]
        for k, v in series.items()
    ]
    print(
        f"{args.clients} streams, {args.rate}/s reads for {args.seconds:.0f} s, "
        f"time scale {args.time_scale}, {len(t.pauses)} pauses, "
        f"{t.frames:,} frames received, errors {len(t.errors)}, dropped {dropped}, "
        f"shutdown {shutdown:.2f} s"
    )
    print_table(["what", "n", "p50 ms", "p99 ms", "max ms"], rows)
    for e in t.errors[:10]:
        print("error:", e)
    return {
        "clients": args.clients,
        "rate": args.rate,
        "seconds": args.seconds,
        "requests": len(reads) + len(t.control),
        "errors": len(t.errors),
        "dropped_streams": dropped,
        "frames": t.frames,
        "pauses": len(to_all),
        **{
            f"{key}_{q}_ms": round(
                (percentile(v, int(q[1:])) if q != "max" else max(v, default=0)) * ms, 2
            )
            for key, v in (("read", reads), ("control", t.control), ("pause_to_all", to_all))
            for q in ("p50", "p99", "max")
        },
        "ack_to_all_max_ms": round(max(after_ack, default=0) * ms, 2),
        "shutdown_s": round(shutdown, 2),
        "ok": not t.errors,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--rate", type=float, default=50.0, help="mixed read requests per second")
    p.add_argument("--concurrency", type=int, default=50, help="reads in flight at most")
    p.add_argument("--pause-every", type=float, default=4.0, help="seconds between pauses")
    p.add_argument("--time-scale", type=float, default=50.0)
    p.add_argument("--leads", type=int, default=2000)
    args = p.parse_args()
    result = asyncio.run(run(args))
    emit_json("api_load", **result)


if __name__ == "__main__":
    main()
