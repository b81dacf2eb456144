"""`dialer token create` and `dialer user create`: credentials written straight to the database
(first set-up, or when no admin token is at hand). Migrations run first."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from dialer.cli.settings import load_settings
from dialer.errors import ServiceError

if TYPE_CHECKING:
    from dialer.usecases.accounts import Accounts

T = TypeVar("T")
PASSWORD_ENV = "DIALER_NEW_USER_PASSWORD"

token_app = typer.Typer(help="API tokens", no_args_is_help=True)
user_app = typer.Typer(help="Dashboard users", no_args_is_help=True)

RoleOpt = Annotated[str, typer.Option("--role", help="admin, supervisor, agent or viewer")]
AgentOpt = Annotated[
    str | None, typer.Option("--agent-id", help="the agent it acts as (required for agent)")
]


def _with_accounts(action: Callable[[Accounts], Awaitable[T]]) -> T:
    # Imported here: `dialer --help` and the HTTP commands stay quick to start.
    from dialer.clock import SystemClock
    from dialer.store.db import Database
    from dialer.store.migrate import migrate
    from dialer.usecases.accounts import Accounts

    settings = load_settings()

    async def main() -> T:
        db = Database(settings.database_url)
        clock = SystemClock()
        try:
            await migrate(db)
            return await action(Accounts(db, clock))
        finally:
            await clock.aclose()
            await db.aclose()

    try:
        return asyncio.run(main())
    except ServiceError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for err in exc.details.get("errors", []):
            typer.echo(f"  {err['field']}: {err['message']}", err=True)
        raise typer.Exit(1) from None


@token_app.command("create")
def create_token(
    role: RoleOpt,
    name: Annotated[str, typer.Option(help="a label to recognise it by")] = "",
    agent_id: AgentOpt = None,
) -> None:
    """Create an API token; the secret is printed this once and never stored."""
    plain, row = _with_accounts(
        lambda accounts: accounts.create_token(role, name=name, agent_id=agent_id)
    )
    typer.echo(f"token {row.id} ({row.name}, {row.role}) created; it is shown only once:", err=True)
    typer.echo(plain)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        typer.echo(f"no password: pipe it with --password-stdin or set {PASSWORD_ENV}", err=True)
        raise typer.Exit(2)
    return password


@user_app.command("create")
def create_user(
    username: Annotated[str, typer.Option("--username", help="the login name")],
    role: RoleOpt,
    agent_id: AgentOpt = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help=f"read the password from stdin (else from ${PASSWORD_ENV})"
        ),
    ] = False,
) -> None:
    """Create a dashboard user. The password never goes on the command line."""
    password = _password(password_stdin)
    user = _with_accounts(
        lambda accounts: accounts.create_user(username, password, role, agent_id=agent_id)
    )
    suffix = f" for agent {user.agent_id}" if user.agent_id else ""
    typer.echo(f"user {user.username} ({user.role}{suffix}) created")
