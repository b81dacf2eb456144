"""The fake Twilio's own process (tests/fakes/serve_twilio.py): it answers, refuses every
connection when told to, and answers again on the same port with the same record."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.faults.rig import FakeTwilioProcess


def _status(url: str) -> int:
    """The HTTP status of GET `url`; 0 when the connection is refused."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:
        return 0


def test_refuse_and_accept_keep_the_port_and_the_record(tmp_path: Path) -> None:
    fake = FakeTwilioProcess(tmp_path, seed=1, time_scale=10)
    fake.start()
    try:
        calls_url = f"{fake.base_url}/2010-04-01/Accounts/AC1/Calls.json"
        assert _status(calls_url) == 401  # up: the REST API wants credentials
        fake.refuse()
        assert _status(calls_url) == 0
        assert fake.calls() == []  # the control API stays up
        fake.accept()
        assert _status(calls_url) == 401
    finally:
        fake.stop()
    assert fake.process is not None and fake.process.returncode == 0


def test_a_bad_mix_is_refused(tmp_path: Path) -> None:
    fake = FakeTwilioProcess(tmp_path, seed=1, time_scale=1)
    fake.args += ["--mix", "human=1,voicemail=1"]
    with pytest.raises(Exception, match="did not start"):
        fake.start()
