"""Twilio's formats as pure functions: TwiML out, callback parameters in."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from dialer.channels import twiml
from dialer.domain.states import AttemptStatus


@pytest.mark.parametrize(
    ("twilio", "ours"),
    [
        ("queued", AttemptStatus.QUEUED),
        ("initiated", AttemptStatus.INITIATED),
        ("ringing", AttemptStatus.RINGING),
        ("in-progress", AttemptStatus.IN_PROGRESS),
        ("completed", AttemptStatus.COMPLETED),
        ("busy", AttemptStatus.BUSY),
        ("no-answer", AttemptStatus.NO_ANSWER),
        ("failed", AttemptStatus.FAILED),
        ("canceled", AttemptStatus.CANCELED),
        ("Busy ", AttemptStatus.BUSY),
        ("weird", None),
        (None, None),
    ],
)
def test_call_status(twilio: str | None, ours: AttemptStatus | None) -> None:
    assert twiml.call_status(twilio) == ours


@pytest.mark.parametrize(
    ("twilio", "ours"),
    [
        ("human", "human"),
        ("machine_start", "machine"),
        ("machine_end_beep", "machine"),
        ("machine_end_silence", "machine"),
        ("machine_end_other", "machine"),
        ("fax", "machine"),
        ("unknown", "unknown"),
        ("", None),
        (None, None),
    ],
)
def test_answered_by(twilio: str | None, ours: str | None) -> None:
    assert twiml.answered_by(twilio) == ours


def test_status_event_reads_duration_answered_by_and_twilio_timestamp() -> None:
    params = {
        "CallSid": "CA1",
        "CallStatus": "completed",
        "CallDuration": "42",
        "AnsweredBy": "machine_end_beep",
        "Timestamp": "Thu, 01 Jan 2026 00:00:10 +0000",
    }
    ev = twiml.status_event("7", params, at=0.0)
    assert ev is not None
    assert (ev.attempt_id, ev.carrier_id, ev.status) == ("7", "CA1", AttemptStatus.COMPLETED)
    assert (ev.duration_seconds, ev.answered_by, ev.at) == (42.0, "machine", 1_767_225_610.0)


def test_status_event_edge_cases() -> None:
    assert twiml.status_event("1", {"CallSid": "CA1"}, 5.0) is None
    ringing = twiml.status_event("1", {"CallStatus": "ringing", "CallDuration": "3"}, 5.0)
    assert ringing is not None and ringing.duration_seconds is None and ringing.at == 5.0
    bad = twiml.status_event("1", {"CallStatus": "completed", "CallDuration": "x"}, 5.0)
    assert bad is not None and bad.duration_seconds is None
    odd_time = twiml.status_event("1", {"CallStatus": "busy", "Timestamp": "yesterday"}, 5.0)
    assert odd_time is not None and odd_time.at == 5.0
    failed = twiml.status_event("1", {"CallStatus": "failed", "ErrorCode": "13224"}, 5.0)
    assert failed is not None and failed.error == "13224"


def test_amd_event_is_an_answer_with_who() -> None:
    ev = twiml.amd_event("3", {"CallSid": "CA3", "AnsweredBy": "machine_start"}, 9.0)
    assert ev is not None
    assert (ev.status, ev.answered_by, ev.at) == (AttemptStatus.IN_PROGRESS, "machine", 9.0)
    assert twiml.amd_event("3", {"CallSid": "CA3"}, 9.0) is None


def test_conference_twiml_for_both_legs() -> None:
    for customer in (True, False):
        root = ET.fromstring(twiml.join_conference("CA9", customer=customer))
        conference = root.find("./Dial/Conference")
        assert conference is not None and conference.text == "dialer-CA9"
        assert conference.attrib["endConferenceOnExit"] == "true"
        assert conference.attrib["startConferenceOnEnter"] == "true"
        assert ("waitUrl" in conference.attrib) is customer


def test_message_is_escaped_not_concatenated() -> None:
    root = ET.fromstring(twiml.say_and_hangup('Hi <Hangup/> & "you"'))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == 'Hi <Hangup/> & "you"'
    assert [child.tag for child in ET.fromstring(twiml.say_and_hangup(None))] == ["Hangup"]
