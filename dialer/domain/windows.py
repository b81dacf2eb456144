"""Calling windows: the campaign's weekly activity hours and the lead's local calling hours.

Pure code (docs/architecture.md §7.1): times are passed in, never read from a clock. Windows are
defined in
local *wall* time; an instant is open when its wall time in the zone falls inside a window.
Searches walk the UTC axis in stretches of constant UTC offset, so DST gaps (a start time
that does not exist opens at the first instant after it) and folds (a repeated hour is open
both times) come out right without special cases.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LEAD_LOCAL_START = time(8, 0)
LEAD_LOCAL_END = time(21, 0)
# Weekly schedules repeat every 7 days; one more day covers a search that starts mid-window.
HORIZON = timedelta(days=8)
# Sampling step when looking for UTC-offset changes; real zones never change twice per hour.
_PROBE = 3600

_Interval = tuple[time, time]


@dataclass(frozen=True, slots=True)
class Window:
    """One weekly window, [start, end) on each of `days`, in the campaign's time zone."""

    days: frozenset[str]
    start: time
    end: time

    def __post_init__(self) -> None:
        unknown = set(self.days) - set(DAYS)
        if unknown:
            raise ValueError(f"unknown day(s) {sorted(unknown)}; use {', '.join(DAYS)}")
        if not self.days:
            raise ValueError("a window needs at least one day")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window times are wall-clock times and carry no tzinfo")
        if self.end <= self.start:
            # Overnight windows are two windows (one per day); keeping them out keeps the
            # search simple and the weekday of a window unambiguous.
            raise ValueError(f"window end {self.end} must be after start {self.start}")
        object.__setattr__(self, "days", frozenset(self.days))


@dataclass(frozen=True, slots=True)
class Schedule:
    """A campaign's activity hours; no windows means always open."""

    timezone: str
    windows: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        _zone(self.timezone)
        object.__setattr__(self, "windows", tuple(self.windows))


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return at.astimezone(UTC)


def _check_hours(start: time, end: time) -> None:
    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")


def campaign_open(schedule: Schedule | None, at: datetime) -> bool:
    """Whether the campaign's schedule allows activity at `at` (None schedule: always)."""
    at = _utc(at)
    if schedule is None or not schedule.windows:
        return True
    local = at.astimezone(_zone(schedule.timezone))
    day, wall = DAYS[local.weekday()], local.time()
    return any(day in w.days and w.start <= wall < w.end for w in schedule.windows)


def lead_local_open(
    timezone: str, at: datetime, start: time = LEAD_LOCAL_START, end: time = LEAD_LOCAL_END
) -> bool:
    """Whether `at` is within [start, end) in the lead's local wall time."""
    _check_hours(start, end)
    wall = _utc(at).astimezone(_zone(timezone)).time()
    return start <= wall < end


def next_campaign_open(schedule: Schedule | None, at: datetime) -> datetime | None:
    """The earliest instant >= `at` when the campaign is open, or None within 8 days."""
    at = _utc(at)
    if schedule is None or not schedule.windows:
        return at
    return _next_open(_zone(schedule.timezone), at, at + HORIZON, _schedule_intervals(schedule))


def next_lead_local_open(
    timezone: str, at: datetime, start: time = LEAD_LOCAL_START, end: time = LEAD_LOCAL_END
) -> datetime:
    """The earliest instant >= `at` within the lead's local calling hours."""
    _check_hours(start, end)
    at = _utc(at)
    found = _next_open(_zone(timezone), at, at + HORIZON, _daily(start, end))
    if found is None:  # pragma: no cover - a daily window always recurs within 8 days
        raise RuntimeError(f"no calling hours in {timezone} after {at}")
    return found


