"""Lead queries: bulk insert, the claim, paging and counts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Update,
    and_,
    exists,
    false,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dialer.domain.states import LEAD_DISPATCHABLE, CampaignState, LeadStatus
from dialer.store.db import padded
from dialer.store.models import Campaign, DoNotCall, Lead

# LEAD_DISPATCHABLE in the order of models.OPEN_PREDICATE (the claim index's condition).
OPEN_STATUSES = (LeadStatus.PENDING, LeadStatus.IN_PROGRESS)

CLAIM_COLUMNS = (
    Lead.id,
    Lead.status,
    Lead.step,
    Lead.tries,
    Lead.due,
    Lead.phone,
    Lead.email,
    Lead.first_name,
    Lead.last_name,
    Lead.company,
    Lead.timezone,
    Lead.custom,
)


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    campaign_id: str
    version: int
    worker_id: str
    steps: Sequence[int]
    limit: int
    now: float
    due_before: float  # in the campaign's clock
    lease_until: float
    check_dnc: bool  # flag leads whose phone is on the do-not-call list
    lead_id: int | None = None  # exactly this lead (an agent's preview dial), if claimable


async def insert_leads(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(Lead), rows)


async def claim(
    conn: AsyncConnection, req: ClaimRequest, *, skip_locked: bool | None = None
) -> list[Row[Any]]:
    """Lease up to `limit` due leads of a running campaign, in one statement.

    Each row carries `dnc`: with `check_dnc`, whether the lead's phone is on the do-not-call
    list (such a lead must be stopped, never dialled); without, always false.

    The campaign's state and version are part of the statement: a campaign paused (version
    bumped) after the worker last looked claims nothing.
    """
    stmt = _claim_update(req, conn.dialect.name, skip_locked).returning(
        *CLAIM_COLUMNS, _listed(req).label("dnc")
    )
    result = await conn.execute(stmt)
    # RETURNING keeps no order: hand the leads over in due order.
    return sorted(result.all(), key=lambda r: (r.due, r.id))


async def claim_leads(session: AsyncSession, req: ClaimRequest) -> list[tuple[Lead, bool]]:
    """`claim`, returning the claimed leads as objects of the session (and their `dnc`
    flag), in due order: the engine's claim, one statement for the lease and the load."""
    conn = await session.connection()
    stmt = (
        _claim_update(req, conn.dialect.name, None)
        .returning(Lead, _listed(req).label("dnc"))
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    rows = [(lead, bool(dnc)) for lead, dnc in result.all()]
    rows.sort(key=lambda r: (r[0].due, r[0].id))
    return rows


def _listed(req: ClaimRequest) -> ColumnElement[bool]:
    # Leads on the do-not-call list are claimed too, flagged, so the caller stops them
    # (reason `dnc`): left out of the claim they would stay open and the campaign would never
    # complete.
    if not req.check_dnc:
        return false()
    # Spelled out: SQLite renders RETURNING columns unqualified, where `phone` would
    # resolve to the dnc table's own column.
    return exists().where(DoNotCall.phone == literal_column(f"{Lead.__tablename__}.phone"))


def claimable(
    campaign_id: str, steps: Sequence[int], due_before: float, now: float
) -> ColumnElement[bool]:
    """A lead the claim may take now: open, due in the campaign's clock, at one of these
    steps, no live attempt, no live lease, not held back (`not_before`)."""
    return and_(
        open_lead(campaign_id, due_before, now),
        Lead.step.in_(list(steps)),
    )


def open_lead(campaign_id: str, due_before: float, now: float) -> ColumnElement[bool]:
    """`claimable` but for the step. Status values are literals, as in the partial index
    `ix_leads_open_due` (models.OPEN_PREDICATE): a bound parameter would keep PostgreSQL
    from proving that the index applies."""
    return and_(
        Lead.campaign_id == campaign_id,
        Lead.status.in_([literal_column(f"'{s.value}'") for s in OPEN_STATUSES]),
        Lead.due <= due_before,
        Lead.active_attempt_id.is_(None),
        or_(Lead.lease_until.is_(None), Lead.lease_until < now),
        or_(Lead.not_before.is_(None), Lead.not_before <= now),
    )


async def preview_lead(
    session: AsyncSession, campaign_id: str, steps: Sequence[int], due_before: float, now: float
) -> Lead | None:
    """The lead a preview-mode agent sees next: the first one the claim would take."""
    return (
        await session.scalars(
            select(Lead)
            .where(claimable(campaign_id, steps, due_before, now))
            .order_by(Lead.due, Lead.id)
            .limit(1)
        )
    ).first()


async def is_previewable(
    session: AsyncSession,
    campaign_id: str,
    steps: Sequence[int],
    due_before: float,
    now: float,
    lead_id: int,
) -> bool:
    """Whether this lead is one a preview-mode agent may dial or skip now."""
    found = await session.scalar(
        select(Lead.id).where(Lead.id == lead_id, claimable(campaign_id, steps, due_before, now))
    )
    return found is not None


def _claim_update(req: ClaimRequest, dialect: str, skip_locked: bool | None) -> Update:
    """The claim: the first `limit` claimable leads in due order, read through the partial
    index `ix_leads_open_due` (campaign, step, due, id) one step at a time, so a claim reads
    about the rows it takes, not every open lead of the campaign (docs/architecture.md §6.5).
    Several steps of one channel are one ordered scan each, merged."""
    fence = exists().where(
        Campaign.id == req.campaign_id,
        Campaign.state == CampaignState.RUNNING,
        Campaign.version == req.version,
    )
    if skip_locked is None:
        # PostgreSQL skips rows another worker has locked; SQLite has no row locks (its
        # write transactions begin IMMEDIATE, store/db.py).
        skip_locked = dialect != "sqlite"

    def at(step: int) -> Any:  # a Select of (id, due); its generic form differs by version
        q = (
            select(Lead.id, Lead.due)
            .where(open_lead(req.campaign_id, req.due_before, req.now), Lead.step == step, fence)
            .order_by(Lead.due, Lead.id)
            .limit(req.limit)
        )
        if req.lead_id is not None:
            q = q.where(Lead.id == req.lead_id)
        return q.with_for_update(skip_locked=True) if skip_locked else q

    steps = sorted(set(req.steps))
    if len(steps) == 1:
        candidates = select(at(steps[0]).subquery().c.id)
    else:
        merged = union_all(*(select(at(s).subquery()) for s in steps)).subquery()
        candidates = select(merged.c.id).order_by(merged.c.due, merged.c.id).limit(req.limit)
    return (
        update(Lead)
        .where(Lead.id.in_(candidates.scalar_subquery()))
        .values(lease_owner=req.worker_id, lease_until=req.lease_until, updated_at=req.now)
    )


async def status_counts(conn: AsyncConnection, campaign_id: str) -> dict[str, int]:
    rows = await conn.execute(
        select(Lead.status, func.count())
        .where(Lead.campaign_id == campaign_id)
        .group_by(Lead.status)
    )
    counts = {s.value: 0 for s in LeadStatus}
    for status, n in rows.all():
        counts[status] = int(n)
    return counts


async def has_open_leads(conn: AsyncConnection, campaign_id: str) -> bool:
    """Whether any lead may still be contacted (pending, in progress or paused)."""
    row = await conn.execute(
        select(Lead.id)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.status.in_((LeadStatus.PENDING, LeadStatus.IN_PROGRESS, LeadStatus.PAUSED)),
        )
        .limit(1)
    )
    return row.first() is not None


