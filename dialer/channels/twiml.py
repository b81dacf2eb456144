"""Twilio's wire formats, as pure functions: the TwiML we answer with and the callback
parameters Twilio posts to us (mapped onto our `CallEvent`).

TwiML is built with the SDK's `VoiceResponse`, which escapes text, never by concatenation.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from twilio.twiml.voice_response import Dial, VoiceResponse

from dialer.channels.base import CallEvent
from dialer.domain.campaign import AnsweredBy
from dialer.domain.states import AttemptStatus

CALL_STATUS: dict[str, AttemptStatus] = {
    "queued": AttemptStatus.QUEUED,
    "initiated": AttemptStatus.INITIATED,
    "ringing": AttemptStatus.RINGING,
    "in-progress": AttemptStatus.IN_PROGRESS,
    "answered": AttemptStatus.IN_PROGRESS,  # the value of StatusCallbackEvent, not a status
    "completed": AttemptStatus.COMPLETED,
    "busy": AttemptStatus.BUSY,
    "no-answer": AttemptStatus.NO_ANSWER,
    "failed": AttemptStatus.FAILED,
    "canceled": AttemptStatus.CANCELED,
}


def conference_name(call_sid: str) -> str:
    """The one conference of an attempt, named after its (one) customer call.

    Named by the CallSid, not the attempt id: `bridge(carrier_id, agent)` may run in any
    worker (the one the status callback reached), which knows only the carrier id.
    """
    return f"dialer-{call_sid}"


def join_conference(call_sid: str, *, customer: bool) -> str:
    """Put a leg into the attempt's conference.

    The customer starts it on entry (no hold music: silence until the agent joins, which the
    engine arranges within the 2 s grace). Either side leaving ends it, so nobody is left
    alone in an empty conference.
    """
    response = VoiceResponse()
    dial = Dial()
    dial.conference(
        conference_name(call_sid),
        start_conference_on_enter=True,
        end_conference_on_exit=True,
        beep=False,
        wait_url="" if customer else None,
    )
    response.append(dial)
    return str(response)


def say_and_hangup(message: str | None) -> str:
    """The campaign's identification message (abandon, answering machine), then hang up."""
    response = VoiceResponse()
    if message:
        response.say(message)
    response.hangup()
    return str(response)


def answered_by(value: str | None) -> AnsweredBy | None:
    """Twilio's AnsweredBy as ours: human, machine (machine_*, fax) or unknown."""
    if not value:
        return None
    if value == "human":
        return AnsweredBy.HUMAN
    if value.startswith("machine") or value == "fax":
        return AnsweredBy.MACHINE
    return AnsweredBy.UNKNOWN


def call_status(value: str | None) -> AttemptStatus | None:
    return CALL_STATUS.get((value or "").strip().lower())


def callback_time(params: Mapping[str, str], default: float) -> float:
    """Twilio's own `Timestamp` of the event (RFC 2822), else when it reached us."""
    raw = params.get("Timestamp")
    if raw:
        try:
            return parsedate_to_datetime(raw).timestamp()
        except (TypeError, ValueError, IndexError):
            pass
    return default


def status_event(attempt_id: str, params: Mapping[str, str], at: float) -> CallEvent | None:
    """A status callback as a CallEvent; None when it names no status we know."""
    status = call_status(params.get("CallStatus"))
    if status is None:
        return None
    duration: float | None = None
    raw = params.get("CallDuration")
    if raw and status is AttemptStatus.COMPLETED:
        try:
            duration = max(0.0, float(raw))
        except ValueError:
            duration = None
    error = None
    if status is AttemptStatus.FAILED:
        error = params.get("ErrorMessage") or params.get("ErrorCode") or "twilio: failed"
    return CallEvent(
        attempt_id=attempt_id,
        carrier_id=params.get("CallSid", ""),
        status=status,
        at=callback_time(params, at),
        answered_by=answered_by(params.get("AnsweredBy")),
        duration_seconds=duration,
        error=error,
    )


def amd_event(attempt_id: str, params: Mapping[str, str], at: float) -> CallEvent | None:
    """An async AMD result: the call was answered, and here is by whom."""
    who = answered_by(params.get("AnsweredBy"))
    if who is None:
        return None
    return CallEvent(
        attempt_id=attempt_id,
        carrier_id=params.get("CallSid", ""),
        status=AttemptStatus.IN_PROGRESS,
        at=callback_time(params, at),
        answered_by=who,
    )
