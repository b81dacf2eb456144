"""The claim (dialer.store.leads.claim): one statement, fenced by campaign state and version."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Row, select

from dialer.domain.states import CampaignState, LeadStatus
from dialer.store import leads as lead_store
from dialer.store.db import Database
from dialer.store.migrate import migrate
from dialer.store.models import Campaign, DoNotCall, Lead

NOW = 1_000_000.0
DUE = 500.0  # due_before, in the campaign's clock
LEASE = NOW + 60
VERSION = 3
PLAN = "c_plan"  # the plan test's campaign, in the session's shared PostgreSQL database


def campaign(cid: str, state: str = CampaignState.RUNNING, version: int = VERSION) -> Campaign:
    return Campaign(
        id=cid,
        name=f"Campaign {cid}",
        state=state,
        version=version,
        config={"name": cid, "sequence": [{"channel": "voice"}]},
        archived=False,
        active_seconds=0.0,
        clock_offset=0.0,
        running_since=NOW - 1000,
        dispatched=True,
        created_at=NOW - 2000,
        updated_at=NOW - 1000,
    )


def lead(n: int, *, campaign_id: str = "c1", **overrides: Any) -> Lead:
    values: dict[str, Any] = {
        "campaign_id": campaign_id,
        "phone": f"+1212555{n:04d}",
        "email": f"lead{n}@example.com",
        "first_name": f"Lead{n}",
        "last_name": "Test",
        "company": "Co",
        "timezone": "America/New_York",
        "custom": {"n": n},
        "status": LeadStatus.PENDING,
        "step": 0,
        "tries": 0,
        "seq": 0,
        "due": 100.0 + n,
        "created_at": NOW - 1000,
        "updated_at": NOW - 1000,
    }
    values.update(overrides)
    return Lead(**values)


async def add(db: Database, *rows: Any) -> list[int]:
    async with db.session() as s:
        s.add_all(rows)
        await s.flush()
        return [r.id for r in rows if isinstance(r, Lead)]


def request(
    *,
    campaign_id: str = "c1",
    version: int = VERSION,
    worker_id: str = "w1",
    steps: tuple[int, ...] = (0,),
    limit: int = 100,
    check_dnc: bool = True,
) -> lead_store.ClaimRequest:
    return lead_store.ClaimRequest(
        campaign_id=campaign_id,
        version=version,
        worker_id=worker_id,
        steps=steps,
        limit=limit,
        now=NOW,
        due_before=DUE,
        lease_until=LEASE,
        check_dnc=check_dnc,
    )


async def claim(db: Database, req: lead_store.ClaimRequest) -> list[Row[Any]]:
    async with db.session() as s:
        return await lead_store.claim(await s.connection(), req, skip_locked=not db.is_sqlite)


async def claimed_ids(db: Database, req: lead_store.ClaimRequest | None = None) -> list[int]:
    return sorted(r.id for r in await claim(db, req or request()))


async def leases(db: Database) -> dict[int, tuple[str | None, float | None]]:
    async with db.session() as s:
        rows = (await s.scalars(select(Lead).order_by(Lead.id))).all()
    return {r.id: (r.lease_owner, r.lease_until) for r in rows}


async def test_claims_due_leads_in_due_order_up_to_the_limit(db: Database) -> None:
    dues = [400.0, 100.0, 300.0, 200.0, 100.0, 450.0]
    ids = await add(db, *(lead(i, due=d) for i, d in enumerate(dues)))
    rows = await claim(db, request(limit=4))
    # Earliest due first, ties broken by id; the two latest stay unclaimed.
    expected = [ids[1], ids[4], ids[3], ids[2]]
    assert sorted(r.id for r in rows) == sorted(expected)
    assert sorted((r.due, r.id) for r in rows) == [(dues[ids.index(i)], i) for i in expected]
    row = next(r for r in rows if r.id == ids[1])
    assert (row.phone, row.email, row.status, row.step, row.custom) == (
        "+12125550001",
        "lead1@example.com",
        LeadStatus.PENDING,
        0,
        {"n": 1},
    )
    held = await leases(db)
    assert {i for i, lease in held.items() if lease == ("w1", LEASE)} == set(expected)
    assert held[ids[0]] == held[ids[5]] == (None, None)
    assert await claimed_ids(db, request(worker_id="w2")) == sorted([ids[0], ids[5]])


async def test_claimed_rows_come_back_in_due_order(db: Database) -> None:
    dues = [400.0, 100.0, 300.0, 200.0, 100.0]
    await add(db, *(lead(i, due=d) for i, d in enumerate(dues)))
    rows = await claim(db, request(limit=4))
    assert [(r.due, r.id) for r in rows] == sorted((r.due, r.id) for r in rows)


async def test_claim_writes_updated_at(db: Database) -> None:
    [lid] = await add(db, lead(1))
    await claim(db, request())
    async with db.session() as s:
        row = await s.get(Lead, lid)
    assert row is not None and row.updated_at == NOW


NOT_CLAIMABLE: dict[str, dict[str, Any]] = {
    "not_due": {"due": DUE + 0.5},
    "leased": {"lease_owner": "w0", "lease_until": NOW + 5},
    "lease_ends_now": {"lease_owner": "w0", "lease_until": NOW},
    "active_attempt": {"active_attempt_id": 12345},
    "not_before_future": {"not_before": NOW + 1},
    "other_step": {"step": 1},
    "paused": {"status": LeadStatus.PAUSED},
    "stopped": {"status": LeadStatus.STOPPED},
    "completed": {"status": LeadStatus.COMPLETED},
    "skipped": {"status": LeadStatus.SKIPPED},
    "other_campaign": {"campaign_id": "c2"},
}


@pytest.mark.parametrize("overrides", NOT_CLAIMABLE.values(), ids=list(NOT_CLAIMABLE))
async def test_lead_not_claimed(db: Database, overrides: dict[str, Any]) -> None:
    good, bad = await add(db, lead(1), lead(2, **overrides))
    assert await claimed_ids(db) == [good]
    assert (await leases(db))[bad] == (overrides.get("lease_owner"), overrides.get("lease_until"))


CLAIMABLE: dict[str, dict[str, Any]] = {
    "due_now": {"due": DUE},
    "in_progress": {"status": LeadStatus.IN_PROGRESS},
    "expired_lease": {"lease_owner": "w0", "lease_until": NOW - 0.001},
    "not_before_now": {"not_before": NOW},
    "not_before_past": {"not_before": NOW - 3600},
    "no_phone": {"phone": None},
}


@pytest.mark.parametrize("overrides", CLAIMABLE.values(), ids=list(CLAIMABLE))
async def test_lead_claimed(db: Database, overrides: dict[str, Any]) -> None:
    [lid] = await add(db, lead(1, **overrides))
    assert await claimed_ids(db) == [lid]
    assert (await leases(db))[lid] == ("w1", LEASE)


async def test_steps_select_leads(db: Database) -> None:
    first, second, third = await add(db, lead(1, step=0), lead(2, step=1), lead(3, step=2))
    assert await claimed_ids(db, request(steps=(1, 2))) == [second, third]
    assert await claimed_ids(db, request(steps=(0, 1, 2))) == [first]


async def test_several_steps_are_merged_in_due_order_up_to_the_limit(db: Database) -> None:
    """Each step is read in due order on its own (the claim index is by step); the merge
    takes the earliest across them, ties to the oldest lead, whatever the steps' order."""
    ids = await add(
        db,
        lead(1, step=0, due=300.0),
        lead(2, step=1, due=100.0),
        lead(3, step=0, due=200.0),
        lead(4, step=1, due=200.0),
        lead(5, step=2, due=50.0),  # a step not asked for
        lead(6, step=1, due=400.0),
        lead(7, step=0, due=150.0),  # stored after later ones of its step
    )
    rows = await claim(db, request(steps=(0, 1), limit=2))
    assert [(r.due, r.id) for r in rows] == [(100.0, ids[1]), (150.0, ids[6])]
    rows = await claim(db, request(steps=(1, 0), limit=2, worker_id="w2"))
    assert [(r.due, r.id) for r in rows] == [(200.0, ids[2]), (200.0, ids[3])]
    assert await claimed_ids(db, request(steps=(0, 1), worker_id="w3")) == [ids[0], ids[5]]