async def has_leads(conn: AsyncConnection, campaign_id: str) -> bool:
    row = await conn.execute(select(Lead.id).where(Lead.campaign_id == campaign_id).limit(1))
    return row.first() is not None


async def existing_contacts(
    conn: AsyncConnection, campaign_id: str, phones: list[str], emails: list[str]
) -> tuple[set[str], set[str]]:
    """Phones and emails already in the campaign (duplicates are rejected on import)."""
    found_phones: set[str] = set()
    found_emails: set[str] = set()
    for i in range(0, len(phones), 500):
        rows = await conn.execute(
            select(Lead.phone).where(
                Lead.campaign_id == campaign_id, Lead.phone.in_(phones[i : i + 500])
            )
        )
        found_phones.update(p for (p,) in rows.all() if p)
    for i in range(0, len(emails), 500):
        rows = await conn.execute(
            select(Lead.email).where(
                Lead.campaign_id == campaign_id, Lead.email.in_(emails[i : i + 500])
            )
        )
        found_emails.update(e for (e,) in rows.all() if e)
    return found_phones, found_emails


async def count_due(
    conn: AsyncConnection, campaign_id: str, due_before: float, now: float, cap: int = 10_000
) -> int:
    """Leads due now (bounded: a million-lead campaign costs no more than `cap` rows)."""
    due = (
        select(Lead.id)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.status.in_((LeadStatus.PENDING, LeadStatus.IN_PROGRESS)),
            Lead.due <= due_before,
            Lead.active_attempt_id.is_(None),
            or_(Lead.not_before.is_(None), Lead.not_before <= now),
        )
        .limit(cap)
        .subquery()
    )
    n = await conn.scalar(select(func.count()).select_from(due))
    return int(n or 0)


