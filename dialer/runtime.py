"""Wiring: one object that owns every resource of a dialer process, built from Settings.

`Runtime.open(settings)` is the one async context manager (docs/architecture.md §14.7): database,
bus,
channels, engine. Tests pass their own clock and channels; nothing is patched.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Self

from dialer.bus import bus_from_url
from dialer.bus.base import Bus, worker_info
from dialer.channels.base import EmailChannel, VoiceChannel
from dialer.channels.maildir import MaildirEmail
from dialer.channels.simulated import SimProfile, SimulatedVoice
from dialer.clock import Clock, SystemClock
from dialer.config import Settings
from dialer.domain.links import LinkSigner
from dialer.engine.deps import Deps, Tuning
from dialer.engine.engine import Engine
from dialer.engine.fence import Fence
from dialer.inbound.imap import ImapWatcher
from dialer.inbound.service import Inbound
from dialer.metrics.registry import Metrics
from dialer.store import accounts as store_accounts
from dialer.store.db import Database
from dialer.store.migrate import migrate
from dialer.usecases.campaigns import Service


async def stored_secret(db: Database, name: str) -> bytes:
    """A server secret generated on first use and kept in the database."""
    async with db.session() as s:
        return (await store_accounts.secret(s, name)).encode()


def make_voice(settings: Settings, clock: Clock) -> VoiceChannel:
    if settings.voice_provider == "simulated":
        rate = settings.sim_answer_rate
        profile = SimProfile(answer_rate=rate, machine_rate=min(0.1, max(0.0, 0.9 - rate)))
        return SimulatedVoice(
            clock, profile, seed=settings.sim_seed, time_scale=settings.sim_time_scale
        )
    if settings.voice_provider == "twilio":
        return _twilio_voice(settings, clock)
    raise ValueError(
        f"DIALER_VOICE_PROVIDER: {settings.voice_provider!r} is not one of simulated, twilio"
    )


def _twilio_voice(settings: Settings, clock: Clock) -> VoiceChannel:
    try:
        from dialer.channels.twilio import TwilioVoice
    except ImportError as exc:  # the optional extra is not installed
        raise RuntimeError(
            "DIALER_VOICE_PROVIDER=twilio needs the twilio package: pip install 'dialer[twilio]'"
        ) from exc
    if not settings.twilio_account_sid or settings.twilio_auth_token is None:
        raise ValueError(
            "DIALER_TWILIO_ACCOUNT_SID and DIALER_TWILIO_AUTH_TOKEN are required "
            "when DIALER_VOICE_PROVIDER=twilio"
        )
    return TwilioVoice(
        clock,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        public_base_url=settings.public_base_url,
        agent_leg=settings.twilio_agent_leg,
        api_base=settings.twilio_api_base,
    )


def make_email(settings: Settings, clock: Clock) -> EmailChannel:
    if settings.email_provider == "simulated":
        return MaildirEmail(
            settings.maildir,
            clock,
            bounce_address=settings.bounce_address,
            reply_address=settings.reply_address,
        )
    if settings.email_provider == "smtp":
        from dialer.channels.smtp import SmtpEmail

        if settings.smtp_url is None:
            raise ValueError("DIALER_SMTP_URL is required when DIALER_EMAIL_PROVIDER=smtp")
        return SmtpEmail(
            settings.smtp_url.get_secret_value(),
            clock,
            pool_size=settings.smtp_pool_size,
            bounce_address=settings.bounce_address,
            reply_address=settings.reply_address,
        )
    raise ValueError(
        f"DIALER_EMAIL_PROVIDER: {settings.email_provider!r} is not one of simulated, smtp"
    )


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: Database
    bus: Bus
    clock: Clock
    metrics: Metrics
    engine: Engine
    service: Service
    inbound: Inbound  # replies, bounces, tracked links (docs/architecture.md §9.1)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        voice: VoiceChannel | None = None,
        email: EmailChannel | None = None,
        run_engine: bool = True,
        run_migrations: bool = True,
        database_gauges: bool = True,
        watch_mailbox: bool = True,
    ) -> AsyncIterator[Self]:
        """`database_gauges=False` for `dialer worker`: the gauges that describe the database
        are exported by `serve` only (docs/architecture.md §12.2)."""
        # Whatever the caller passes in stays the caller's to close (one owner each).
        owned_clock, owned_voice, owned_email = clock is None, voice is None, email is None
        clock = clock or SystemClock()
        db = Database(settings.database_url)
        bus = bus_from_url(settings.bus_url, clock, lease_seconds=settings.lease_seconds)
        voice = voice or make_voice(settings, clock)
        email = email or make_email(settings, clock)
        metrics = Metrics(database_gauges=database_gauges)
        tuning = Tuning(
            # One id per process, never reused: a restarted process must not vouch for the
            # calls of the one that died (docs/architecture.md §15.2).
            worker_id=f"{settings.worker_id or socket.gethostname()}-{secrets.token_hex(3)}",
            lease_seconds=settings.lease_seconds,
            abandon_redial_seconds=settings.abandon_redial_hours * 3600,
            email_batch=settings.email_batch,
            voice_concurrency=settings.voice_concurrency,
            email_concurrency=settings.email_concurrency,
            predictive_max_lines_per_agent=settings.predictive_max_lines_per_agent,
            public_base_url=settings.public_base_url,
            account_calls_per_second=(
                settings.twilio_calls_per_second if settings.voice_provider == "twilio" else None
            ),
        )
        engine: Engine | None = None
        watcher: ImapWatcher | None = None
        try:
            if run_migrations:
                await migrate(db)
            key = settings.secret_key
            links = LinkSigner(
                key.get_secret_value().encode() if key else await stored_secret(db, "links")
            )
            deps = Deps(db, bus, clock, voice, email, metrics, Fence(), tuning, links)
            engine = Engine(deps, tick_seconds=settings.tick_seconds)
            service = Service(
                db,
                engine,
                clock,
                metrics,
                links,
                lease_seconds=settings.lease_seconds,
                stale_pause_days=settings.stale_pause_days,
            )
            for c in await service.list_campaigns(archived=None):
                deps.fence.see(c.id, c.state, c.version)
                metrics.set_campaign_state(c.id, c.state)
            if run_engine:
                # Registered before the first tick: from now on every pause waits for us.
                await bus.join(
                    worker_info(tuning.worker_id, clock.now()), lambda: list(engine.dispatching)
                )
                await engine.start()
            inbound = Inbound(
                db,
                clock,
                metrics,
                links,
                bounce_address=settings.bounce_address,
                reply_address=settings.reply_address,
            )
            # The mailbox is watched by `dialer serve` alone, like the database's gauges
            # (a worker runs with database_gauges=False; docs/architecture.md §9.1).
            if settings.imap_url is not None and database_gauges and watch_mailbox:
                watcher = ImapWatcher(settings.imap_url.get_secret_value(), inbound)
                await watcher.start()
            yield cls(settings, db, bus, clock, metrics, engine, service, inbound)
        finally:
            if watcher is not None:
                await watcher.stop()
            if engine is not None:
                await engine.stop()
            if owned_voice:
                await voice.close()
            if owned_email:
                await email.close()
            await bus.aclose()
            await db.aclose()
            if owned_clock:
                await clock.aclose()
