"""Fixtures of the fault tests: a fresh database per run, on SQLite or PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import reset_postgres, run_async

# Kill runs per (database, carrier) in the suite; bench/faults.py runs more.
RUNS = int(os.environ.get("DIALER_FAULT_RUNS", "2"))
SETTLE_SECONDS = 60.0  # generous: lease + ring + talk + the rest of a 10-lead campaign
LEADS = 10  # the suite's campaigns; the bench's have 16

FreshDb = Callable[[Path], str]


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def fresh_db(request: pytest.FixtureRequest) -> FreshDb:
    """A function giving an empty database for one run (a file in its directory, or the
    session's PostgreSQL database with its schema dropped)."""
    if request.param == "sqlite":
        return lambda workdir: f"sqlite+aiosqlite:///{workdir / 'dialer.db'}"
    url: str = request.getfixturevalue("postgres_url")

    def fresh(_: Path) -> str:
        run_async(reset_postgres(url))
        return url

    return fresh