async def by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Lead]:
    rows = await session.scalars(select(Lead).where(Lead.id.in_(list(ids))))
    return {lead.id: lead for lead in rows.all()}


async def paused_until_over(session: AsyncSession, now: float, *, limit: int = 500) -> list[Lead]:
    """Paused leads whose pause was given an end that has come."""
    rows = await session.scalars(
        select(Lead)
        .where(
            Lead.status == LeadStatus.PAUSED,
            Lead.paused_until.is_not(None),
            Lead.paused_until <= now,
        )
        .limit(limit)
    )
    return list(rows.all())


async def next_up(
    session: AsyncSession, campaign_id: str, steps: Sequence[int], limit: int
) -> list[Lead]:
    """The campaign's next leads at these steps, in due order (none has a call now)."""
    rows = await session.scalars(
        select(Lead)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.status.in_(tuple(LEAD_DISPATCHABLE)),
            Lead.active_attempt_id.is_(None),
            Lead.step.in_(list(steps)),
        )
        .order_by(Lead.due, Lead.id)
        .limit(limit)
    )
    return list(rows.all())


async def get(session: AsyncSession, lead_id: int, *, lock: bool = False) -> Lead | None:
    """The lead; with `lock`, its row is locked for the rest of the transaction."""
    return await session.get(Lead, lead_id, with_for_update=lock or None)


async def lock_many(session: AsyncSession, lead_ids: Iterable[int]) -> dict[int, Lead]:
    """Leads by id, locked for the rest of the transaction in id order."""
    ids = sorted(set(lead_ids))
    if not ids:
        return {}
    rows = await session.scalars(
        select(Lead).where(Lead.id.in_(padded(ids))).order_by(Lead.id).with_for_update()
    )
    return {lead.id: lead for lead in rows.all()}


async def hold_claims(
    conn: AsyncConnection, worker_id: str, lead_ids: Sequence[int], now: float, until: float
) -> set[int]:
    """Extend this worker's leases of claimed leads still being handed off; returns the
    leads it still holds (a lease that ran out may have been taken over by another worker's
    reconciler, which then hands the attempt off itself: docs/architecture.md §15.2)."""
    if not lead_ids:
        return set()
    rows = await conn.execute(
        update(Lead)
        .where(Lead.id.in_(tuple(lead_ids)), Lead.lease_owner == worker_id, Lead.lease_until >= now)
        .values(lease_until=until)
        .returning(Lead.id)
    )
    return {lead_id for (lead_id,) in rows.all()}


