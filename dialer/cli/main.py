"""The `dialer` command. Settings come from DIALER_* variables, read here once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import typer

from dialer.cli.admin import token_app, user_app
from dialer.cli.campaign import campaign_app
from dialer.cli.settings import load_settings
from dialer.config import Settings
from dialer.logs import configure

app = typer.Typer(help="dialer: outbound voice and email campaigns", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(campaign_app, name="campaign")


def _settings(**overrides: object) -> Settings:
    settings = load_settings()
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


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
def serve() -> None:
    """Serve the HTTP API and run the engine in one process, until SIGINT/SIGTERM."""
    from dialer.cli.serve import serve as run_serve

    settings = _settings()
    configure(settings.log_level)
    _run(lambda: run_serve(settings))


@app.command()
def worker() -> None:
    """Run the dispatch engine only, until SIGINT/SIGTERM; /metrics, /healthz and /readyz on
    DIALER_METRICS_PORT. Needs the Redis bus (DIALER_BUS_URL=redis://…)."""
    from dialer.cli.serve import WORKER_NEEDS_REDIS, in_process_bus
    from dialer.cli.serve import worker as run_worker

    settings = _settings()
    if in_process_bus(settings.bus_url):
        # It could not take part in a pause (docs/architecture.md §12.2).
        typer.echo(WORKER_NEEDS_REDIS, err=True)
        raise typer.Exit(2)
    configure(settings.log_level)
    _run(lambda: run_worker(settings))


@app.command()
def demo(
    leads: int = typer.Option(200, help="demo leads to load"),
    time_scale: float = typer.Option(20.0, help="simulated ring/talk time runs this much faster"),
    duration: float = typer.Option(0, help="stop after this many seconds (0: until Ctrl-C)"),
    script: bool = typer.Option(True, help="pause after 20 s and resume 10 s later"),
) -> None:
    """Serve a demo campaign over HTTP (SQLite, simulated carrier and agents).

    Without DIALER_BOOTSTRAP_TOKEN, a fresh admin token for this run is printed once.
    """
    from dialer.cli.serve import demo as run_demo
    from dialer.cli.serve import demo_settings

    settings, generated = demo_settings(_settings(sim_time_scale=time_scale))
    configure(settings.log_level if settings.log_level != "INFO" else "WARNING")
    _run(
        lambda: run_demo(
            settings, leads=leads, duration=duration or None, script=script, generated=generated
        )
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
