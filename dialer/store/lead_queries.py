"""Lead lookups of the use cases: one lead, its attempts, a page, the open leads of a
company or an address. The claim and the engine's writes are in store/leads.py."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.domain.states import LEAD_OPEN
from dialer.store.models import Attempt, Lead


async def attempts(session: AsyncSession, lead_id: int) -> list[Attempt]:
    rows = await session.scalars(
        select(Attempt).where(Attempt.lead_id == lead_id).order_by(Attempt.id)
    )
    return list(rows.all())


async def page(
    session: AsyncSession, campaign_id: str, *, status: str | None, after: int, limit: int
) -> list[Lead]:
    """Up to `limit` leads of the campaign in id order, after the id `after`."""
    stmt = (
        select(Lead)
        .where(Lead.campaign_id == campaign_id, Lead.id > after)
        .order_by(Lead.id)
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(Lead.status == status)
    return list((await session.scalars(stmt)).all())


async def open_of_company(session: AsyncSession, lead: Lead) -> Sequence[Lead]:
    """The campaign's other open leads of the lead's company."""
    rows = await session.scalars(
        select(Lead).where(
            Lead.campaign_id == lead.campaign_id,
            Lead.company == lead.company,
            Lead.id != lead.id,
            Lead.status.in_(tuple(LEAD_OPEN)),
        )
    )
    return rows.all()


async def open_with_email(session: AsyncSession, email: str) -> Sequence[Lead]:
    """Every open lead with this address, in every campaign."""
    rows = await session.scalars(
        select(Lead).where(Lead.email == email, Lead.status.in_(tuple(LEAD_OPEN)))
    )
    return rows.all()
