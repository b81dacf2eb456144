"""What the fake Twilio records: its calls, the webhooks it sent, and the call resource JSON."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from dialer.clock import Handle
from tests.fakes.twilio_twiml import Verb

API_VERSION = "2010-04-01"
OUTCOMES = frozenset({"human", "machine", "busy", "no-answer", "failed"})
FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
NOT_ANSWERED = frozenset({"queued", "initiated", "ringing"})
# StatusCallbackEvent names of the statuses reported only when asked for; the final statuses
# are always reported to a StatusCallback (they are the `completed` event).
EVENT_OF_STATUS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_CLIENT = re.compile(r"client:[A-Za-z0-9_.@-]+")
_SIP = re.compile(r"sip:\S+")


def valid_to(number: str) -> bool:
    return any(p.fullmatch(number) for p in (_E164, _CLIENT, _SIP))


def valid_from(number: str) -> bool:
    return any(p.fullmatch(number) for p in (_E164, _CLIENT))


def rfc2822(epoch: float) -> str:
    """Twilio's date format: `Thu, 01 Jan 2026 00:00:00 +0000`."""
    return format_datetime(datetime.fromtimestamp(int(epoch), UTC))


@dataclass(frozen=True)
class Script:
    outcome: str
    ring_seconds: float
    talk_seconds: float


@dataclass(frozen=True)
class SentCallback:
    """One webhook request the fake made, signed like Twilio signs it."""

    kind: str  # "status" (StatusCallback), "voice" (the call's Url/Redirect), "amd"
    call_sid: str
    url: str
    params: dict[str, str]
    signature: str
    status: int  # the receiver's HTTP status; 0 if the request failed
    at: float  # clock time
    error: str | None = None


@dataclass(eq=False)
class FakeCall:
    """One call in the fake account's log.

    `params` is the create form (last value of each field; `events` holds every
    StatusCallbackEvent). `history` lists every status the call went through, from `queued`.
    """

    sid: str
    account_sid: str
    to: str
    from_: str
    params: dict[str, str]
    created_at: float
    outcome: str  # the scripted outcome
    ring_seconds: float
    talk_seconds: float
    agent_leg: bool  # To=client:..., or an inline Twiml that joins a conference
    url: str | None = None
    twiml: str | None = None  # the last TwiML executed
    status_callback: str | None = None
    events: list[str] = field(default_factory=list)
    timeout: int = 60
    time_limit: int = 14400
    machine_detection: str | None = None
    async_amd: bool = False
    async_amd_status_callback: str | None = None
    status: str = "queued"
    history: list[str] = field(default_factory=lambda: ["queued"])
    answered_by: str | None = None
    duration: int | None = None
    started_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    conference: str | None = None  # the last conference joined
    ends_conference: bool = False  # joined it with endConferenceOnExit="true"
    agent_legs: list[str] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)  # Twilio error codes (11200, 12100)
    ignored_verbs: list[str] = field(default_factory=list)
    # Internal state of the call's timeline.
    gen: int = field(default=0, repr=False)  # bumped by every interruption of the TwiML
    step: Handle | None = field(default=None, repr=False)
    limit: Handle | None = field(default=None, repr=False)
    amd: Handle | None = field(default=None, repr=False)
    program: deque[Verb] = field(default_factory=deque, repr=False)
    outbox: list[dict[str, str]] = field(default_factory=list, repr=False)
    flushing: bool = field(default=False, repr=False)
    flusher: Handle | None = field(default=None, repr=False)
    sequence: int = field(default=0, repr=False)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def webhook_params(self) -> dict[str, str]:
        """What every request Twilio makes about this call carries."""
        params = {
            "CallSid": self.sid,
            "AccountSid": self.account_sid,
            "From": self.from_,
            "To": self.to,
            "CallStatus": self.status,
            "Direction": "outbound-api",
            "ApiVersion": API_VERSION,
        }
        if self.answered_by is not None:
            params["AnsweredBy"] = self.answered_by
        return params

    def resource(self) -> dict[str, Any]:
        """The call resource as Twilio's JSON API returns it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        updated = self.ended_at or self.answered_at or self.started_at or self.created_at
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.created_at),
            "date_updated": rfc2822(updated),
            "direction": "outbound-api",
            "duration": None if self.duration is None else str(self.duration),
            "start_time": None if self.started_at is None else rfc2822(self.started_at),
            "end_time": None if self.ended_at is None else rfc2822(self.ended_at),
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": self.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "status": self.status,
            "to": self.to,
            "to_formatted": self.to,
            "trunk_sid": None,
            "uri": f"{uri}.json",
            "subresource_uris": {
                name: f"{uri}/{path}.json"
                for name, path in (
                    ("notifications", "Notifications"),
                    ("recordings", "Recordings"),
                    ("events", "Events"),
                )
            },
        }
