"""Shared helpers of the benchmark programs: throwaway databases, a dialer on them, bulk
leads, a SQL statement log, and the table / JSON output (docs/architecture.md §14.11).

The benches use the test suite's doubles (one implementation, `tests/recording.py`): the
repository root goes on `sys.path`, as `python bench/x.py` only puts `bench/` there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url

from dialer.channels.base import EmailChannel, VoiceChannel
from dialer.clock import Clock
from dialer.config import Settings
from dialer.domain.states import LeadStatus
from dialer.runtime import Runtime
from dialer.store.db import Database
from dialer.store.leads import insert_leads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.recording import RecordingVoice  # after the line above: needs the root on the path

__all__ = ["RecordingVoice"]  # re-exported: the benches import it from here
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgres")
ADMIN = "admin:bench"
# 2026-01-05 was a Monday; 15:00 UTC is 10:00 in New York, inside every calling window.
MONDAY_10_NY = 1_767_625_200.0
CHUNK = 10_000

_LEAD_WRITE = re.compile(r"^\s*(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+\"?leads\"?[\s(]", re.I)


def add_backend_args(parser: argparse.ArgumentParser, default: str = "sqlite,postgres") -> None:
    parser.add_argument("--backends", default=default, help="comma list of sqlite, postgres")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="server to create dbs on")


def backends(value: str) -> list[str]:
    names = [b.strip() for b in value.split(",") if b.strip()]
    unknown = set(names) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"unknown backend(s) {sorted(unknown)}; use {', '.join(BACKENDS)}")
    return names


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def database(backend: str, postgres_url: str = POSTGRES_URL) -> AsyncIterator[str]:
    """A fresh, empty database URL, deleted on exit (a temp file, or dialer_bench_<hex>)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dialer-bench-") as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/bench.db"
        return
    name = f"dialer_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_asyncpg_dsn(postgres_url), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def open_dialer(
    url: str,
    *,
    clock: Clock | None = None,
    voice: VoiceChannel | None = None,
    email: EmailChannel | None = None,
    **settings: Any,
) -> AsyncIterator[Runtime]:
    """A whole dialer on `url` with the engine not running (the caller ticks it)."""
    with tempfile.TemporaryDirectory(prefix="dialer-bench-mail-") as tmp:
        config = Settings(
            database_url=url, worker_id="bench", maildir=Path(tmp) / "maildir", **settings
        )
        try:
            async with Runtime.open(
                config, clock=clock, voice=voice, email=email, run_engine=False
            ) as rt:
                yield rt
        finally:  # what we pass in is ours to close (closing twice is harmless)
            for channel in (voice, email):
                if channel is not None:
                    await channel.close()
            if clock is not None:
                await clock.aclose()


def lead_row(campaign_id: str, i: int, now: float, tz: str) -> dict[str, Any]:
    """One row as LeadOps.add builds it, for a campaign not yet started (due 0)."""
    return {
        "phone": f"+1212{i:07d}",
        "email": f"lead{i}@example.com",
        "first_name": f"Lead{i}",
        "last_name": None,
        "company": f"Co{i % 97}",
        "timezone": tz,
        "custom": {},
        "campaign_id": campaign_id,
        "status": LeadStatus.PENDING,
        "step": 0,
        "tries": 0,
        "seq": 0,
        "due": 0.0,
        "created_at": now,
        "updated_at": now,
    }


async def bulk_leads(
    db: Database, campaign_id: str, n: int, now: float, *, tz: str = "America/New_York"
) -> None:
    """Insert `n` leads in chunks of 10k, one transaction each (no validation: fast)."""
    for lo in range(0, n, CHUNK):
        rows = [lead_row(campaign_id, i, now, tz) for i in range(lo, min(n, lo + CHUNK))]
        async with db.begin() as conn:
            await insert_leads(conn, rows)


def voice_campaign(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "bench voice",
        "sequence": [{"channel": "voice", "max_attempts": 1}],
        "caller_ids": ["+14155550100"],
        "pacing": {"mode": "agentless", "agentless_capacity": 200, "calls_per_second": 100},
    }
    body.update(overrides)
    return body


def email_campaign(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "bench email",
        "sequence": [{"channel": "email", "subject": "Hello {first_name}", "body": "Hi {company}"}],
        "sender": {"email": "sales@example.com", "name": "Sales"},
    }
    body.update(overrides)
    return body


class StatementLog:
    """Every SQL statement sent to the driver while `capture()` is open."""

    def __init__(self, db: Database) -> None:
        self.statements: list[str] = []
        self._on = False
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self._on:
            self.statements.append(statement)

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        self.statements, self._on = [], True
        try:
            yield self.statements
        finally:
            self._on = False

    @staticmethod
    def lead_writes(statements: Sequence[str]) -> int:
        return sum(1 for s in statements if _LEAD_WRITE.match(s))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between ranks; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1])


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[[_fmt(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if n else c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit_json(name: str, **payload: Any) -> None:
    """The program's last line: one JSON object for scripts to read."""
    print(json.dumps({"bench": name, **payload}, sort_keys=False))


def rss_mb() -> float:
    """This process's resident set now, in MB (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_dir() -> str | None:
    """Where a bench's Maildir goes: a tmpfs where there is one. On one disk with
    PostgreSQL's WAL, file creation waits behind the database's fsyncs (measured: 12 us a
    file alone, 250 us beside a committing database); the benches measure the engine."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
