"""One pipeline for every message that comes back, and the tracked links
(docs/architecture.md §9.1).

`receive` classifies a message (classify.py), matches it to the attempt it answers, and
acts: a hard bounce marks the attempt `bounced` and stops the lead, a reply stops the lead
`replied` (as the campaign's `stop_on` says), a soft bounce and an auto-reply are only
recorded. Matching, in order: the VERP token of the address it was delivered to; one of our
signed Message-IDs it names (In-Reply-To / References, or a DSN's returned headers); for a
DSN, its Final-Recipient among the campaign's leads; for a person's message, its sender
among the leads when it was sent to our plain reply or bounce address; for forwarded mail,
the attached message's Message-ID when the lead forwarded it. Unmatched mail is kept (its
bytes stored) and counted. The row of a message is written in the same transaction as its
effects, keyed by its Message-ID (else a hash): the same message twice is processed once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dialer.clock import Clock
from dialer.domain.links import LinkSigner, verp_token_of
from dialer.domain.states import (
    LEAD_OPEN,
    AttemptStatus,
    StopReason,
    attempt_advances,
)
from dialer.engine.dispatch import contact, render
from dialer.engine.leads import stop
from dialer.errors import NotFound, invalid
from dialer.inbound.classify import Kind, Parsed, parse
from dialer.metrics.registry import Metrics
from dialer.store import attempts as attempt_store
from dialer.store import campaigns as campaign_store
from dialer.store import events
from dialer.store import inbound as store
from dialer.store import leads as lead_store
from dialer.store.db import Database, DbSession
from dialer.store.models import Attempt, Campaign, InboundMessage, Lead

log = logging.getLogger(__name__)

DEFAULT_STOP_ON = ("reply", "bounce", "unsubscribe")
MAX_MESSAGE = 10 * 1024 * 1024  # bytes: a larger message is refused (413)
# A click this soon after the send is a link scanner's (mail gateways follow every link on
# delivery), as is one by a known scanner's agent, and any HEAD request.
SCANNER_SECONDS = 10.0
_SCANNER_AGENTS = re.compile(
    r"bot\b|crawler|spider|scanner|preview|barracuda|mimecast|proofpoint|safelinks|"
    r"microsoft office|ms-office|skypeuripreview|google-safety|googleimageproxy|"
    r"symantec|forcepoint|sophos|trendmicro|fortinet|python-requests|curl/|wget/|go-http",
    re.IGNORECASE,
)
_EFFECT = {Kind.BOUNCE: "bounce", Kind.MESSAGE: "reply"}


@dataclass(frozen=True, slots=True)
class Received:
    kind: str  # reply, auto_reply, bounce, soft_bounce, message (unmatched: see `matched`)
    matched: bool
    duplicate: bool = False
    lead_id: int | None = None
    attempt_id: int | None = None
    stopped: bool = False


@dataclass(frozen=True, slots=True)
class LinkView:
    id: int
    step: int
    url: str
    clicks: int
    unique_clicks: int
    bot_clicks: int


@dataclass(frozen=True, slots=True)
class _Match:
    attempt: Attempt
    by: str


class Inbound:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: Metrics,
        links: LinkSigner,
        *,
        bounce_address: str | None = None,
        reply_address: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.links = links
        self.ours = [a for a in (bounce_address, reply_address) if a]

    # -- messages -------------------------------------------------------------------------
    async def receive(self, raw: bytes, *, source: str) -> Received:
        """Process one message (webhook or IMAP). Raises classify.Unparseable."""
        parsed = parse(raw)
        now = self.clock.now()
        async with self.db.session() as s:
            match = await self._match(s, parsed)
            kind = self._kind(parsed, match)
            row = InboundMessage(
                key=parsed.key,
                source=source,
                kind=kind if match else "unmatched",
                campaign_id=match.attempt.campaign_id if match else None,
                lead_id=match.attempt.lead_id if match else None,
                attempt_id=match.attempt.id if match else None,
                matched_by=match.by if match else None,
                status=parsed.status,
                sender=(parsed.sender or "")[:320] or None,
                subject=parsed.subject[:2000] or None,
                raw=None if match else raw,
                received_at=now,
            )
            if not await store.claim_message(s, row):
                return Received(kind, bool(match), duplicate=True)
            stopped = await self._act(s, parsed, kind, match, now) if match else False
        label = "bounce" if kind in ("bounce", "soft_bounce") else kind
        self.metrics.emails_received.labels(label if match else "unmatched").inc()
        log.info(
            "email.received",
            extra={"kind": kind, "matched": match.by if match else None, "source": source},
        )
        return Received(
            kind,
            bool(match),
            lead_id=match.attempt.lead_id if match else None,
            attempt_id=match.attempt.id if match else None,
            stopped=stopped,
        )

    @staticmethod
    def _kind(parsed: Parsed, match: _Match | None) -> str:
        if parsed.kind is Kind.MESSAGE:
            return "reply"
        return parsed.kind.value

    async def _match(self, s: DbSession, p: Parsed) -> _Match | None:
        for address in p.recipients:
            for base in self.ours:
                token = verp_token_of(address, base)
                attempt_id = self.links.attempt_of_verp_token(token) if token else None
                found = await self._attempt(s, attempt_id)
                if found is not None:
                    return _Match(found, "verp")
        bounce = p.kind in (Kind.BOUNCE, Kind.SOFT_BOUNCE)
        for mid in (p.returned_ids + p.references) if bounce else p.references:
            found = await self._attempt(s, self.links.attempt_of_message_id(mid))
            if found is not None:
                return _Match(found, "message_id")
        if bounce:
            return await self._by_final_recipient(s, p)
        if p.sender is None:
            return None
        for mid in p.quoted_ids:  # forwarded by the lead: the attached mail is ours
            found = await self._attempt(s, self.links.attempt_of_message_id(mid))
            if found is not None and await self._lead_address(s, found) == p.sender:
                return _Match(found, "forwarded")
        if any(self._plain_ours(a) for a in p.recipients):
            found = await store.latest_email_attempt(s, p.sender)
            if found is not None:
                return _Match(found, "sender")
        return None

    async def _by_final_recipient(self, s: DbSession, p: Parsed) -> _Match | None:
        """A DSN without our headers: its Final-Recipient among the leads of the campaign
        its returned X-Dialer-Attempt names, else of any campaign (the latest send)."""
        campaign_id: str | None = None
        named = p.returned_attempt
        if named and named.isascii() and named.isdigit() and len(named) <= 18:
            returned = await attempt_store.get(s, int(named))
            campaign_id = returned.campaign_id if returned else None
        for address in p.final_recipients:
            found = await store.latest_email_attempt(s, address, campaign_id=campaign_id)
            if found is not None:
                return _Match(found, "final_recipient")
        return None

    def _plain_ours(self, address: str) -> bool:
        return any(address == base.lower() for base in self.ours)

    @staticmethod
    async def _attempt(s: DbSession, attempt_id: int | None) -> Attempt | None:
        if attempt_id is None:
            return None
        found = await attempt_store.get(s, attempt_id)
        return found if found is not None and found.channel == "email" else None

    @staticmethod
    async def _lead_address(s: DbSession, attempt: Attempt) -> str | None:
        lead = await lead_store.get(s, attempt.lead_id)
        return lead.email.lower() if lead and lead.email else None

    async def _act(self, s: DbSession, p: Parsed, kind: str, match: _Match, now: float) -> bool:
        """The effects of a matched message; True when it stopped the lead."""
        attempt = match.attempt
        campaign = await campaign_store.get(s, attempt.campaign_id)
        lead = await lead_store.get(s, attempt.lead_id, lock=True)
        if campaign is None or lead is None:
            return False
        events.record(
            s,
            at=now,
            entity="lead",
            entity_id=str(lead.id),
            type=f"email.{kind}",
            campaign_id=campaign.id,
            actor="recipient",
            reason=p.status,
            data={"attempt_id": attempt.id, "matched_by": match.by},
        )
        if kind == "bounce":
            locked = await attempt_store.get(s, attempt.id, lock=True)
            if locked is not None and attempt_advances(
                AttemptStatus(locked.status), AttemptStatus.BOUNCED
            ):
                locked.status = AttemptStatus.BOUNCED
                locked.error = f"bounced: {p.status}"
                locked.updated_at = now
        event = _EFFECT.get(p.kind)
        if event is None or event not in stop_on(campaign):
            return False
        why = StopReason.BOUNCED if kind == "bounce" else StopReason.REPLIED
        return self._stop(s, lead, why, now)

    @staticmethod
    def _stop(s: DbSession, lead: Lead, why: StopReason, now: float) -> bool:
        if lead.status not in LEAD_OPEN:
            return False  # finished already: recorded, nothing to stop
        stop(s, lead, why, now, reason=why.value)
        return lead.stop_reason == why

    # -- tracked links --------------------------------------------------------------------
    async def click(self, token: str, *, head: bool, user_agent: str | None) -> str | None:
        """Record a follow of a tracked link; its current target, or None (not ours)."""
        # A mail client may take the prose's full stop after a link into it.
        ids = self.links.of_click_token(token.rstrip(".,;:!?)"))
        if ids is None:
            return None
        now = self.clock.now()
        async with self.db.session() as s:
            link = await store.get_link(s, ids[1])
            attempt = await attempt_store.get(s, ids[0])
            if link is None or attempt is None or attempt.campaign_id != link.campaign_id:
                return None
            sent_at = attempt.ended_at or attempt.updated_at
            bot = (
                head
                or bool(user_agent and _SCANNER_AGENTS.search(user_agent))
                or now - sent_at < SCANNER_SECONDS
            )
            await store.add_click(s, link, attempt, bot=bot, user_agent=user_agent, now=now)
            lead = await lead_store.get(s, attempt.lead_id, lock=not bot)
            target = link.target
            if lead is not None and "{" in target:
                target = render(target, contact(lead))
            if not bot and lead is not None:
                campaign = await campaign_store.get(s, attempt.campaign_id)
                if campaign is not None and "click" in stop_on(campaign):
                    self._stop(s, lead, StopReason.CLICKED, now)
        if not bot:
            self.metrics.email_clicks.inc()
        return target

    async def link_map(self, campaign_id: str) -> list[LinkView]:
        async with self.db.reader() as s:
            await _campaign(s, campaign_id)
            rows = await store.campaign_links(s, campaign_id)
        return [
            LinkView(r.link.id, r.link.step, r.link.target, r.clicks, r.unique_clicks, r.bot_clicks)
            for r in rows
        ]

    async def set_link(self, campaign_id: str, link_id: int, url: str, *, actor: str) -> LinkView:
        """A new target for a campaign's link, for mails already sent too; audited."""
        check_target(url)
        now = self.clock.now()
        async with self.db.session() as s:
            c = await _campaign(s, campaign_id)
            link = await store.get_link(s, link_id, lock=True)
            if link is None or link.campaign_id != campaign_id:
                raise NotFound(f"no link {link_id} in campaign {campaign_id!r}", {"id": link_id})
            old = link.target
            link.target = url
            link.updated_at = now
            events.campaign_event(
                s,
                c,
                "campaign.link_changed",
                at=now,
                actor=actor,
                data={"link_id": link.id, "step": link.step, "old": old, "new": url},
            )
        for view in await self.link_map(campaign_id):
            if view.id == link_id:
                return view
        raise NotFound(f"no link {link_id}", {"id": link_id})  # deleted meanwhile


def stop_on(campaign: Campaign) -> tuple[str, ...]:
    config: dict[str, Any] = campaign.config or {}
    value = config.get("stop_on")
    return tuple(value) if isinstance(value, list) else DEFAULT_STOP_ON


def check_target(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise invalid("url", "must be an absolute http(s) URL of at most 2000 characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise invalid("url", "must not hold white space or control characters")


async def _campaign(s: DbSession, campaign_id: str) -> Campaign:
    c = await campaign_store.get(s, campaign_id)
    if c is None:
        raise NotFound(f"no campaign {campaign_id!r}", {"id": campaign_id})
    return c
