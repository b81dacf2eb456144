"""The carrier refusing connections for a while mid-campaign, then back: no try used by a
failed connection, no lead advanced past its voice step, the outage reported, and afterwards
nothing open and the figures equal the carrier's record (issue 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import LEADS, SETTLE_SECONDS, FreshDb
from tests.faults.rig import Scenario
from tests.faults.runs import refuse_run


@pytest.mark.timeout(SETTLE_SECONDS + 90)
def test_carrier_refusing_connections_is_not_a_call_outcome(
    fresh_db: FreshDb, tmp_path: Path
) -> None:
    scenario = Scenario(
        fresh_db(tmp_path),
        "twilio",
        tmp_path,
        seed=4242,
        leads=LEADS,
        settle_seconds=SETTLE_SECONDS,
    )
    result = refuse_run(scenario, after_calls=3, down_seconds=4.0)
    assert result.settled.state == "completed", result.report()
    assert result.problems() == 0, result.report()
