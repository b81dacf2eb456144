"""Fault runs: kill -9 of `dialer serve`, the carrier refusing connections, PostgreSQL
stopped and started again; after each, the checks of tests/faults/checks.py (issue 9;
docs/architecture.md §15). Every count must be 0.

Each run starts `dialer serve` as a real process on a fresh database (a temp SQLite file, or
a database `dialer_bench_<hex>` on `--postgres-url`), the fake Twilio in a process of its own
for `twilio`, drives a 16-lead voice + email campaign over HTTP and injects one fault at a
moment drawn from the seeded RNG:

- kill: SIGKILL mid-campaign, restart on the same database, then terminate or let it finish
  (`--runs` per database and carrier);
- refuse: the fake Twilio refuses connections for 4 s once 3 calls were placed
  (`--refuse-runs` per database);
- pg_restart: a PostgreSQL cluster of the bench's own, started from the installed binaries,
  stopped (immediate) for 3 s mid-campaign (`--pg-restart-runs` per carrier, with `postgres`).

    .venv/bin/python bench/faults.py                        # 10 kill runs per db x carrier
    .venv/bin/python bench/faults.py --runs 20 --db both --carrier both --seed 1
    .venv/bin/python bench/faults.py --runs 3 --db sqlite --carrier twilio --refuse-runs 0

The table has a row per database and carrier; one JSON line per row, then the total as the
last line. `in_flight_at_fault` sums what the dialer had in flight just before each fault (the
faults hit live calls); `max_settle_seconds` is the longest wait from the end of a fault to
the campaign stopped or completed with nothing open. Details of every failed check go to
stderr.
"""

from __future__ import annotations

import argparse
import functools
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from common import POSTGRES_URL, emit_json, print_table
from sqlalchemy.engine import make_url

from tests.conftest import free_port, run_async
from tests.faults.rig import Carrier, Scenario
from tests.faults.runs import RunResult, kill_run, pg_restart_run, refuse_run, totals
from tests.pg_cluster import PgCluster

CARRIERS: tuple[Carrier, ...] = ("simulated", "twilio")
COUNTS = (
    "open_attempts",
    "agents_stuck",
    "not_stopped",
    "stats_mismatch",
    "duplicate_tries",
    "redialled",
    "advanced_by_outage",
    "crashes",
    "outage_unreported",
    "http_not_503",
)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(_dsn(server_url), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Databases:
    """A fresh database per run, dropped afterwards."""

    def __init__(self, postgres_url: str) -> None:
        self.postgres_url = postgres_url

    def run(self, db: str, workdir: Path, body: Callable[[str], RunResult]) -> RunResult:
        if db == "sqlite":
            return body(f"sqlite+aiosqlite:///{workdir / 'dialer.db'}")
        name = f"dialer_bench_{secrets.token_hex(4)}"
        run_async(_admin(self.postgres_url, f'CREATE DATABASE "{name}"'))
        try:
            return body(make_url(self.postgres_url).set(database=name).render_as_string(False))
        finally:
            run_async(_admin(self.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Bench:
    """The runs of one invocation, grouped by database and carrier."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.databases = Databases(args.postgres_url)
        self.groups: dict[tuple[str, str], list[RunResult]] = {}
        self.seed = args.seed * 100_000

    def _workdir(self, name: str) -> Path:
        self.seed += 1
        workdir = self.root / f"{name}-{self.seed}"
        workdir.mkdir()
        return workdir

    def scenario(self, db_url: str, carrier: Carrier, workdir: Path) -> Scenario:
        return Scenario(
            db_url, carrier, workdir, seed=self.seed, settle_seconds=self.args.settle_seconds
        )

    def kill(self, db: str, carrier: Carrier) -> None:
        workdir = self._workdir(f"{db}-{carrier}-kill")
        body = functools.partial(self._kill, carrier=carrier, workdir=workdir)
        self.record(db, carrier, self.databases.run(db, workdir, body))

    def _kill(self, url: str, *, carrier: Carrier, workdir: Path) -> RunResult:
        return kill_run(self.scenario(url, carrier, workdir))

    def refuse(self, db: str) -> None:
        workdir = self._workdir(f"{db}-twilio-refuse")
        body = functools.partial(self._refuse, workdir=workdir)
        self.record(db, "twilio", self.databases.run(db, workdir, body))

    def _refuse(self, url: str, *, workdir: Path) -> RunResult:
        return refuse_run(self.scenario(url, "twilio", workdir))

    def pg_restart(self, carrier: Carrier) -> None:
        workdir = self._workdir(f"pg-restart-{carrier}")
        with PgCluster(workdir / "pg", free_port()) as cluster:
            result = pg_restart_run(self.scenario(cluster.url, carrier, workdir), cluster)
        self.record("postgres", carrier, result)

    def record(self, db: str, carrier: str, result: RunResult) -> None:
        self.groups.setdefault((db, carrier), []).append(result)
        mark = "FAILED" if result.problems() else "ok"
        print(f"{db:8} {result.kind:10} {carrier:9} seed {result.seed}: {mark}", file=sys.stderr)
        if result.problems():
            print(result.report(), file=sys.stderr)
            if self.args.keep:
                print(f"  logs: {self.root}", file=sys.stderr)

    def run(self, dbs: list[str], carriers: list[Carrier]) -> None:
        for db in dbs:
            for carrier in carriers:
                for _ in range(self.args.runs):
                    self.kill(db, carrier)
            if "twilio" in carriers:
                for _ in range(self.args.refuse_runs):
                    self.refuse(db)
        if "postgres" in dbs:
            for carrier in carriers:
                for _ in range(self.args.pg_restart_runs):
                    self.pg_restart(carrier)

    def emit(self) -> None:
        rows = [
            {"db": db, "carrier": carrier, **_figures(results)}
            for (db, carrier), results in self.groups.items()
        ]
        everything = [r for results in self.groups.values() for r in results]
        total = {"db": "all", "carrier": "all", **_figures(everything)}
        columns = ["db", "carrier", "runs", "faults_injected", "in_flight_at_fault", *COUNTS]
        columns.append("max_settle_seconds")
        print_table(columns, [[row.get(c, 0) for c in columns] for row in [*rows, total]])
        for row in rows:
            emit_json("faults", ok=row_ok(row), **row)
        emit_json("faults", ok=row_ok(total), **total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="kill runs per database x carrier")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--carrier", choices=("simulated", "twilio", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--refuse-runs", type=int, default=1, help="per database (twilio)")
    parser.add_argument("--pg-restart-runs", type=int, default=1, help="per carrier (postgres)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="server to create dbs on")
    parser.add_argument("--settle-seconds", type=float, default=90.0)
    parser.add_argument("--keep", action="store_true", help="keep each run's directory and logs")
    args = parser.parse_args()
    dbs = [d for d in ("sqlite", "postgres") if args.db in (d, "both")]
    carriers = [c for c in CARRIERS if args.carrier in (c, "both")]
    root = Path(tempfile.mkdtemp(prefix="dialer-faults-"))
    bench = Bench(args, root)
    try:
        bench.run(dbs, carriers)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    bench.emit()


def _figures(results: list[RunResult]) -> dict[str, Any]:
    figures = totals(results)
    names = ("runs", "faults_injected", "in_flight_at_fault", *COUNTS)
    ordered = {name: figures.get(name, 0) for name in names}
    return ordered | {"max_settle_seconds": figures["max_settle_seconds"]}


def row_ok(row: dict[str, Any]) -> bool:
    return all(row.get(name, 0) == 0 for name in COUNTS)


if __name__ == "__main__":
    main()