async def test_on_postgresql_a_claim_reads_the_open_leads_index_without_a_sort(
    postgres_url: str,
) -> None:
    """A campaign of many done leads and a few open ones: the claim reads the partial index
    `ix_leads_open_due` in due order (its status values are literals, so the planner can
    prove the index applies) instead of sorting every lead of the campaign (at a million
    leads that sort took 0.4-0.5 s per claim)."""
    db = Database(postgres_url)
    try:
        await migrate(db)
        async with db.session() as s:
            s.add(campaign(PLAN))
        await _reads_the_index(db)
    finally:
        await db.aclose()


def _sql(value: Any) -> str:
    """A parameter as an SQL literal (strings and numbers: what the claim binds)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    assert isinstance(value, int | float), value
    return repr(value)


async def _reads_the_index(db: Database) -> None:
    done = [lead(i, campaign_id=PLAN, status=LeadStatus.COMPLETED, due=1.0) for i in range(2000)]
    await add(
        db, *done, *(lead(3000 + i, campaign_id=PLAN, step=i % 2, due=200.0) for i in range(10))
    )
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE leads")
        pg = (await conn.get_raw_connection()).driver_connection
        assert pg is not None
        # The plan a prepared statement settles on after its first executions: one for any
        # parameter values. Only literal status values let it use the partial index.
        await pg.execute("SET plan_cache_mode = force_generic_plan")
        for steps in ((0,), (0, 1)):
            req = request(campaign_id=PLAN, steps=steps, limit=3)
            stmt = lead_store._claim_update(req, "postgresql", True)
            compiled = stmt.compile(conn, compile_kwargs={"render_postcompile": True})
            args = ", ".join(_sql(compiled.params[n]) for n in compiled.positiontup or ())
            await pg.execute(f"PREPARE claim_{len(steps)} AS {compiled.string}")
            rows = await pg.fetch(f"EXPLAIN EXECUTE claim_{len(steps)}({args})")
            plan = "\n".join(r[0] for r in rows)
            assert "ix_leads_open_due" in plan, plan
            if len(steps) == 1:
                assert "Sort" not in plan, plan
        await conn.rollback()
    assert len(await claimed_ids(db, request(campaign_id=PLAN, steps=(0, 1), limit=3))) == 3


async def test_dnc_phone_claimed_and_flagged_when_checked(db: Database) -> None:
    """A listed lead is claimed with `dnc` set, so the dispatcher stops it (never dials it);
    left unclaimed it would stay open forever."""
    listed, free = await add(
        db, lead(1), lead(2), DoNotCall(phone="+12125550001", reason="asked", added_at=NOW)
    )
    rows = await claim(db, request(check_dnc=True))
    assert {r.id: r.dnc for r in rows} == {listed: True, free: False}
    unchecked = replace(request(check_dnc=False, worker_id="w2"), now=LEASE + 1)
    assert {r.id: r.dnc for r in await claim(db, unchecked)} == {listed: False, free: False}


async def test_expired_lease_is_claimable_again(db: Database) -> None:
    [lid] = await add(db, lead(1))
    assert await claimed_ids(db) == [lid]
    assert await claimed_ids(db, request(worker_id="w2")) == []
    after = replace(request(worker_id="w2"), now=LEASE + 1, lease_until=LEASE + 61)
    assert [r.id for r in await claim(db, after)] == [lid]
    assert (await leases(db))[lid] == ("w2", LEASE + 61)


@pytest.mark.parametrize("version", [VERSION - 1, VERSION + 1])
async def test_stale_version_claims_nothing(db: Database, version: int) -> None:
    await add(db, lead(1), lead(2))
    assert await claimed_ids(db, request(version=version)) == []
    assert set((await leases(db)).values()) == {(None, None)}


@pytest.mark.parametrize(
    "state", [s for s in CampaignState if s is not CampaignState.RUNNING], ids=str
)
async def test_campaign_not_running_claims_nothing(db: Database, state: CampaignState) -> None:
    await add(db, lead(1), lead(2))
    async with db.session() as s:
        c = await s.get(Campaign, "c1")
        assert c is not None
        c.state = state
    assert await claimed_ids(db) == []
    assert set((await leases(db)).values()) == {(None, None)}


async def test_unknown_campaign_claims_nothing(db: Database) -> None:
    await add(db, lead(1))
    assert await claimed_ids(db, request(campaign_id="nope")) == []


async def test_concurrent_claims_never_share_a_lead(db: Database) -> None:
    ids = await add(db, *(lead(i) for i in range(10)))
    results = await asyncio.gather(
        *(claim(db, request(worker_id=f"w{k}", limit=3)) for k in range(5))
    )
    got = [r.id for rows in results for r in rows]
    assert len(got) == len(set(got))
    assert set(got) <= set(ids)
    owners = await leases(db)
    for k, rows in enumerate(results):
        assert all(owners[r.id] == (f"w{k}", LEASE) for r in rows)
    # Whatever a racing claim skipped is still there for the next one: each lead once.
    rest = await claimed_ids(db, request(worker_id="late"))
    assert sorted(got + rest) == sorted(ids)


async def test_overlapping_transactions_claim_disjoint_leads(db: Database) -> None:
    """B claims while A's claim is uncommitted: PostgreSQL skips A's locked rows; SQLite
    makes B wait for A's write lock (BEGIN IMMEDIATE)."""
    ids = await add(db, *(lead(i) for i in range(6)))
    async with db.session() as a:
        rows_a = await lead_store.claim(
            await a.connection(), request(worker_id="a", limit=3), skip_locked=not db.is_sqlite
        )
        b = asyncio.create_task(claim(db, request(worker_id="b", limit=3)))
        if not db.is_sqlite:
            rows_b = await asyncio.wait_for(b, timeout=30)
    if db.is_sqlite:
        rows_b = await asyncio.wait_for(b, timeout=30)
    got_a = sorted(r.id for r in rows_a)
    got_b = sorted(r.id for r in rows_b)
    assert got_a == ids[:3]
    assert got_b == ids[3:]
