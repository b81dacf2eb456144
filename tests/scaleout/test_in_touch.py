"""An engine process in touch with Redis keeps dispatching when no control message comes:
its subscription's liveness comes from the pings it answers, not from pauses and resumes
(docs/architecture.md §12.2: only a process out of touch for half a lease fences itself)."""

from __future__ import annotations

import time

import pytest

from tests.faults.rig import wait_for
from tests.scaleout.conftest import MakeSpec
from tests.scaleout.rig import Cluster, query

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.timeout(120)
def test_workers_keep_dispatching_without_control_messages(spec: MakeSpec) -> None:
    with Cluster(spec(workers=2, seed=14)) as cl:
        lease = cl.s.lease_seconds
        # Ten thousand leads: more than the workers send in the watched two leases.
        email = cl.email_campaign(10_000, steps=1)  # the start is the last control message
        started = time.time()
        # Watch from one lease after the start (long past half a lease) for another lease.
        since = started + lease

        def dispatching() -> set[str]:
            rows = query(
                cl.s.db_url,
                "SELECT DISTINCT split_part(worker_id, '-', 1) AS p FROM attempts"
                " WHERE campaign_id = $1 AND created_at > $2",
                email,
                since,
            )
            return {str(r["p"]) for r in rows}

        time.sleep(2 * lease)
        stats = cl.stats(email)
        assert stats["state"] == "running", stats
        assert stats["leads"]["pending"] > 0, stats  # work was left to do all along
        wait_for(lambda: {"w1", "w2"} <= dispatching(), 1, "both workers still dispatching")
