"""Lead use cases: import with per-row errors, paging, and lead-level control."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from dialer.clock import Clock
from dialer.domain.campaign import CampaignSpec, Channel
from dialer.domain.contacts import (
    ContactError,
    normalize_email,
    normalize_phone,
    timezone_for_phone,
    validate_timezone,
)
from dialer.domain.states import (
    CAMPAIGN_TERMINAL,
    LEAD_TERMINAL,
    CampaignState,
    InvalidTransition,
    LeadAction,
    LeadStatus,
    StopReason,
    lead_transition,
)
from dialer.engine import control
from dialer.engine.leads import apply_lead_action
from dialer.errors import InvalidState, NotFound, ValidationFailed, field_errors
from dialer.store import lead_queries
from dialer.store import leads as lead_store
from dialer.store.db import Database
from dialer.store.models import Attempt, Campaign, Lead
from dialer.usecases.limits import MAX_SCHEDULE_SECONDS, custom_problem, text_problem

MAX_IMPORT = 100_000
_NEEDS = {"phone": Channel.VOICE, "email": Channel.EMAIL}


class LeadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    company: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    custom: dict[str, Any] = Field(default_factory=dict)

    # A NUL byte or a lone surrogate in one row rejects that row, on SQLite as on PostgreSQL
    # (which would refuse the whole import's insert); docs/api.md §5.
    @field_validator("phone", "email", "first_name", "last_name", "company", "timezone")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        problem = None if value is None else text_problem(value)
        if problem:
            raise PydanticCustomError("text", problem)
        return value

    @field_validator("custom")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = custom_problem(value)
        if problem:
            raise PydanticCustomError("custom", problem)
        return value


@dataclass(frozen=True, slots=True)
class Position:
    step: int  # the next step to run (0-based)
    channel: str | None  # its channel; None once the lead is done
    due_at: float | None  # when it will be due, while the campaign (and lead) run
    due_in_seconds: float | None  # delay left, counted in the campaign's clock


@dataclass(slots=True)
class ImportResult:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _blank(value: Any) -> bool:
    """A missing value: None, or a string of only spaces (an empty CSV cell)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _clean(raw: dict[str, Any], spec: CampaignSpec) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """One row, validated and normalised; or the list of its errors by field."""
    try:
        row = LeadIn.model_validate({k: v for k, v in raw.items() if not _blank(v)})
    except ValidationError as exc:
        return {}, field_errors(exc, whole="row")
    errors: list[dict[str, str]] = []
    out = row.model_dump()
    for name, check in (("phone", normalize_phone), ("email", normalize_email)):
        value = out[name]
        if value is None:
            if (name == "phone" and spec.has_voice) or (name == "email" and spec.has_email):
                errors.append(
                    {
                        "field": name,
                        "message": f"required: the sequence has a {_NEEDS[name]} step",
                    }
                )
            continue
        try:
            out[name] = check(value)
        except ContactError as exc:
            errors.append({"field": exc.field, "message": exc.message})
    if out["timezone"]:
        try:
            validate_timezone(out["timezone"])
        except ContactError as exc:
            errors.append({"field": exc.field, "message": exc.message})
    elif out["phone"] and not errors:
        out["timezone"] = timezone_for_phone(out["phone"])
    return out, errors


