"""Lead use cases: import with per-row errors, paging, and lead-level control."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
    LEAD_MOVES,
    LEAD_TERMINAL,
    CampaignState,
    InvalidTransition,
    LeadAction,
    LeadStatus,
    PauseReason,
    StopReason,
    lead_transition,
)
from dialer.engine import control
from dialer.engine.leads import apply_lead_action, engine_transition
from dialer.errors import InvalidState, NotFound, ValidationFailed, field_errors, invalid
from dialer.store import events, lead_queries
from dialer.store import leads as lead_store
from dialer.store.db import Database, DbSession
from dialer.store.leads import LeadFilter
from dialer.store.models import Attempt, Campaign, Lead
from dialer.usecases.limits import MAX_SCHEDULE_SECONDS, custom_problem, plain_text

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
        return plain_text(value)

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


DAY = 86400.0
BULK_BATCH = 500  # leads locked and changed per transaction of a bulk action
# The actions a bulk action takes, and the statuses each applies to: the single-lead rules
# of the state table (docs/architecture.md §3.5).
BULK_ACTIONS = {
    str(a): frozenset(str(s) for (s, act) in LEAD_MOVES if act is a)
    for a in (LeadAction.PAUSE, LeadAction.RESUME, LeadAction.STOP, LeadAction.SKIP)
}


class LeadFilterIn(BaseModel):
    """Which leads a list, an export or a bulk action is about (docs/api.md §5)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: (
        Literal["pending", "in_progress", "paused", "completed", "stopped", "skipped"] | None
    ) = None
    pause_reason: str | None = Field(default=None, max_length=500)
    step: int | None = Field(default=None, ge=0, le=1000)
    company: str | None = Field(default=None, max_length=200)
    stale: bool | None = None
    q: str | None = Field(default=None, max_length=200)

    @field_validator("pause_reason", "company", "q")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        return plain_text(value)


def lead_filter(raw: dict[str, Any] | LeadFilterIn | None, *, prefix: str = "") -> LeadFilterIn:
    """A filter from its fields; 422 naming each bad one (an unknown field among them)."""
    if isinstance(raw, LeadFilterIn):
        return raw
    try:
        return LeadFilterIn.model_validate(
            {k: v for k, v in (raw or {}).items() if not (isinstance(v, str) and not v.strip())}
        )
    except ValidationError as exc:
        raise ValidationFailed("invalid filter", field_errors(exc, prefix=prefix)) from None


@dataclass(frozen=True, slots=True)
class BulkResult:
    matched: int  # leads the filter selects
    changed: int  # of them, those the action changed (or would, on a dry run)


