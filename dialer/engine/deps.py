"""What the engine's parts share: one object, built once by the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from dialer.bus.base import Bus
from dialer.channels.base import EmailChannel, VoiceChannel
from dialer.clock import Clock
from dialer.domain.links import LinkSigner
from dialer.engine.control import SpecCache
from dialer.engine.fence import Fence
from dialer.engine.health import ChannelHealth
from dialer.metrics.registry import Metrics
from dialer.store.db import Database


@dataclass(slots=True)
class Tuning:
    worker_id: str
    lease_seconds: float = 60.0
    abandon_redial_seconds: float = 72 * 3600.0
    answer_grace_seconds: float = 2.0  # abandoned = answered and no agent within this
    email_batch: int = 50
    public_base_url: str = "http://127.0.0.1:8080"
    abandon_message: str = "Sorry we missed you. We will call back later."
    # The carrier account's calls-per-second limit; no campaign dials faster (None: no cap).
    account_calls_per_second: float | None = None
    predictive_max_lines_per_agent: float = 3.0
    # Hand-offs in flight at once per channel (docs/architecture.md §6.5): carrier REST
    # requests or SMTP transactions of one round that overlap.
    voice_concurrency: int = 16
    email_concurrency: int = 16


@dataclass(slots=True)
class Deps:
    db: Database
    bus: Bus
    clock: Clock
    voice: VoiceChannel
    email: EmailChannel
    metrics: Metrics
    fence: Fence
    tuning: Tuning
    links: LinkSigner
    specs: SpecCache = field(default_factory=SpecCache)  # parsed configs, by version
    health: ChannelHealth = field(default_factory=ChannelHealth)  # carrier reachable?
