"""kill -9 of `dialer serve` at a random moment, restart on the same database: nothing stays
open, no agent stuck, terminate reaches `stopped`, the figures match the carrier, no try twice,
no call re-dialled, no lead advanced (issue 9; docs/architecture.md §15.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import LEADS, RUNS, SETTLE_SECONDS, FreshDb
from tests.faults.rig import Carrier, Scenario
from tests.faults.runs import kill_run


@pytest.mark.timeout(RUNS * (SETTLE_SECONDS + 60))
@pytest.mark.parametrize("carrier", ["simulated", "twilio"])
def test_kill_9_and_restart_leaves_nothing_stuck_lost_or_twice(
    fresh_db: FreshDb, carrier: Carrier, tmp_path: Path
) -> None:
    reports: list[str] = []
    for i in range(RUNS):
        workdir = tmp_path / f"run{i}"
        workdir.mkdir()
        scenario = Scenario(
            fresh_db(workdir),
            carrier,
            workdir,
            seed=9000 + i,
            leads=LEADS,
            settle_seconds=SETTLE_SECONDS,
        )
        # Alternate: terminate after the restart, or let the campaign run to its end.
        result = kill_run(scenario, terminate=i % 2 == 0)
        assert result.faults == 1
        if result.problems():
            reports.append(result.report())
    assert not reports, "\n\n".join(reports)