class LeadOps:
    def __init__(
        self, db: Database, clock: Clock, specs: Callable[[Campaign], CampaignSpec]
    ) -> None:
        self.db = db
        self.clock = clock
        self.specs = specs  # the typed config, parsed once per version (EngineControl.spec)

    async def add(
        self, campaign_id: str, rows: list[dict[str, Any]], *, first_row: int = 1
    ) -> ImportResult:
        """Add leads; bad rows are reported by number (`first_row` is the first's number)
        and the good rows are kept. Duplicates (same phone or email in the campaign, or
        earlier in the same import) are rejected."""
        if len(rows) > MAX_IMPORT:
            raise ValidationFailed(
                f"at most {MAX_IMPORT} leads per import",
                [{"field": "leads", "message": f"{len(rows)} rows; split the file"}],
            )
        now = self.clock.now()
        result = ImportResult()
        async with self.db.session() as s:
            c = await control.load(s, campaign_id, lock=True)
            if c.state in CAMPAIGN_TERMINAL or c.state == CampaignState.STOPPING:
                raise InvalidState(f"cannot add leads to a campaign that is {c.state}", c.state)
            spec = CampaignSpec.model_validate(c.config)
            cleaned: list[tuple[int, dict[str, Any]]] = []
            for i, raw in enumerate(rows):
                number = first_row + i
                if not isinstance(raw, dict):
                    result.rejected.append(
                        {"row": number, "errors": [{"field": "row", "message": "not an object"}]}
                    )
                    continue
                out, errors = _clean(raw, spec)
                if errors:
                    result.rejected.append({"row": number, "errors": errors})
                else:
                    cleaned.append((number, out))
            phones, emails = await lead_store.existing_contacts(
                await s.connection(),
                c.id,
                [o["phone"] for _, o in cleaned if o["phone"]],
                [o["email"] for _, o in cleaned if o["email"]],
            )
            clock_now = control.campaign_clock(c).now(now)
            first_delay = float(spec.sequence[0].delay_seconds)
            good: list[dict[str, Any]] = []
            for number, out in cleaned:
                dup = [
                    {"field": k, "message": "duplicate in this campaign"}
                    for k, seen in (("phone", phones), ("email", emails))
                    if out[k] and out[k] in seen
                ]
                if dup:
                    result.rejected.append({"row": number, "errors": dup})
                    continue
                if out["phone"]:
                    phones.add(out["phone"])
                if out["email"]:
                    emails.add(out["email"])
                good.append(
                    {
                        **out,
                        "campaign_id": c.id,
                        "status": LeadStatus.PENDING,
                        "step": 0,
                        "tries": 0,
                        "seq": 0,
                        "due": clock_now + first_delay,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            await lead_store.insert_leads(await s.connection(), good)
            result.accepted = len(good)
        return result

    async def get(self, lead_id: int) -> tuple[Lead, list[Attempt]]:
        async with self.db.reader() as s:
            lead = await lead_store.get(s, lead_id)
            if lead is None:
                raise NotFound(f"no lead {lead_id}", {"id": str(lead_id)})
            return lead, await lead_queries.attempts(s, lead_id)

    async def position(self, lead: Lead) -> Position:
        """Where the lead stands: its next step and when that step is due."""
        async with self.db.reader() as s:
            c = await control.load(s, lead.campaign_id)
        sequence = self.specs(c).sequence
        done = lead.status in LEAD_TERMINAL or lead.step >= len(sequence)
        if done:
            return Position(step=lead.step, channel=None, due_at=None, due_in_seconds=None)
        clock = control.campaign_clock(c)
        now = self.clock.now()
        left = max(0.0, lead.due - clock.now(now))
        if lead.status == LeadStatus.PAUSED:
            left = lead.paused_remaining or 0.0
        running = c.state == CampaignState.RUNNING and lead.status != LeadStatus.PAUSED
        due_at = max(now + left, lead.not_before or 0.0) if running else None
        return Position(lead.step, sequence[lead.step].channel, due_at, left)

    async def page(
        self, campaign_id: str, *, status: str | None = None, limit: int = 100, cursor: int = 0
    ) -> tuple[list[Lead], int | None]:
        if status is not None and status not in set(LeadStatus):
            raise ValidationFailed(
                "unknown lead status",
                [{"field": "status", "message": f"not one of {[str(x) for x in LeadStatus]}"}],
            )
        limit = max(1, min(limit, 1000))
        async with self.db.reader() as s:
            await control.load(s, campaign_id)
            items = await lead_queries.page(
                s, campaign_id, status=status, after=cursor, limit=limit + 1
            )
        more = len(items) > limit
        items = items[:limit]
        return items, (items[-1].id if more and items else None)

    async def _control(
        self,
        lead_id: int,
        action: LeadAction,
        *,
        actor: str,
        reason: str | None = None,
        until: float | None = None,
        stop_reason: StopReason = StopReason.MANUAL,
    ) -> Lead:
        now = self.clock.now()
        async with self.db.session() as s:
            lead = await lead_store.get(s, lead_id, lock=True)
            if lead is None:
                raise NotFound(f"no lead {lead_id}", {"id": str(lead_id)})
            try:
                target = lead_transition(LeadStatus(lead.status), action)
            except InvalidTransition as exc:
                raise InvalidState(str(exc), lead.status) from None
            if target is None:
                return lead
            c = await control.load(s, lead.campaign_id)
            apply_lead_action(
                s,
                lead,
                c,
                action,
                now,
                actor=actor,
                reason=reason,
                until=until,
                stop_reason=stop_reason,
            )
            return lead

    async def pause(
        self, lead_id: int, *, actor: str, reason: str | None = None, until: float | None = None
    ) -> Lead:
        now = self.clock.now()
        if until is not None and until <= now:
            raise ValidationFailed(
                "until must be in the future", [{"field": "until", "message": "in the past"}]
            )
        if until is not None and until > now + MAX_SCHEDULE_SECONDS:
            days = f"{MAX_SCHEDULE_SECONDS / 86400:.0f}"
            raise ValidationFailed(
                "until is too far ahead", [{"field": "until", "message": f"at most {days} days"}]
            )
        return await self._control(
            lead_id, LeadAction.PAUSE, actor=actor, reason=reason, until=until
        )

    async def resume(self, lead_id: int, *, actor: str) -> Lead:
        return await self._control(lead_id, LeadAction.RESUME, actor=actor)

    async def stop(self, lead_id: int, *, actor: str, reason: str | None = None) -> Lead:
        return await self._control(lead_id, LeadAction.STOP, actor=actor, reason=reason)

    async def skip(self, lead_id: int, *, actor: str) -> Lead:
        return await self._control(lead_id, LeadAction.SKIP, actor=actor)

    async def qualify(self, lead_id: int, *, actor: str, scope: str = "lead") -> list[Lead]:
        """Stop the lead as qualified; with scope "company", every open lead of its company."""
        if scope not in ("lead", "company"):
            raise ValidationFailed("bad scope", [{"field": "scope", "message": "lead or company"}])
        lead = await self._control(
            lead_id,
            LeadAction.STOP,
            actor=actor,
            reason="qualified",
            stop_reason=StopReason.QUALIFIED,
        )
        stopped = [lead]
        if scope == "company" and lead.company:
            now = self.clock.now()
            async with self.db.session() as s:
                c = await control.load(s, lead.campaign_id)
                for other in await lead_queries.open_of_company(s, lead):
                    apply_lead_action(
                        s,
                        other,
                        c,
                        LeadAction.STOP,
                        now,
                        actor=actor,
                        reason=f"company qualified (lead {lead.id})",
                        stop_reason=StopReason.COMPANY_STOPPED,
                    )
                    stopped.append(other)
        return stopped

    async def stop_address(self, email: str, *, actor: str) -> list[int]:
        """Stop every open lead with this address, in every campaign (unsubscribed)."""
        now = self.clock.now()
        async with self.db.session() as s:
            rows = await lead_queries.open_with_email(s, email)
            campaigns: dict[str, Campaign] = {}
            for lead in rows:
                c = campaigns.get(lead.campaign_id) or await control.load(s, lead.campaign_id)
                campaigns[c.id] = c
                apply_lead_action(
                    s,
                    lead,
                    c,
                    LeadAction.STOP,
                    now,
                    actor=actor,
                    reason="unsubscribed",
                    stop_reason=StopReason.UNSUBSCRIBED,
                )
            return [lead.id for lead in rows]
