"""The settings of a `dialer` command, or a clear refusal (docs/api.md §14)."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from dialer.config import Settings


def load_settings() -> Settings:
    """Settings from the environment; a refused value ends the command with one line per
    problem naming the setting, and exit code 2 — no traceback, never the value itself."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "DIALER_" + "_".join(str(p) for p in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(message if message.startswith(name) else f"{name}: {message}", err=True)
        raise typer.Exit(2) from None