# -- finding leads (issue 14: search, stale, bulk actions, export) -------------------------
@dataclass(frozen=True, slots=True)
class LeadFilter:
    """Which of a campaign's leads (docs/api.md §5): every given field must hold."""

    status: str | None = None
    pause_reason: str | None = None
    step: int | None = None
    company: str | None = None
    q: str | None = None  # part of the phone, email, name or company (case-insensitive)
    # With `stale_before`: True keeps the leads paused at or before it (a stale pause),
    # False the others.
    stale: bool | None = None
    stale_before: float = 0.0
    statuses: tuple[str, ...] | None = None  # one of these (a bulk action's sources)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_clauses(campaign_id: str, f: LeadFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Lead.campaign_id == campaign_id]
    if f.status is not None:
        where.append(Lead.status == f.status)
    if f.statuses is not None:
        where.append(Lead.status.in_(f.statuses))
    if f.pause_reason is not None:
        where.append(Lead.pause_reason == f.pause_reason)
    if f.step is not None:
        where.append(Lead.step == f.step)
    if f.company is not None:
        where.append(func.lower(Lead.company) == f.company.lower())
    if f.stale is not None:
        stale = and_(
            Lead.status == LeadStatus.PAUSED,
            Lead.paused_at.is_not(None),
            Lead.paused_at <= f.stale_before,
        )
        where.append(stale if f.stale else not_(stale))
    if f.q:
        pattern = _like(f.q)
        full_name = func.coalesce(Lead.first_name, "") + " " + func.coalesce(Lead.last_name, "")
        where.append(
            or_(
                *(
                    func.lower(col).like(pattern, escape="\\")
                    for col in (Lead.phone, Lead.email, Lead.company, full_name)
                )
            )
        )
    return where


async def find(
    session: AsyncSession,
    campaign_id: str,
    f: LeadFilter,
    *,
    after: int = 0,
    limit: int = 100,
    lock: bool = False,
) -> list[Lead]:
    """Up to `limit` matching leads in id order after the id `after`; with `lock`, their
    rows are locked for the rest of the transaction."""
    stmt = (
        select(Lead)
        .where(*filter_clauses(campaign_id, f), Lead.id > after)
        .order_by(Lead.id)
        .limit(limit)
    )
    if lock:
        stmt = stmt.with_for_update()
    return list((await session.scalars(stmt)).all())


async def count_matching(session: AsyncSession, campaign_id: str, f: LeadFilter) -> int:
    n = await session.scalar(select(func.count()).where(*filter_clauses(campaign_id, f)))
    return int(n or 0)


async def finished_with_steps_ahead(
    session: AsyncSession, campaign_id: str, steps: int
) -> list[Lead]:
    """Leads that completed a sequence shorter than `steps` (completed by the sequence,
    not stopped), locked: a longer sequence has steps ahead of them."""
    rows = await session.scalars(
        select(Lead)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.status == LeadStatus.COMPLETED,
            Lead.stop_reason.is_(None),
            Lead.step < steps,
        )
        .order_by(Lead.id)
        .with_for_update()
    )
    return list(rows.all())


async def open_past(session: AsyncSession, campaign_id: str, steps: int) -> list[Lead]:
    """Open leads whose position lies at or past `steps` (a shortened sequence), locked."""
    rows = await session.scalars(
        select(Lead)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.status.in_((LeadStatus.PENDING, LeadStatus.IN_PROGRESS, LeadStatus.PAUSED)),
            Lead.step >= steps,
        )
        .order_by(Lead.id)
        .with_for_update()
    )
    return list(rows.all())


async def clamp_steps(conn: AsyncConnection, campaign_id: str, steps: int) -> None:
    """No lead points past the end of a `steps`-long sequence: `steps` means done."""
    await conn.execute(
        update(Lead).where(Lead.campaign_id == campaign_id, Lead.step > steps).values(step=steps)
    )


async def in_progress_at(
    session: AsyncSession, campaign_id: str, steps: Sequence[int]
) -> list[Lead]:
    """In-progress leads whose next step is one of `steps`, locked."""
    if not steps:
        return []
    rows = await session.scalars(
        select(Lead)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.status == LeadStatus.IN_PROGRESS,
            Lead.step.in_(list(steps)),
        )
        .order_by(Lead.id)
        .with_for_update()
    )
    return list(rows.all())


async def count_stale(session: AsyncSession, campaign_id: str, stale_before: float) -> int:
    """Paused leads paused at or before `stale_before`."""
    return await count_matching(
        session, campaign_id, LeadFilter(stale=True, stale_before=stale_before)
    )
