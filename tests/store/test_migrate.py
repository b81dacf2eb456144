"""dialer.store.migrate on SQLite and PostgreSQL: the migration builds exactly the models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from dialer.store.db import Database
from dialer.store.migrate import alembic_config, current_revision, migrate
from dialer.store.models import DoNotCall, metadata


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    try:
        yield database
    finally:
        await database.aclose()


def head() -> str:
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert rev is not None
    return rev


async def table_names(db: Database) -> set[str]:
    def names(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with db.engine.connect() as conn:
        return await conn.run_sync(names)


async def schema_diff(db: Database) -> list[Any]:
    def diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))

    async with db.engine.connect() as conn:
        return await conn.run_sync(diff)


async def test_empty_database_has_no_revision(db: Database) -> None:
    assert await current_revision(db) is None
    assert await table_names(db) == set()


async def test_migrate_creates_every_table(db: Database) -> None:
    await migrate(db)
    tables = await table_names(db)
    assert set(metadata.tables) <= tables
    assert tables - set(metadata.tables) == {"alembic_version"}


async def test_current_revision_is_head(db: Database) -> None:
    await migrate(db)
    assert await current_revision(db) == head()


async def test_migrate_twice_is_a_no_op(db: Database) -> None:
    await migrate(db)
    async with db.session() as s:
        s.add(DoNotCall(phone="+12125550100", reason="asked", added_at=1.0))
    await migrate(db)
    assert await current_revision(db) == head()
    async with db.session() as s:
        rows = (await s.scalars(select(DoNotCall))).all()
    assert [(r.phone, r.reason, r.added_at) for r in rows] == [("+12125550100", "asked", 1.0)]


async def test_migrated_schema_matches_models(db: Database) -> None:
    await migrate(db)
    assert await schema_diff(db) == []


async def test_schema_diff_sees_a_missing_table(db: Database) -> None:
    """The comparison above can fail: a schema without `dnc` is reported."""
    await migrate(db)
    async with db.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE dnc")
    diff = await schema_diff(db)
    assert [(d[0], d[1].name) for d in diff if d[0] == "add_table"] == [("add_table", "dnc")]
