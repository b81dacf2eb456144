"""The long-running commands' async mains: `serve` and `demo` (API + engine, one process) and
`worker` (the engine, with a metrics port; docs/architecture.md §12.2)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import typer
from aiohttp import web
from pydantic import SecretStr

from dialer.cli.client import local_url
from dialer.config import Settings
from dialer.errors import ServiceError
from dialer.logs import flush_repeats

if TYPE_CHECKING:
    from dialer.runtime import Runtime
    from dialer.usecases.campaigns import Service

SHUTDOWN_SECONDS = 5.0  # open requests (event streams) get this long once a signal came
WORKER_NEEDS_REDIS = (
    "dialer worker needs the Redis bus to take part in pauses: set "
    "DIALER_BUS_URL=redis://host:6379/0 (the same for serve and every worker); "
    "on memory:// run the engine inside `dialer serve` instead"
)


async def until_signal(stop_after: float | None = None) -> None:
    """Wait for SIGINT/SIGTERM (signals only set an event) or `stop_after` seconds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=stop_after)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def base_url(settings: Settings) -> str:
    return local_url(settings.host, settings.port)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[web.Application]:
    """The app started (runtime open, engine running) and listening on host:port; on exit,
    stop listening, let open requests finish (time-boxed), then close every resource."""
    from dialer.api.app import create_app

    app = create_app(settings, run_engine=settings.serve_engine)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()  # runs the cleanup contexts: the runtime is open after this
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        yield app
    finally:
        await runner.cleanup()
        flush_repeats()


async def serve(settings: Settings) -> None:
    async with serving(settings):
        typer.echo(f"dialer serving on {base_url(settings)} (API under /api/v1); Ctrl-C to stop")
        await until_signal()
    typer.echo("stopped")


def in_process_bus(bus_url: str) -> bool:
    """`memory://`: the engines of other processes would never hear of a pause."""
    return urlsplit(bus_url).scheme == "memory"


def worker_app(runtime: Runtime) -> web.Application:
    """A worker's own small HTTP app: `/metrics`, `/healthz` and `/readyz`, no auth, the same
    handlers as serve's (docs/api.md §11); its counters are this process's (§12)."""
    from dialer.api import routes_health
    from dialer.api.keys import RUNTIME

    app = web.Application()
    app[RUNTIME] = runtime
    app.router.add_routes(routes_health.routes)
    return app


async def worker(settings: Settings) -> None:
    """The engine without the API, on a shared bus; its metrics on DIALER_METRICS_PORT."""
    from dialer.runtime import Runtime

    async with Runtime.open(settings, database_gauges=False) as rt:
        runner = web.AppRunner(worker_app(rt), handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.host, settings.metrics_port).start()
            url = local_url(settings.host, settings.metrics_port)
            typer.echo(f"dialer worker running; metrics on {url}/metrics; Ctrl-C to stop")
            await until_signal()
        finally:
            await runner.cleanup()
            flush_repeats()
    typer.echo("stopped")


def demo_settings(settings: Settings) -> tuple[Settings, str | None]:
    """The demo's admin credential: DIALER_BOOTSTRAP_TOKEN if set, else a fresh secret for
    this run only. Returns the settings to run with and the generated secret (if any)."""
    if settings.bootstrap_token is not None:
        return settings, None
    secret = secrets.token_urlsafe(24)
    return settings.model_copy(update={"bootstrap_token": SecretStr(secret)}), secret


async def demo(
    settings: Settings, *, leads: int, duration: float | None, script: bool, generated: str | None
) -> None:
    from dialer.api.keys import ACCOUNTS, RUNTIME
    from dialer.cli.demo import AGENTS, DEMO_ACTOR, seed, seed_logins

    async with serving(settings) as app:
        service = app[RUNTIME].service
        campaign = await seed(service, leads=leads)
        password = await seed_logins(app[ACCOUNTS])
        await service.start(campaign.id, actor=DEMO_ACTOR)
        url = base_url(settings)
        typer.echo(f"demo campaign {campaign.id} running with {leads} leads")
        typer.echo(f"API: {url}/api/v1   dashboard: {url}/")
        typer.echo(
            f"dashboard logins for this run: supervisor, and the agents "
            f"{', '.join(a for a, _ in AGENTS)} (password {password})"
        )
        if generated:
            typer.echo(f"admin token for this run (shown once): {generated}")
            typer.echo(f"  export DIALER_URL={url} DIALER_TOKEN=<that token>")
        else:
            typer.echo("admin token: the DIALER_BOOTSTRAP_TOKEN you set")
            typer.echo(f"  export DIALER_URL={url} DIALER_TOKEN=$DIALER_BOOTSTRAP_TOKEN")
        typer.echo(
            "  dialer campaign list   |   more tokens: dialer token create --role supervisor"
        )
        typer.echo("Ctrl-C to stop")
        progress = asyncio.create_task(_progress(service, campaign.id, script))
        try:
            await until_signal(duration)
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
            paused = await service.pause_all(actor=DEMO_ACTOR, reason="demo stopped")
            typer.echo(f"demo stopped; paused: {', '.join(paused) or '-'}")


async def _progress(service: Service, campaign_id: str, script: bool) -> None:
    from dialer.cli.demo import DEMO_ACTOR

    started = time.monotonic()
    paused = resumed = False
    while True:
        await asyncio.sleep(2)
        elapsed = time.monotonic() - started
        try:
            if script and not paused and elapsed >= 20:
                paused = True
                result = await service.pause(campaign_id, actor=DEMO_ACTOR, reason="demo script")
                typer.echo(
                    f"PAUSE  in flight at ack: {len(result.in_flight)}  "
                    f"agents released: {', '.join(result.released_agents) or '-'}"
                )
            elif script and paused and not resumed and elapsed >= 30:
                resumed = True
                await service.resume(campaign_id, actor=DEMO_ACTOR)
                typer.echo("RESUME")
        except ServiceError as exc:  # someone else controls the campaign over the API
            typer.echo(f"script step skipped: {exc.message}")
        s = await service.stats(campaign_id)
        typer.echo(
            f"{elapsed:6.0f}s {s.state:<10} dialed {s.calls.dialed:4} "
            f"received {s.calls.received:4} answered {s.calls.answered:4} "
            f"abandoned {s.calls.abandoned:3} in flight {s.calls.in_flight:3} "
            f"avg {s.calls.avg_duration_seconds:5.1f}s | emails {s.emails.sent:4} | "
            f"leads done {s.leads['completed']:4}/{sum(s.leads.values())}"
        )
