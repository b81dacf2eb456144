"""`dialer campaign list|pause|resume|terminate`: a thin client of the HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from dialer.cli.client import ApiFailure, Client, local_url
from dialer.cli.settings import load_settings

T = TypeVar("T")
campaign_app = typer.Typer(help="Control campaigns over the HTTP API", no_args_is_help=True)

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="DIALER_URL",
        help="API base URL [default: http://DIALER_HOST:DIALER_PORT]",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="DIALER_TOKEN",
        help="API token (prefer the DIALER_TOKEN variable: arguments show up in `ps`)",
        show_default=False,
        show_envvar=True,
    ),
]
CampaignId = Annotated[str, typer.Argument(help="campaign id", show_default=False)]


def _base_url(url: str | None) -> str:
    if url:
        return url
    settings = load_settings()
    return local_url(settings.host, settings.port)


def _call(url: str | None, token: str | None, action: Callable[[Client], Awaitable[T]]) -> T:
    """Run `action` against the API; an error prints the API's message and exits 1."""
    if not token:
        typer.echo("no token: set DIALER_TOKEN or pass --token", err=True)
        raise typer.Exit(2)

    async def main() -> T:
        async with Client(_base_url(url), token) as api:
            return await action(api)

    try:
        return asyncio.run(main())
    except ApiFailure as exc:
        typer.echo(f"error: {exc}", err=True)
        for err in exc.details.get("errors", []) if isinstance(exc.details, dict) else []:
            typer.echo(f"  {err.get('field')}: {err.get('message')}", err=True)
        if "state" in exc.details:
            typer.echo(f"  current state: {exc.details['state']}", err=True)
        raise typer.Exit(1) from None


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def _in_flight(result: dict[str, Any]) -> None:
    in_flight = result.get("in_flight", [])
    typer.echo(f"in flight at ack: {len(in_flight)}")
    for a in in_flight:
        typer.echo(
            f"  {a['id']:<10} {a['channel']:<6} {a['status']:<12} agent {a['agent_id'] or '-'}"
        )
    typer.echo(f"agents released: {', '.join(result.get('released_agents', [])) or '-'}")


@campaign_app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="only campaigns in this state")] = None,
    archived: Annotated[bool, typer.Option(help="include archived campaigns")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List campaigns."""
    items = _call(
        url, token, lambda api: api.campaigns(state=state, archived="all" if archived else "false")
    )
    if not items:
        typer.echo("no campaigns")
        return
    width = max(10, *(len(c["id"]) for c in items))
    typer.echo(f"{'ID':<{width}}  {'STATE':<10}  {'STARTED':<19}  NAME")
    for c in items:
        name = c["name"] + (" (archived)" if c.get("archived") else "")
        typer.echo(f"{c['id']:<{width}}  {c['state']:<10}  {_when(c['started_at']):<19}  {name}")


@campaign_app.command()
def pause(
    campaign_id: CampaignId,
    reason: Annotated[str | None, typer.Option(help="why (kept in the audit trail)")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Pause a running campaign: nothing more goes out once this returns."""
    result = _call(url, token, lambda api: api.pause(campaign_id, reason=reason))
    c = result["campaign"]
    typer.echo(f"campaign {c['id']} {c['state']} (version {c['version']})")
    _in_flight(result)


@campaign_app.command()
def resume(campaign_id: CampaignId, url: Url = None, token: Token = None) -> None:
    """Resume a paused campaign."""
    c = _call(url, token, lambda api: api.resume(campaign_id))
    typer.echo(f"campaign {c['id']} {c['state']} (version {c['version']})")


@campaign_app.command()
def terminate(
    campaign_id: CampaignId,
    confirm: Annotated[
        str | None,
        typer.Option(help="the campaign id again, to skip the prompt in scripts"),
    ] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Terminate a campaign for good (irreversible): cancel, or stop once in-flight work ends."""
    if confirm is None:
        confirm = typer.prompt(f"This cannot be undone. Type the campaign id ({campaign_id})")
    if confirm != campaign_id:
        typer.echo("confirmation does not match the campaign id; nothing done", err=True)
        raise typer.Exit(1)
    result = _call(url, token, lambda api: api.terminate(campaign_id, confirm=campaign_id))
    c = result["campaign"]
    typer.echo(f"campaign {c['id']} {c['state']} (version {c['version']})")
    _in_flight(result)
    if result.get("cancelled_calls"):
        typer.echo(f"calls cancelled: {len(result['cancelled_calls'])}")
