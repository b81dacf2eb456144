"""The engine's claim, `dialer.store.leads.claim_leads` (engine/dispatch.py `_claim`): one
statement leases the leads and loads them as objects of the caller's session, each with its
do-not-call flag, in due order. tests/store/test_claim.py covers which leads the statement
takes; each test here fails on a mutant of `claim_leads` that those let through (README,
"Mutation testing")."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from dialer.domain.states import LeadStatus
from dialer.store import leads as lead_store
from dialer.store.db import Database
from dialer.store.models import DoNotCall, Lead
from tests.store.test_claim import DUE, LEASE, NOW, add, lead, leases, request


async def test_claimed_leads_come_in_due_order_as_objects_of_the_session(db: Database) -> None:
    # Inserted latest-due first: the table's order is the reverse of the due order.
    dues = [400.0, 300.0, 200.0, 200.0, 100.0]
    ids = await add(db, *(lead(i, due=d) for i, d in enumerate(dues)))
    async with db.session() as s:
        rows = await lead_store.claim_leads(s, request(limit=10))
        got = [(row.id, row.due) for row, _ in rows]
        # Earliest due first, a tie broken by id.
        assert [i for i, _ in got] == [ids[4], ids[2], ids[3], ids[1], ids[0]]
        assert [due for _, due in got] == [100.0, 200.0, 200.0, 300.0, 400.0]
        assert all(row in s for row, _ in rows)
        assert all((row.lease_owner, row.lease_until) == ("w1", LEASE) for row, _ in rows)
        first, _ = rows[0]
        assert (first.phone, first.custom, first.status) == (
            "+12125550004",
            {"n": 4},
            LeadStatus.PENDING,
        )
        # What the dispatcher does with a lead it will not dial: changes the object, and
        # the session's commit writes it.
        first.lease_owner = first.lease_until = None
        first.status = LeadStatus.STOPPED
    async with db.session() as s:
        stored = await s.get(Lead, ids[4])
        assert stored is not None
        assert (stored.status, stored.lease_owner) == (LeadStatus.STOPPED, None)
    assert (await leases(db))[ids[0]] == ("w1", LEASE)


async def test_each_claimed_lead_carries_its_do_not_call_flag(db: Database) -> None:
    listed, free = await add(
        db, lead(1), lead(2), DoNotCall(phone="+12125550001", reason="asked", added_at=NOW)
    )
    async with db.session() as s:
        rows = await lead_store.claim_leads(s, request(check_dnc=True))
        assert [(row.id, dnc) for row, dnc in rows] == [(listed, True), (free, False)]
    unchecked = replace(request(check_dnc=False, worker_id="w2"), now=LEASE + 1)
    async with db.session() as s:
        rows = await lead_store.claim_leads(s, unchecked)
        assert [(row.id, dnc) for row, dnc in rows] == [(listed, False), (free, False)]


async def test_a_preview_dial_claims_exactly_the_lead_it_names(db: Database) -> None:
    """`lead_id` (an agent's preview dial, docs/architecture.md §3.4): that lead if it is
    claimable now, never another one in its place."""
    first, second, later = await add(db, lead(1), lead(2), lead(3, due=DUE + 100))
    async with db.session() as s:
        rows = await lead_store.claim_leads(s, replace(request(), lead_id=second))
        assert [row.id for row, _ in rows] == [second]
    async with db.session() as s:
        assert await lead_store.claim_leads(s, replace(request(), lead_id=later)) == []
    held = await leases(db)
    assert (held[first], held[second], held[later]) == ((None, None), ("w1", LEASE), (None, None))


async def equally_due_older_written_last(db: Database) -> tuple[int, int]:
    """Two leads due at the same time, the older one written again after the newer one was
    added: the table's order (PostgreSQL appends the new row version) is no longer the id
    order."""
    older, newer = await add(db, lead(1, due=200.0), lead(2, due=200.0))
    async with db.session() as s:
        row = await s.get(Lead, older)
        assert row is not None
        row.status = LeadStatus.IN_PROGRESS
    return older, newer


async def test_with_a_limit_a_tie_in_due_goes_to_the_oldest_lead(db: Database) -> None:
    older, newer = await equally_due_older_written_last(db)
    for worker in ("w1", "w2"):
        async with db.session() as s:
            rows = await lead_store.claim_leads(s, request(worker_id=worker, limit=1))
            assert len(rows) == 1
    held = await leases(db)
    assert (held[older][0], held[newer][0]) == ("w1", "w2")


async def test_overlapping_claims_take_disjoint_leads(db: Database) -> None:
    """Worker B claims while worker A's claim is uncommitted: on PostgreSQL B skips A's
    locked rows (`claim_leads` picks SKIP LOCKED from the dialect); SQLite makes B wait for
    A's write lock. Either way no lead goes to both."""
    ids = await add(db, *(lead(i) for i in range(6)))

    async def claim_b() -> list[int]:
        async with db.session() as s:
            return [
                r.id for r, _ in await lead_store.claim_leads(s, request(worker_id="b", limit=3))
            ]

    async with db.session() as a:
        got_a = [r.id for r, _ in await lead_store.claim_leads(a, request(worker_id="a", limit=3))]
        b = asyncio.create_task(claim_b())
        if not db.is_sqlite:
            got_b = await asyncio.wait_for(b, timeout=30)
    if db.is_sqlite:
        got_b = await asyncio.wait_for(b, timeout=30)
    assert got_a == ids[:3]
    assert got_b == ids[3:]
    held = await leases(db)
    assert [held[i][0] for i in ids] == ["a", "a", "a", "b", "b", "b"]
