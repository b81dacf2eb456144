"""The channel interface: what the engine asks of a voice carrier or a mail server.

A channel never touches the database. It reports what happens to an attempt through the
`CallEventSink` the engine gives it; reports may arrive late, out of order or twice, and the
engine applies them idempotently (status only moves forward).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from dialer.domain.campaign import AnsweredBy
from dialer.domain.states import AttemptStatus


class ChannelError(Exception):
    """The carrier or mail server refused or failed; `retryable` says if a retry may help.

    `unavailable`: the carrier or server could not be reached or answered that it cannot
    serve now (connection refused, timeout, HTTP 5xx or 429): an outage, not an outcome of
    the attempt; it uses no try (docs/architecture.md §15.3). `maybe_placed`: the request may
    have reached the carrier before the failure (a timeout or a connection lost mid-request):
    the call's fate is asked of the carrier later, never dialled blindly again.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        unavailable: bool = False,
        maybe_placed: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable or unavailable
        self.unavailable = unavailable
        self.maybe_placed = maybe_placed and unavailable


@dataclass(frozen=True, slots=True)
class DialRequest:
    attempt_id: str
    idempotency_key: str
    campaign_id: str
    to: str  # E.164
    caller_id: str
    ring_timeout_seconds: int


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One status report from the carrier about one call."""

    attempt_id: str
    carrier_id: str
    status: AttemptStatus
    at: float  # epoch seconds, from the channel's clock
    answered_by: AnsweredBy | None = None  # once answered
    duration_seconds: float | None = None  # connected talk time, with the final status
    error: str | None = None


CallEventSink = Callable[[CallEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CallQuery:
    """What the reconciler knows of an attempt whose fate it asks the carrier about."""

    attempt_id: str
    idempotency_key: str
    carrier_id: str | None  # stored once the carrier accepted the call
    to: str
    caller_id: str
    placed_after: float  # when the attempt row was written (epoch seconds)
    other_calls: frozenset[str] = frozenset()  # carrier ids of the lead's other attempts


class FateKind(StrEnum):
    KNOWN = "known"  # the carrier has the call: `event` is its latest status
    NOT_PLACED = "not_placed"  # the carrier's record is complete and holds no such call
    UNKNOWN = "unknown"  # the carrier cannot say (its record died, or it is ambiguous)


@dataclass(frozen=True, slots=True)
class CallFate:
    kind: FateKind
    event: CallEvent | None = None
    why: str = ""


NOT_PLACED = CallFate(FateKind.NOT_PLACED)


class VoiceChannel(Protocol):
    name: str

    def set_sink(self, sink: CallEventSink) -> None:
        """Where the channel reports call events; set once by the engine before any dial."""

    async def dial(self, request: DialRequest) -> str:
        """Hand one call to the carrier; returns the carrier's call id.

        Idempotent on `request.idempotency_key`: dialling the same key twice returns the same
        call and places no second call.
        """

    async def cancel(self, carrier_id: str) -> bool:
        """Cancel a call still queued at the carrier (never one that rings); True if it was."""

    async def bridge(self, carrier_id: str, agent_id: str) -> None:
        """Connect an answered call to an agent."""

    async def hangup(self, carrier_id: str, *, message: str | None = None) -> None:
        """End an answered call, optionally after playing `message` (abandon, machine)."""

    async def lookup(self, query: CallQuery) -> CallFate:
        """What the carrier knows of the attempt's call (reconciliation after a crash or
        lost callbacks). Raises ChannelError when the carrier cannot be asked now."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EmailMessage:
    attempt_id: str
    idempotency_key: str
    campaign_id: str
    to: str
    sender: str
    sender_name: str
    subject: str
    body: str
    reply_to: str | None = None
    unsubscribe_url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The attempt's own signed Message-ID (docs/architecture.md §9.1); None: the channel
    # makes one up.
    message_id: str | None = None
    # The signed VERP token: the channel's bounce (and reply) address gets `+<token>`.
    verp_token: str | None = None


class EmailChannel(Protocol):
    name: str

    async def send(self, message: EmailMessage) -> str:
        """Send one message; returns its Message-ID. Raises ChannelError on failure."""

    async def close(self) -> None: ...
