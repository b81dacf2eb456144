"""The three fault runs, shared by the tests in this package and by `bench/faults.py`:
kill -9 of `dialer serve`, the carrier refusing connections, PostgreSQL stopped and started
again (issue 9; docs/architecture.md §15). Each returns the checks' `Counts`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.faults import checks
from tests.faults.rig import Rig, RigError, Scenario, Settled, wait_for

if TYPE_CHECKING:
    from tests.pg_cluster import PgCluster


@dataclass
class RunResult:
    kind: str  # "kill", "refuse", "pg_restart"
    carrier: str
    seed: int
    faults: int  # faults injected
    counts: checks.Counts
    settled: Settled
    settle_seconds: float  # fault over -> campaign stopped/completed with nothing open
    crashes: int = 0  # the dialer exited by itself
    extra: dict[str, int] = field(default_factory=dict)  # run-kind specific counts, 0 = good
    in_flight_at_fault: int = 0  # calls and emails in flight just before the fault

    def problems(self) -> int:
        return self.counts.total() + self.crashes + sum(self.extra.values())

    def report(self) -> str:
        head = (
            f"{self.kind} run, {self.carrier}, seed {self.seed}: {self.settled}, "
            f"crashes {self.crashes}, {self.extra}"
        )
        return f"{head}\n{self.counts.report()}"


def _in_flight(rig: Rig) -> int:
    """What the dialer has in flight (its /stats), just before a fault; 0 if it cannot say."""
    try:
        stats = rig.stats()
    except (OSError, RigError):
        return 0
    return int(stats["calls"]["in_flight"]) + int(stats["emails"]["in_flight"])


def _finish(rig: Rig, kind: str, in_flight: int, terminate: bool, **extra: int) -> RunResult:
    started = time.monotonic()
    settled = rig.settle(terminate=terminate)
    elapsed = time.monotonic() - started
    observed = checks.observe(rig, settled.terminated)
    return RunResult(
        kind,
        rig.s.carrier,
        rig.s.seed,
        1,
        checks.evaluate(observed),
        settled,
        elapsed,
        rig.crashes,
        dict(extra) | _extra_of(kind, observed),
        in_flight,
    )


def _extra_of(kind: str, observed: checks.Observed) -> dict[str, int]:
    if kind == "refuse":
        return {"outage_unreported": checks.outage_reported(observed)}
    return {}


def kill_run(
    scenario: Scenario, *, terminate: bool | None = None, window: tuple[float, float] = (0.3, 5.0)
) -> RunResult:
    """Start a campaign, kill -9 the dialer at a moment drawn from the seeded RNG within
    `window` seconds of the start, restart it on the same database, then terminate the
    campaign (or let it finish: `terminate`, else drawn) and check."""
    rng = random.Random(scenario.seed)
    moment = rng.uniform(*window)
    if terminate is None:
        terminate = rng.random() < 0.5
    with Rig(scenario) as rig:
        rig.launch()
        time.sleep(moment)  # the random moment of the fault: an input, not an outcome
        in_flight = _in_flight(rig)
        rig.kill_and_restart()
        return _finish(rig, "kill", in_flight, terminate)


def refuse_run(scenario: Scenario, *, after_calls: int = 3, down_seconds: float = 4.0) -> RunResult:
    """Fake Twilio only: once `after_calls` calls were placed, the carrier refuses every
    connection for `down_seconds`, then answers again; the campaign runs to its end."""
    if scenario.carrier != "twilio":
        raise ValueError("a carrier refusal needs the fake Twilio")
    with Rig(scenario) as rig:
        rig.launch()
        twilio = rig.twilio
        assert twilio is not None
        wait_for(lambda: len(twilio.calls()) >= after_calls, 30, f"{after_calls} calls placed")
        in_flight = _in_flight(rig)
        twilio.refuse()
        try:
            time.sleep(down_seconds)  # the length of the outage: an input
        finally:
            twilio.accept()
        return _finish(rig, "refuse", in_flight, terminate=False)


def pg_restart_run(
    scenario: Scenario,
    cluster: PgCluster,
    *,
    down_seconds: float = 3.0,
    window: tuple[float, float] = (0.5, 4.0),
    terminate: bool | None = None,
) -> RunResult:
    """`scenario.db_url` on `cluster`: stop PostgreSQL (immediate: a crash) at a seeded
    random moment, keep it down `down_seconds`, start it again, finish and check. While it is
    down, the API is asked once a second: every answer should be a 503 (`http_not_503`)."""
    rng = random.Random(scenario.seed)
    moment = rng.uniform(*window)
    if terminate is None:
        terminate = rng.random() < 0.5
    with Rig(scenario) as rig:
        rig.launch()
        time.sleep(moment)
        in_flight = _in_flight(rig)
        cluster.stop()
        statuses: list[int] = []
        try:
            deadline = time.monotonic() + down_seconds
            while time.monotonic() < deadline:
                statuses.append(_status(rig, f"/api/v1/campaigns/{rig.campaign_id}"))
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        finally:
            cluster.start()
        not_503 = sum(s != 503 for s in statuses)
        return _finish(rig, "pg_restart", in_flight, terminate, http_not_503=not_503)


def _status(rig: Rig, path: str) -> int:
    try:
        status, _ = rig.api.call("GET", path, timeout=5)
    except OSError:
        return 0  # no answer at all
    return status


def totals(results: list[RunResult]) -> dict[str, Any]:
    """The bench's figures over `results`: runs, faults and every count summed."""
    counts = checks.Counts()
    extra: dict[str, int] = {}
    for r in results:
        counts += r.counts
        for name, value in r.extra.items():
            extra[name] = extra.get(name, 0) + value
    return {
        "runs": len(results),
        "faults_injected": sum(r.faults for r in results),
        "in_flight_at_fault": sum(r.in_flight_at_fault for r in results),
        **counts.numbers(),
        "crashes": sum(r.crashes for r in results),
        **extra,
        "max_settle_seconds": round(max((r.settle_seconds for r in results), default=0.0), 2),
    }
