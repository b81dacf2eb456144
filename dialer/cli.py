"""The `dialer` command. Settings come from DIALER_* variables, read here once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

import typer

from dialer.config import Settings
from dialer.logs import configure

app = typer.Typer(help="dialer: outbound voice and email campaigns", no_args_is_help=True)


def _settings(**overrides: object) -> Settings:
    settings = Settings()
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


async def _until_signal(stop_after: float | None = None) -> None:
    """Wait for SIGINT/SIGTERM (signals only set an event) or `stop_after` seconds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=stop_after)


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from dialer.store.db import Database
    from dialer.store.migrate import current_revision
    from dialer.store.migrate import migrate as run_migrations

    settings = _settings()
    configure(settings.log_level)

    async def main() -> None:
        db = Database(settings.database_url)
        try:
            await run_migrations(db)
            typer.echo(f"schema at revision {await current_revision(db)}")
        finally:
            await db.aclose()

    _run(main)


@app.command()
def worker() -> None:
    """Run the dispatch engine only (no HTTP), until SIGINT/SIGTERM."""
    from dialer.runtime import Runtime

    settings = _settings()
    configure(settings.log_level)

    async def main() -> None:
        async with Runtime.open(settings):
            typer.echo("worker running; Ctrl-C to stop")
            await _until_signal()

    _run(main)


@app.command()
def demo(
    leads: int = typer.Option(200, help="demo leads to load"),
    time_scale: float = typer.Option(20.0, help="simulated ring/talk time runs this much faster"),
    duration: float = typer.Option(0, help="stop after this many seconds (0: until Ctrl-C)"),
    script: bool = typer.Option(True, help="pause after 20 s and resume 10 s later"),
) -> None:
    """Run a demo campaign on the embedded default (SQLite, simulated carrier and agents)."""
    from dialer.demo import DEMO_ACTOR, seed
    from dialer.runtime import Runtime

    settings = _settings(sim_time_scale=time_scale)
    configure(settings.log_level if settings.log_level != "INFO" else "WARNING")

    async def main() -> None:
        async with Runtime.open(settings) as rt:
            campaign = await seed(rt.service, leads=leads)
            await rt.service.start(campaign.id, actor=DEMO_ACTOR)
            typer.echo(f"demo campaign {campaign.id} running with {leads} leads; Ctrl-C to stop")
            progress = asyncio.create_task(_progress(rt.service, campaign.id, script))
            try:
                await _until_signal(duration or None)
            finally:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
                await rt.service.pause_all(actor=DEMO_ACTOR, reason="demo stopped")

    _run(main)


async def _progress(service: object, campaign_id: str, script: bool) -> None:
    from dialer.demo import DEMO_ACTOR
    from dialer.service import Service

    assert isinstance(service, Service)
    started = time.monotonic()
    paused = resumed = False
    while True:
        await asyncio.sleep(2)
        elapsed = time.monotonic() - started
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
        s = await service.stats(campaign_id)
        typer.echo(
            f"{elapsed:6.0f}s {s.state:<10} dialed {s.calls.dialed:4} "
            f"received {s.calls.received:4} answered {s.calls.answered:4} "
            f"abandoned {s.calls.abandoned:3} in flight {s.calls.in_flight:3} "
            f"avg {s.calls.avg_duration_seconds:5.1f}s | emails {s.emails.sent:4} | "
            f"leads done {s.leads['completed']:4}/{sum(s.leads.values())}"
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