class LeadOps:
    def __init__(
        self, db: Database, clock: Clock, specs: Callable[[Campaign], CampaignSpec]
    ) -> None:
        self.db = db
        self.clock = clock
        self.specs = specs  # the typed config, parsed once per version (EngineControl.spec)
        # DIALER_STALE_PAUSE_DAYS: a lead paused longer is stale (docs/architecture.md §3.5).
        self.stale_pause_days = 30.0

    def stale_before(self, now: float | None = None) -> float:
        """Leads paused at or before this time are stale."""
        return (self.clock.now() if now is None else now) - self.stale_pause_days * DAY

    def is_stale(self, lead: Lead, stale_before: float) -> bool:
        return (
            lead.status == LeadStatus.PAUSED
            and lead.paused_at is not None
            and lead.paused_at <= stale_before
        )

    def _store_filter(self, f: LeadFilterIn, **extra: Any) -> LeadFilter:
        return LeadFilter(
            status=f.status,
            pause_reason=f.pause_reason,
            step=f.step,
            company=f.company,
            q=f.q,
            stale=f.stale,
            stale_before=self.stale_before(),
            **extra,
        )

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
        return self._position(c, lead)

    def _position(self, c: Campaign, lead: Lead) -> Position:
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
        self,
        campaign_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: int = 0,
        filter: dict[str, Any] | LeadFilterIn | None = None,
    ) -> tuple[list[Lead], int | None]:
        """A page of the campaign's leads in id order; `filter` as a bulk action's (search
        with `q`, stale pauses with `stale`)."""
        if status is not None and status not in set(LeadStatus):
            raise ValidationFailed(
                "unknown lead status",
                [{"field": "status", "message": f"not one of {[str(x) for x in LeadStatus]}"}],
            )
        f = lead_filter(filter)
        if status is not None:
            f = f.model_copy(update={"status": status})
        limit = max(1, min(limit, 1000))
        async with self.db.reader() as s:
            await control.load(s, campaign_id)
            items = await lead_store.find(
                s, campaign_id, self._store_filter(f), after=cursor, limit=limit + 1
            )
        more = len(items) > limit
        items = items[:limit]
        return items, (items[-1].id if more and items else None)

    async def export(
        self, campaign_id: str, filter: dict[str, Any] | LeadFilterIn | None = None
    ) -> AsyncIterator[list[Lead]]:
        """The matching leads in id order, a batch at a time (a CSV export streams them)."""
        f = self._store_filter(lead_filter(filter))
        async with self.db.reader() as s:
            await control.load(s, campaign_id)
        after = 0
        while True:
            async with self.db.reader() as s:
                batch = await lead_store.find(s, campaign_id, f, after=after, limit=1000)
            if not batch:
                return
            yield batch
            after = batch[-1].id

    async def positions(self, campaign_id: str, leads: list[Lead]) -> list[Position]:
        """Where each lead stands (as `position`), with one campaign read."""
        async with self.db.reader() as s:
            c = await control.load(s, campaign_id)
        return [self._position(c, lead) for lead in leads]

    async def stale_count(self, campaign_id: str) -> int:
        async with self.db.reader() as s:
            return await lead_store.count_stale(s, campaign_id, self.stale_before())

    # -- bulk actions (docs/api.md §5, docs/architecture.md §3.5) --------------------------
    async def bulk(
        self,
        campaign_id: str,
        action: str,
        filter: dict[str, Any] | LeadFilterIn | None = None,
        *,
        actor: str,
        reason: str | None = None,
        until: float | None = None,
        at: float | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """One action on every lead the filter selects, by the single-lead rules: leads whose
        status the action does not apply to are matched but not changed. One audit event
        (`leads.bulk_action`) with the filter and the counts."""
        if action not in BULK_ACTIONS:
            raise invalid("action", f"one of {sorted(BULK_ACTIONS)}", summary="unknown action")
        f = lead_filter(filter, prefix="filter.")
        sources = BULK_ACTIONS[action]
        if f.status is not None and f.status not in sources:
            raise invalid(
                "filter.status",
                f"{action} applies to {' or '.join(sorted(sources))} leads, not {f.status}",
                summary=f"cannot {action} {f.status} leads",
            )
        now = self.clock.now()
        if until is not None and action != LeadAction.PAUSE:
            raise invalid("until", "only with the pause action")
        if at is not None and action != LeadAction.RESUME:
            raise invalid("at", "only with the resume action (a reschedule)")
        if reason is not None and action not in (LeadAction.PAUSE, LeadAction.STOP):
            raise invalid("reason", "only with the pause and stop actions")
        _check_future("until", until, now)
        _check_future("at", at, now)
        matching = self._store_filter(f)
        eligible = self._store_filter(f, statuses=tuple(sorted(sources)))
        async with self.db.reader() as s:
            await control.load(s, campaign_id)
            matched = await lead_store.count_matching(s, campaign_id, matching)
            if dry_run:
                changed = await lead_store.count_matching(s, campaign_id, eligible)
                return BulkResult(matched, changed)
        changed = 0
        after = 0
        while True:
            async with self.db.session() as s:
                c = await control.load(s, campaign_id)
                batch = await lead_store.find(
                    s, campaign_id, eligible, after=after, limit=BULK_BATCH, lock=True
                )
                for lead in batch:
                    if self._apply(s, lead, c, LeadAction(action), now, actor, reason, until, at):
                        changed += 1
            if len(batch) < BULK_BATCH:
                break
            after = batch[-1].id
        async with self.db.session() as s:
            c = await control.load(s, campaign_id)
            events.campaign_event(
                s,
                c,
                "leads.bulk_action",
                at=now,
                actor=actor,
                reason=reason,
                data={
                    "action": action,
                    "filter": f.model_dump(exclude_none=True),
                    "matched": matched,
                    "changed": changed,
                    **({"until": until} if until is not None else {}),
                    **({"at": at} if at is not None else {}),
                },
            )
        return BulkResult(matched, changed)

    def _apply(
        self,
        s: DbSession,
        lead: Lead,
        c: Campaign,
        action: LeadAction,
        now: float,
        actor: str,
        reason: str | None,
        until: float | None,
        at: float | None,
    ) -> bool:
        """One lead of a bulk action; False when its status does not take the action."""
        try:
            target = lead_transition(LeadStatus(lead.status), action)
        except InvalidTransition:
            return False
        if target is None:
            return False
        if action is LeadAction.RESUME and at is not None:
            # A reschedule: the lead goes on at `at`, not after the delay it had left.
            lead.paused_remaining = max(0.0, at - now)
            lead.not_before = max(lead.not_before or 0.0, at)
        apply_lead_action(s, lead, c, action, now, actor=actor, reason=reason, until=until)
        _note_pause(lead, now)
        return True

    # -- sequence and sender edits (docs/architecture.md §3.5) ------------------------------
    async def on_config_change(
        self, s: DbSession, c: Campaign, old: CampaignSpec, new: CampaignSpec, now: float
    ) -> dict[str, int]:
        """What a change of the sequence or the sender means for the leads, in the same
        transaction as the change (seed rules): counts of the leads moved, by what."""
        moved: dict[str, int] = {}
        steps = len(new.sequence)
        if old.sequence != new.sequence:
            reopened = await lead_store.finished_with_steps_ahead(s, c.id, steps)
            for lead in reopened:
                _hold(s, lead, c, now, PauseReason.SEQUENCE_CHANGED)
                lead.paused_remaining = float(new.sequence[lead.step].delay_seconds)
            done = await lead_store.open_past(s, c.id, steps)
            for lead in done:
                engine_transition(s, lead, LeadAction.COMPLETE, now, reason="sequence shortened")
            await lead_store.clamp_steps(await s.connection(), c.id, steps)
            if reopened:
                moved[PauseReason.SEQUENCE_CHANGED] = len(reopened)
            if done:
                moved["completed"] = len(done)
        if old.sender != new.sender and new.has_email:
            last_email = max(new.steps_of(Channel.EMAIL))
            held = await lead_store.in_progress_at(s, c.id, range(last_email + 1))
            for lead in held:
                _hold(s, lead, c, now, PauseReason.SENDER_CHANGED)
            if held:
                moved[PauseReason.SENDER_CHANGED] = len(held)
        return moved

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
            _note_pause(lead, now)
            return lead

    async def pause(
        self, lead_id: int, *, actor: str, reason: str | None = None, until: float | None = None
    ) -> Lead:
        _check_future("until", until, self.clock.now())
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


def _check_future(name: str, value: float | None, now: float) -> None:
    """A time a lead waits for: in the future, and not too far ahead."""
    if value is not None and value <= now:
        raise ValidationFailed(
            f"{name} must be in the future", [{"field": name, "message": "in the past"}]
        )
    if value is not None and value > now + MAX_SCHEDULE_SECONDS:
        days = f"{MAX_SCHEDULE_SECONDS / DAY:.0f}"
        raise ValidationFailed(
            f"{name} is too far ahead", [{"field": name, "message": f"at most {days} days"}]
        )


def _note_pause(lead: Lead, now: float) -> None:
    """After a person's action changed the lead: when it was paused (its staleness counts
    from then), cleared once it goes on."""
    lead.paused_at = now if lead.status == LeadStatus.PAUSED else None


def _hold(s: DbSession, lead: Lead, c: Campaign, now: float, why: PauseReason) -> None:
    """dialer pauses the lead itself (a sequence or sender change): it gets nothing until a
    supervisor resumes (or reschedules) it. A lead that finished the sequence is the one
    way out of `completed` (docs/architecture.md §2.2)."""
    if lead.status == LeadStatus.COMPLETED:
        events.record(
            s,
            at=now,
            entity="lead",
            entity_id=str(lead.id),
            type="lead.state",
            campaign_id=lead.campaign_id,
            actor=events.SYSTEM,
            from_state=lead.status,
            to_state=LeadStatus.PAUSED,
            reason=str(why),
        )
        lead.status = LeadStatus.PAUSED
        lead.updated_at = now
        lead.paused_until = None
        lead.pause_reason = str(why)
    else:
        apply_lead_action(s, lead, c, LeadAction.PAUSE, now, actor=events.SYSTEM, reason=str(why))
    lead.paused_at = now
