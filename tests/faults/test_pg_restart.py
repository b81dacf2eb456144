"""PostgreSQL of the test's own stopped (immediate: a crash) mid-campaign and started again:
the API answers 503 meanwhile, the dialer keeps running and recovers by itself, and the
checks hold afterwards (issue 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import LEADS, SETTLE_SECONDS
from tests.faults.rig import Carrier, Scenario
from tests.faults.runs import pg_restart_run
from tests.pg_cluster import PgCluster


@pytest.mark.postgres
@pytest.mark.timeout(SETTLE_SECONDS + 120)
@pytest.mark.parametrize("carrier", ["simulated", "twilio"])
def test_postgres_restart_mid_campaign(
    pg_cluster: PgCluster, carrier: Carrier, tmp_path: Path
) -> None:
    scenario = Scenario(
        pg_cluster.url, carrier, tmp_path, seed=77, leads=LEADS, settle_seconds=SETTLE_SECONDS
    )
    result = pg_restart_run(scenario, pg_cluster, down_seconds=3.0, terminate=False)
    assert result.problems() == 0, result.report()
