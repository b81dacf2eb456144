"""The claim tests' database (test_claim.py, test_claim_leads.py): migrated, with two running
campaigns `c1` and `c2`. A module with other needs defines its own `db` (test_stats.py,
test_migrate.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dialer.store.db import Database
from dialer.store.migrate import migrate
from tests.store.test_claim import campaign


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    try:
        await migrate(database)
        async with database.session() as s:
            s.add_all([campaign("c1"), campaign("c2")])
        yield database
    finally:
        await database.aclose()
