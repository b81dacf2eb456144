"""Settings, read once at the edge (CLI, app factory), passed down (docs/architecture.md §14.6)."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BOOTSTRAP_TOKEN_MIN = 24  # characters: a guessable admin secret is no secret


class Settings(BaseSettings):
    # A refused value is not echoed back: it may be a secret (a token, a URL's password).
    model_config = SettingsConfigDict(
        env_prefix="DIALER_", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = "sqlite+aiosqlite:///./dialer.db"
    bus_url: str = "memory://"
    host: str = "127.0.0.1"
    port: int = 8080
    # `dialer worker`'s /metrics, /healthz and /readyz, on DIALER_HOST (docs/api.md §11).
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    public_base_url: str = "http://127.0.0.1:8080"

    voice_provider: str = "simulated"
    email_provider: str = "simulated"
    sim_time_scale: float = 1.0
    sim_answer_rate: float = 0.3
    sim_seed: int | None = None
    maildir: Path = Path("./maildir")

    bootstrap_token: SecretStr | None = None
    # Signs unsubscribe links; when unset, one is generated once and kept in the database.
    secret_key: SecretStr | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_api_base: str | None = None
    twilio_calls_per_second: float = Field(default=1.0, gt=0)  # the account's CPS limit
    # Where the agent leg of a bridged call goes: "client:{agent_id}" (Twilio Client
    # identity) or a phone template like "+1555123{agent_id}".
    twilio_agent_leg: str = "client:{agent_id}"
    predictive_max_lines_per_agent: float = Field(default=3.0, ge=1.0)
    smtp_url: SecretStr | None = None
    # Connections the SMTP channel keeps open and sends on side by side (docs/architecture.md §9).
    smtp_pool_size: int = Field(default=4, ge=1, le=64)
    # Email that listens (docs/architecture.md §9.1, docs/api.md §14): the envelope sender
    # (VERP: bounces+<token>@...), the Reply-To (the same way), the webhook's HMAC secret and
    # the IMAP mailbox watched for replies and bounces.
    bounce_address: str | None = Field(default=None, pattern=r"^[^@\s+]+@[^@\s]+$")
    reply_address: str | None = Field(default=None, pattern=r"^[^@\s+]+@[^@\s]+$")
    inbound_secret: SecretStr | None = None
    imap_url: SecretStr | None = None

    worker_id: str | None = None
    # `dialer serve` runs an engine of its own; with workers beside it (scale-out) it may
    # leave the dispatching to them and serve only the API and the carrier's callbacks.
    serve_engine: bool = True
    tick_seconds: float = Field(default=0.2, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    abandon_redial_hours: float = Field(default=72.0, ge=0)
    # A lead paused longer than this is `stale` (docs/architecture.md §3.5); fractional allowed.
    stale_pause_days: float = Field(default=30.0, gt=0)
    email_batch: int = Field(default=50, gt=0)
    # Hand-offs of one round in flight at once, per channel (docs/architecture.md §6.5).
    voice_concurrency: int = Field(default=16, ge=1, le=256)
    email_concurrency: int = Field(default=16, ge=1, le=256)
    log_level: str = "INFO"
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses or CIDR
    # blocks): the login limiter counts the client behind them, not the proxy (docs/api.md §2).
    trusted_proxies: str = ""

    @field_validator("bootstrap_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < BOOTSTRAP_TOKEN_MIN:
            raise ValueError(
                f"DIALER_BOOTSTRAP_TOKEN must be at least {BOOTSTRAP_TOKEN_MIN} characters "
                f"(it is an admin credential); generate one with: "
                f"python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for entry in filter(None, (e.strip() for e in value.split(","))):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"DIALER_TRUSTED_PROXIES: not an IP address or network: {entry!r}"
                ) from None
        return value

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(
            ipaddress.ip_network(e.strip(), strict=False)
            for e in self.trusted_proxies.split(",")
            if e.strip()
        )
