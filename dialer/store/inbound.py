"""Email that listens, in the database (docs/architecture.md §9.1): the links of email
steps, their clicks, and the messages that came back."""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.store.db import Database
from dialer.store.models import Attempt, EmailClick, EmailLink, InboundMessage, Lead

_CACHE_SIZE = 10_000  # link ids kept per database (a few MB at most)
_link_cache: weakref.WeakKeyDictionary[Database, OrderedDict[tuple[str, int, str], int]] = (
    weakref.WeakKeyDictionary()
)


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


async def link_ids(
    db: Database, campaign_id: str, step: int, urls: Sequence[str], now: float
) -> dict[str, int]:
    """The id of each link of a step (created on first use), from a per-process cache:
    a send asks the database only for a link it has not seen yet."""
    cache = _link_cache.setdefault(db, OrderedDict())
    found: dict[str, int] = {}
    missing: list[str] = []
    for url in urls:
        known = cache.get((campaign_id, step, url))
        if known is None:
            missing.append(url)
        else:
            found[url] = known
    if missing:
        for url in missing:
            found[url] = await _link_id(db, campaign_id, step, url, now)
            cache[(campaign_id, step, url)] = found[url]
            if len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
    return found


async def _link_id(db: Database, campaign_id: str, step: int, url: str, now: float) -> int:
    key = url_hash(url)
    where = (
        (EmailLink.campaign_id == campaign_id)
        & (EmailLink.step == step)
        & (EmailLink.url_hash == key)
    )
    async with db.session() as s:
        existing = await s.scalar(select(EmailLink.id).where(where))
        if existing is not None:
            return existing
    try:
        async with db.session() as s:
            link = EmailLink(
                campaign_id=campaign_id,
                step=step,
                url_hash=key,
                url=url,
                target=url,
                created_at=now,
                updated_at=now,
            )
            s.add(link)
            await s.flush()
            return link.id
    except IntegrityError:  # another sender created it meanwhile
        async with db.session() as s:
            made = await s.scalar(select(EmailLink.id).where(where))
            if made is None:
                raise
            return made


async def get_link(s: AsyncSession, link_id: int, *, lock: bool = False) -> EmailLink | None:
    return await s.get(EmailLink, link_id, with_for_update=lock or None)


@dataclass(frozen=True, slots=True)
class LinkFigures:
    link: EmailLink
    clicks: int
    unique_clicks: int
    bot_clicks: int


async def campaign_links(s: AsyncSession, campaign_id: str) -> list[LinkFigures]:
    """The click map: every link of the campaign's emails, with its figures."""
    links = (
        await s.scalars(
            select(EmailLink)
            .where(EmailLink.campaign_id == campaign_id)
            .order_by(EmailLink.step, EmailLink.id)
        )
    ).all()
    human = EmailClick.bot.is_(False)
    rows = (
        await s.execute(
            select(
                EmailClick.link_id,
                func.count().filter(human),
                func.count(func.distinct(EmailClick.lead_id)).filter(human),
                func.count().filter(EmailClick.bot.is_(True)),
            )
            .where(EmailClick.campaign_id == campaign_id)
            .group_by(EmailClick.link_id)
        )
    ).all()
    figures = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
    return [LinkFigures(link, *figures.get(link.id, (0, 0, 0))) for link in links]


async def add_click(
    s: AsyncSession,
    link: EmailLink,
    attempt: Attempt,
    *,
    bot: bool,
    user_agent: str | None,
    now: float,
) -> bool:
    """Record a click; True when it is the lead's first human click in the campaign."""
    first = False
    if not bot:
        earlier = await s.scalar(
            select(EmailClick.id)
            .where(
                EmailClick.campaign_id == attempt.campaign_id,
                EmailClick.lead_id == attempt.lead_id,
                EmailClick.bot.is_(False),
            )
            .limit(1)
        )
        first = earlier is None
    s.add(
        EmailClick(
            link_id=link.id,
            campaign_id=attempt.campaign_id,
            lead_id=attempt.lead_id,
            attempt_id=attempt.id,
            bot=bot,
            user_agent=(user_agent or "")[:300] or None,
            at=now,
        )
    )
    return first


async def claim_message(s: AsyncSession, row: InboundMessage) -> bool:
    """Insert the message's row; False when a message with its key was processed already
    (the same message delivered twice, or by webhook and IMAP both)."""
    if await s.scalar(select(InboundMessage.id).where(InboundMessage.key == row.key)):
        return False
    try:
        async with s.begin_nested():
            s.add(row)
            await s.flush()
    except IntegrityError:  # a concurrent delivery of the same message won
        return False
    return True


async def latest_email_attempt(
    s: AsyncSession, address: str, *, campaign_id: str | None = None
) -> Attempt | None:
    """The latest sent email attempt to a lead with this address (in the campaign)."""
    q = (
        select(Attempt)
        .join(Lead, Lead.id == Attempt.lead_id)
        .where(
            func.lower(Lead.email) == address.lower(),
            Attempt.channel == "email",
            Attempt.status.in_(("sent", "bounced")),
        )
        .order_by(Attempt.id.desc())
        .limit(1)
    )
    if campaign_id is not None:
        q = q.where(Attempt.campaign_id == campaign_id)
    return (await s.scalars(q)).first()


@dataclass(slots=True)
class EmailFigures:
    replied: int = 0
    soft_bounced: int = 0
    clicked: int = 0


async def email_figures(s: AsyncSession, campaign_id: str) -> EmailFigures:
    """Figures from what came back: leads that replied (a matched reply, or stopped
    `replied`), attempts with a soft bounce, leads with a human click."""
    kinds = dict(
        (
            await s.execute(
                select(InboundMessage.kind, func.count(func.distinct(InboundMessage.attempt_id)))
                .where(
                    InboundMessage.campaign_id == campaign_id,
                    InboundMessage.kind == "soft_bounce",
                )
                .group_by(InboundMessage.kind)
            )
        ).all()
    )
    replies = select(InboundMessage.lead_id).where(
        InboundMessage.campaign_id == campaign_id, InboundMessage.kind == "reply"
    )
    # A lead stopped `replied` by hand counts too; a reply after the lead finished as well.
    replied = await s.scalar(
        select(func.count()).where(
            Lead.campaign_id == campaign_id,
            (Lead.stop_reason == "replied") | Lead.id.in_(replies),
        )
    )
    clicked = await s.scalar(
        select(func.count(func.distinct(EmailClick.lead_id))).where(
            EmailClick.campaign_id == campaign_id, EmailClick.bot.is_(False)
        )
    )
    return EmailFigures(
        replied=int(replied or 0),
        soft_bounced=int(kinds.get("soft_bounce", 0)),
        clicked=int(clicked or 0),
    )


async def unmatched_count(s: AsyncSession) -> int:
    n = await s.scalar(
        select(func.count()).select_from(InboundMessage).where(InboundMessage.kind == "unmatched")
    )
    return int(n or 0)
