"""Bodies and replies of the lead and agent routes that schemas.py does not have yet."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, WithJsonSchema

from dialer.api.schemas import In, LeadOut, Out
from dialer.usecases.agents import AGENT_ID
from dialer.usecases.leads import MAX_IMPORT, LeadFilterIn, LeadIn

# Rows are checked one by one by the import (a bad row is reported by number, the good ones
# are kept), so the body takes any value per row; the schema still shows what a row is.
LeadRow = Annotated[Any, WithJsonSchema(LeadIn.model_json_schema())]


# -- leads -----------------------------------------------------------------------------------
class LeadsIn(In):
    leads: list[LeadRow] = Field(max_length=MAX_IMPORT)


class RowError(Out):
    field: str
    message: str


class RejectedRow(Out):
    row: int = Field(description="CSV: line in the file (header is 1); JSON: 1-based index")
    errors: list[RowError]


class ImportOut(Out):
    accepted: int
    rejected: list[RejectedRow]


class LeadPage(Out):
    items: list[LeadOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class LeadList(Out):
    items: list[LeadOut]


class LeadPauseIn(In):
    reason: str | None = Field(default=None, max_length=500)
    until: AwareDatetime | None = Field(default=None, description="resumes by itself then")


class LeadStopIn(In):
    reason: str | None = Field(default=None, max_length=500)


class QualifyIn(In):
    scope: Literal["lead", "company"] = "lead"


class LeadActionsIn(In):
    """A bulk action (docs/api.md §5): `resume` with `at` reschedules the leads."""

    action: Literal["pause", "resume", "stop", "skip"]
    filter: LeadFilterIn = Field(default_factory=LeadFilterIn)
    reason: str | None = Field(default=None, max_length=500)
    until: AwareDatetime | None = Field(default=None, description="pause: resumes by itself then")
    at: AwareDatetime | None = Field(default=None, description="resume: the time they go on")
    dry_run: bool = Field(default=False, description="count only: matched and would change")


class LeadActionsOut(Out):
    matched: int
    changed: int


# -- agents ----------------------------------------------------------------------------------
class AgentIn(In):
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, pattern=AGENT_ID.pattern)


class PreviewIn(In):
    """Preview mode (docs/api.md §6): the lead to dial or skip; the previewed one if absent."""

    lead_id: int | None = Field(default=None, ge=1)


class AgentStateIn(In):
    state: Literal["available", "offline", "break"]
    # A supervisor's override (docs/api.md §6): from any state to available or offline.
    force: bool = False
    reason: str | None = Field(default=None, max_length=500)
