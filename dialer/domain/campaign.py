"""The campaign configuration: what survives every pause (docs/architecture.md §1)."""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialer.domain.pacing import PacingMode
from dialer.domain.windows import Schedule, Window

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ResumePolicy(StrEnum):
    FREEZE = "freeze"
    DEADLINE = "deadline"


class Channel(StrEnum):
    VOICE = "voice"
    EMAIL = "email"


class AnsweredBy(StrEnum):
    """Who picked up a voice call, as the carrier reports it once answered."""

    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VoiceStep(_Model):
    channel: Literal["voice"] = "voice"
    delay_seconds: float = Field(default=0, ge=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_delay_seconds: float = Field(default=3600, ge=0)
    ring_timeout_seconds: int = Field(default=25, ge=15, le=120)


class EmailStep(_Model):
    channel: Literal["email"] = "email"
    delay_seconds: float = Field(default=0, ge=0)
    subject: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_delay_seconds: float = Field(default=3600, ge=0)
    # Tries used up on soft failures (4xx, soft bounces): "stop" the lead (`failed`), or go
    # on to the "next" step (docs/architecture.md §9.1).
    on_exhausted: Literal["stop", "next"] = "stop"


Step = Annotated[VoiceStep | EmailStep, Field(discriminator="channel")]


class WindowSpec(_Model):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> WindowSpec:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ScheduleSpec(_Model):
    timezone: str = "UTC"
    windows: list[WindowSpec] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def to_domain(self) -> Schedule:
        return Schedule(
            timezone=self.timezone,
            windows=tuple(
                Window(days=frozenset(w.days), start=w.start, end=w.end) for w in self.windows
            ),
        )


class PacingSpec(_Model):
    mode: PacingMode = PacingMode.PROGRESSIVE
    lines_per_agent: float = Field(default=1.0, ge=1.0, le=10.0)
    max_abandon_rate: float = Field(default=0.03, ge=0.0, le=1.0)
    calls_per_second: float = Field(default=1.0, gt=0, le=100)
    agentless_capacity: int = Field(default=10, ge=1, le=1000)


StopOn = Literal["reply", "bounce", "unsubscribe", "click"]
STOP_ON_DEFAULT: tuple[StopOn, ...] = ("reply", "bounce", "unsubscribe")


class SenderSpec(_Model):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str = ""


class CampaignSpec(_Model):
    """The create body of docs/api.md §4.1; everything but name and sequence has a default."""

    name: str = Field(min_length=1, max_length=200)
    sequence: list[Step] = Field(min_length=1, max_length=50)
    schedule: ScheduleSpec | None = None
    pacing: PacingSpec = Field(default_factory=PacingSpec)
    caller_ids: list[str] = Field(default_factory=list)
    sender: SenderSpec | None = None
    agent_ids: list[str] = Field(default_factory=list)
    resume_policy: ResumePolicy = ResumePolicy.FREEZE
    wrap_up_seconds: float = Field(default=10, ge=0, le=3600)
    custom: dict[str, Any] = Field(default_factory=dict)
    # What the recipient does that stops the lead (docs/architecture.md §9.1).
    stop_on: list[StopOn] = Field(default_factory=lambda: list(STOP_ON_DEFAULT), max_length=4)

    @property
    def has_voice(self) -> bool:
        return bool(self.steps_of(Channel.VOICE))

    @property
    def has_email(self) -> bool:
        return bool(self.steps_of(Channel.EMAIL))

    def steps_of(self, channel: Channel) -> list[int]:
        return [i for i, s in enumerate(self.sequence) if s.channel == channel]


class CampaignPatch(_Model):
    """PATCH body: any config field; absent fields are left as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    sequence: list[Step] | None = Field(default=None, min_length=1, max_length=50)
    schedule: ScheduleSpec | None = None
    pacing: PacingSpec | None = None
    caller_ids: list[str] | None = None
    sender: SenderSpec | None = None
    agent_ids: list[str] | None = None
    resume_policy: ResumePolicy | None = None
    wrap_up_seconds: float | None = Field(default=None, ge=0, le=3600)
    custom: dict[str, Any] | None = None
    stop_on: list[StopOn] | None = Field(default=None, max_length=4)