def next_allowed(
    schedule: Schedule | None, lead_timezone: str | None, at: datetime, *, voice: bool
) -> datetime | None:
    """The earliest instant >= `at` when this lead may be contacted, or None.

    The campaign schedule always applies; voice also needs the lead's local 08:00-21:00
    (the compliance rule, docs/architecture.md §7.1). None means nothing opens within 8 days: for
    weekly
    windows that is never, barring seasonal DST drift between two zones, so callers should
    re-check later rather than drop the lead.
    """
    at = _utc(at)
    if not voice or lead_timezone is None:
        return next_campaign_open(schedule, at)
    until = at + HORIZON
    campaign_zone = _zone(schedule.timezone) if schedule and schedule.windows else None
    lead_zone = _zone(lead_timezone)
    lead_hours = _daily(LEAD_LOCAL_START, LEAD_LOCAL_END)
    t: datetime | None = at
    # Leapfrog: each step jumps to the next opening of one of the two sets, so it stops at
    # the first instant in both. Openings within the horizon are finite, so this terminates.
    while t is not None:
        if campaign_zone is not None and schedule is not None:
            t = _next_open(campaign_zone, t, until, _schedule_intervals(schedule))
            if t is None:
                return None
        lead_t = _next_open(lead_zone, t, until, lead_hours)
        if lead_t == t:
            return t
        t = lead_t
    return None


def _schedule_intervals(schedule: Schedule) -> Callable[[date], list[_Interval]]:
    def intervals(day: date) -> list[_Interval]:
        name = DAYS[day.weekday()]
        return [(w.start, w.end) for w in schedule.windows if name in w.days]

    return intervals


def _daily(start: time, end: time) -> Callable[[date], list[_Interval]]:
    return lambda _day: [(start, end)]


def _next_open(
    zone: ZoneInfo,
    at: datetime,
    until: datetime,
    intervals: Callable[[date], list[_Interval]],
) -> datetime | None:
    """The earliest instant in [at, until] whose wall time in `zone` is inside an interval."""
    for lo, hi, offset in _stretches(zone, at, until):
        # Within a stretch wall = utc + offset exactly, so each wall interval maps to one
        # UTC interval; clipping it to the stretch handles gaps and folds at the edges.
        naive_lo, naive_hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
        best: datetime | None = None
        day = (naive_lo + offset).date()
        while day <= (naive_hi + offset).date():
            for start, end in intervals(day):
                open_lo = max(datetime.combine(day, start) - offset, naive_lo)
                open_hi = min(datetime.combine(day, end) - offset, naive_hi)
                if open_lo < open_hi and (best is None or open_lo < best):
                    best = open_lo
            day += timedelta(days=1)
        if best is not None:
            return best.replace(tzinfo=UTC)
    return None


def _stretches(
    zone: ZoneInfo, lo: datetime, hi: datetime
) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """Split [lo, hi] (UTC) into half-open stretches of constant UTC offset, lazily.

    The last stretch is closed at `hi` (extended by a microsecond) so `hi` itself counts.
    Stretches are at most a day long so a search that succeeds early scans little.
    """
    end = hi + timedelta(microseconds=1)
    start = lo
    while start < end:
        chunk_end = min(start + timedelta(days=1), end)
        change = _next_change(zone, start, chunk_end)
        # A change found past the chunk (probing rounds up to whole seconds) starts the next.
        stop = min(change, chunk_end) if change is not None else chunk_end
        yield start, stop, _offset(zone, start)
        start = stop


def _offset(zone: ZoneInfo, at: datetime) -> timedelta:
    offset = at.astimezone(zone).utcoffset()
    assert offset is not None  # ZoneInfo always yields an offset for aware datetimes
    return offset


def _next_change(zone: ZoneInfo, after: datetime, before: datetime) -> datetime | None:
    """The first instant after `after` where the zone's UTC offset changes, if any.

    Looks no further than `before` rounded up to a whole second.
    """
    current = _offset(zone, after)
    base = math.floor(after.timestamp())
    limit = math.ceil(before.timestamp())
    probe = base
    while probe < limit:
        nxt = min(probe + _PROBE, limit)
        if _offset(zone, _from_ts(nxt)) != current:
            # Transitions fall on whole seconds: bisect down to the first changed second.
            low, high = probe, nxt
            while high - low > 1:
                mid = (low + high) // 2
                if _offset(zone, _from_ts(mid)) == current:
                    low = mid
                else:
                    high = mid
            return max(_from_ts(high), after)
        probe = nxt
    return None


def _from_ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
