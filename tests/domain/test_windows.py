from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.domain.windows import (
    DAYS,
    HORIZON,
    Schedule,
    Window,
    campaign_open,
    lead_local_open,
    next_allowed,
    next_campaign_open,
    next_lead_local_open,
)

WEEKDAYS = frozenset({"mon", "tue", "wed", "thu", "fri"})
ALL_DAYS = frozenset(DAYS)
NY_OFFICE = Schedule("America/New_York", (Window(WEEKDAYS, time(9), time(17)),))
TOKYO_OFFICE = Schedule("Asia/Tokyo", (Window(WEEKDAYS, time(9), time(17)),))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


def sched(zone: str, days: set[str], start: time, end: time) -> Schedule:
    return Schedule(zone, (Window(frozenset(days), start, end),))


# --- campaign_open -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        (None, utc(2024, 1, 6, 3), True),
        (Schedule("UTC"), utc(2024, 1, 6, 3), True),
        # Monday 2024-01-08, New York is UTC-5 in winter.
        (NY_OFFICE, utc(2024, 1, 8, 14), True),  # 09:00 local: start is inclusive
        (NY_OFFICE, utc(2024, 1, 8, 13, 59, 59), False),
        (NY_OFFICE, utc(2024, 1, 8, 21, 59, 59), True),
        (NY_OFFICE, utc(2024, 1, 8, 22), False),  # 17:00 local: end is exclusive
        (NY_OFFICE, utc(2024, 1, 13, 15), False),  # Saturday
        (NY_OFFICE, utc(2024, 1, 14, 15), False),  # Sunday
        (NY_OFFICE, utc(2024, 7, 8, 13), True),  # 09:00 EDT (UTC-4) in summer
        (NY_OFFICE, utc(2024, 7, 8, 21), False),  # 17:00 EDT
        # Tokyo's Monday 09:00 is Sunday 24:00 UTC: the local weekday is what counts.
        (TOKYO_OFFICE, utc(2024, 1, 8, 0), True),
        (TOKYO_OFFICE, utc(2024, 1, 7, 23, 59), False),
        (TOKYO_OFFICE, utc(2024, 1, 12, 7, 59), True),  # Friday 16:59 JST
        (TOKYO_OFFICE, utc(2024, 1, 12, 8), False),
        # Non-UTC input is accepted and means the same instant.
        (NY_OFFICE, datetime(2024, 1, 8, 9, tzinfo=ZoneInfo("America/New_York")), True),
    ],
)
def test_campaign_open(schedule: Schedule | None, at: datetime, expected: bool) -> None:
    assert campaign_open(schedule, at) is expected


def test_several_windows_any_one_opens() -> None:
    split = Schedule(
        "Europe/London",
        (Window(WEEKDAYS, time(9), time(12)), Window(frozenset({"sat"}), time(10), time(11))),
    )
    assert campaign_open(split, utc(2024, 1, 8, 11, 30))
    assert not campaign_open(split, utc(2024, 1, 8, 12))
    assert campaign_open(split, utc(2024, 1, 13, 10))
    assert next_campaign_open(split, utc(2024, 1, 12, 12)) == utc(2024, 1, 13, 10)


# --- next_campaign_open --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        (None, utc(2024, 1, 6, 3), utc(2024, 1, 6, 3)),
        (NY_OFFICE, utc(2024, 1, 8, 15), utc(2024, 1, 8, 15)),  # open: itself
        (NY_OFFICE, utc(2024, 1, 8, 5), utc(2024, 1, 8, 14)),  # early Monday
        (NY_OFFICE, utc(2024, 1, 12, 22), utc(2024, 1, 15, 14)),  # Friday close -> Monday
        (NY_OFFICE, utc(2024, 1, 13, 12), utc(2024, 1, 15, 14)),  # weekend
        (TOKYO_OFFICE, utc(2024, 1, 7, 12), utc(2024, 1, 8, 0)),
        # New York springs forward 2024-03-10 02:00 -> 03:00 (07:00 UTC). A 02:30 start
        # does not exist that day: the window opens at the first instant after the gap.
        (
            sched("America/New_York", {"sun"}, time(2, 30), time(4)),
            utc(2024, 3, 9),
            utc(2024, 3, 10, 7),
        ),
        # A window lying wholly inside the gap is skipped that week.
        (
            sched("America/New_York", {"sun"}, time(2, 10), time(2, 50)),
            utc(2024, 3, 10),
            utc(2024, 3, 17, 6, 10),
        ),
        # ... and when next week's is past the 8-day horizon the answer is None.
        (
            sched("America/New_York", {"sun"}, time(2, 10), time(2, 50)),
            utc(2024, 3, 3, 8),
            None,
        ),
        # New York falls back 2024-11-03 02:00 EDT -> 01:00 EST (06:00 UTC): at 01:45 EDT the
        # wall clock returns into a 00:30-01:30 window mid-way.
        (
            sched("America/New_York", {"sun"}, time(0, 30), time(1, 30)),
            utc(2024, 11, 3, 5, 45),
            utc(2024, 11, 3, 6),
        ),
        # Lord Howe shifts by 30 minutes. Spring 2024-10-06 02:00 -> 02:30 (15:30 UTC the day
        # before); autumn 2024-04-07 02:00 -> 01:30 (15:00 UTC the day before).
        (
            sched("Australia/Lord_Howe", {"sun"}, time(2, 10), time(3)),
            utc(2024, 10, 5, 12),
            utc(2024, 10, 5, 15, 30),
        ),
        (
            sched("Australia/Lord_Howe", {"sun"}, time(1, 40), time(1, 50)),
            utc(2024, 4, 6, 14, 55),  # 01:55 +11, after the first 01:40-01:50
            utc(2024, 4, 6, 15, 10),  # the repeated 01:40, now at +10:30
        ),
    ],
)
def test_next_campaign_open(
    schedule: Schedule | None, at: datetime, expected: datetime | None
) -> None:
    found = next_campaign_open(schedule, at)
    assert found == expected
    assert found is None or found.tzinfo is UTC


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/New_York", utc(2024, 3, 9, 12)),
        ("America/New_York", utc(2024, 11, 2, 12)),
        ("Australia/Lord_Howe", utc(2024, 4, 5, 12)),
        ("Australia/Lord_Howe", utc(2024, 10, 4, 12)),
        ("Europe/Dublin", utc(2024, 3, 30, 12)),  # negative DST in the tz database
        ("America/Santiago", utc(2024, 9, 7, 12)),  # transition at local midnight
    ],
)
def test_next_campaign_open_matches_minute_scan(zone: str, day: datetime) -> None:
    """Around a DST change, agree with a brute-force minute-by-minute scan."""
    schedule = Schedule(
        zone,
        (
            Window(ALL_DAYS, time(0), time(0, 20)),
            Window(ALL_DAYS, time(1, 0), time(1, 40)),
            Window(ALL_DAYS, time(2, 10), time(2, 50)),
            Window(ALL_DAYS, time(23, 50), time.max),
        ),
    )
    minutes = [day + timedelta(minutes=m) for m in range(3 * 24 * 60)]
    is_open = [campaign_open(schedule, m) for m in minutes]
    upcoming: datetime | None = None
    expected: list[datetime | None] = []
    for minute, flag in zip(reversed(minutes), reversed(is_open), strict=True):
        upcoming = minute if flag else upcoming
        expected.append(upcoming)
    expected.reverse()
    for i in range(0, 2 * 24 * 60, 7):
        assert next_campaign_open(schedule, minutes[i]) == expected[i], minutes[i]


# --- lead-local hours ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "at", "expected"),
    [
        ("America/New_York", utc(2024, 1, 8, 13), True),  # 08:00 inclusive
        ("America/New_York", utc(2024, 1, 8, 12, 59), False),
        ("America/New_York", utc(2024, 1, 9, 1, 59, 59), True),  # 20:59:59
        ("America/New_York", utc(2024, 1, 9, 2), False),  # 21:00 exclusive
        ("America/New_York", utc(2024, 1, 13, 15), True),  # weekends count too
        ("Asia/Tokyo", utc(2024, 1, 7, 23), True),  # Monday 08:00 JST
        ("Asia/Tokyo", utc(2024, 1, 8, 12), False),  # 21:00 JST
        ("Australia/Lord_Howe", utc(2024, 1, 7, 21), True),  # 08:00 at +11
        ("Australia/Lord_Howe", utc(2024, 7, 7, 21), False),  # 07:30 at +10:30
    ],
)
def test_lead_local_open(zone: str, at: datetime, expected: bool) -> None:
    assert lead_local_open(zone, at) is expected


@pytest.mark.parametrize(
    ("zone", "at", "expected"),
    [
        ("America/New_York", utc(2024, 1, 8, 14), utc(2024, 1, 8, 14)),
        ("America/New_York", utc(2024, 1, 9, 2), utc(2024, 1, 9, 13)),
        ("America/Los_Angeles", utc(2024, 1, 8, 14), utc(2024, 1, 8, 16)),
        ("Asia/Tokyo", utc(2024, 1, 8, 12), utc(2024, 1, 8, 23)),
        ("Asia/Kolkata", utc(2024, 1, 8, 0), utc(2024, 1, 8, 2, 30)),
        ("America/New_York", utc(2024, 3, 10, 5), utc(2024, 3, 10, 12)),  # EDT from today
    ],
)
def test_next_lead_local_open(zone: str, at: datetime, expected: datetime) -> None:
    assert next_lead_local_open(zone, at) == expected


def test_custom_lead_hours() -> None:
    at = utc(2024, 1, 8, 14)  # 09:00 New York
    assert not lead_local_open("America/New_York", at, time(10), time(18))
    assert next_lead_local_open("America/New_York", at, time(10), time(18)) == utc(2024, 1, 8, 15)


# --- next_allowed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "lead_zone", "at", "voice", "expected"),
    [
        (None, None, utc(2024, 1, 8, 3), True, utc(2024, 1, 8, 3)),
        (None, "America/New_York", utc(2024, 1, 8, 3), False, utc(2024, 1, 8, 3)),
        (None, "America/New_York", utc(2024, 1, 8, 3), True, utc(2024, 1, 8, 13)),
        # Campaign opens 09:00 New York, but it is 06:00 for a Los Angeles lead.
        (NY_OFFICE, "America/Los_Angeles", utc(2024, 1, 8, 14), True, utc(2024, 1, 8, 16)),
        (NY_OFFICE, "America/Los_Angeles", utc(2024, 1, 8, 14), False, utc(2024, 1, 8, 14)),
        (NY_OFFICE, None, utc(2024, 1, 8, 14), True, utc(2024, 1, 8, 14)),
        # Kolkata's 08:00-21:00 overlaps New York's office hours only 14:00-15:30 UTC.
        (NY_OFFICE, "Asia/Kolkata", utc(2024, 1, 8, 16), True, utc(2024, 1, 9, 14)),
        (NY_OFFICE, "Asia/Kolkata", utc(2024, 1, 12, 16), True, utc(2024, 1, 15, 14)),
        # Tokyo's calling hours never meet New York's office hours in winter.
        (NY_OFFICE, "Asia/Tokyo", utc(2024, 1, 8, 14), True, None),
        (NY_OFFICE, "Asia/Tokyo", utc(2024, 1, 8, 14), False, utc(2024, 1, 8, 14)),
    ],
)
def test_next_allowed(
    schedule: Schedule | None,
    lead_zone: str | None,
    at: datetime,
    voice: bool,
    expected: datetime | None,
) -> None:
    assert next_allowed(schedule, lead_zone, at, voice=voice) == expected


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "start", "end"),
    [
        (WEEKDAYS, time(17), time(9)),  # overnight
        (WEEKDAYS, time(9), time(9)),  # empty
        (frozenset({"monday"}), time(9), time(17)),
        (frozenset(), time(9), time(17)),
        (WEEKDAYS, time(9, tzinfo=UTC), time(17)),
    ],
)
def test_window_rejects(days: frozenset[str], start: time, end: time) -> None:
    with pytest.raises(ValueError):
        Window(days, start, end)


def test_schedule_rejects_unknown_zone() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        Schedule("Mars/Olympus", ())


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        campaign_open(NY_OFFICE, datetime(2024, 1, 8, 14))


def test_lead_hours_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        lead_local_open("UTC", utc(2024, 1, 1), time(21), time(8))


# --- properties ----------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "Europe/London",
    "Europe/Dublin",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Apia",
]
zones = st.sampled_from(ZONES)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)
minutes_of_day = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start, end = sorted(draw(st.lists(minutes_of_day, min_size=2, max_size=2, unique=True)))
    days = draw(st.frozensets(st.sampled_from(DAYS), min_size=1))
    return Window(days, start, end)


schedules = st.none() | st.builds(Schedule, zones, st.lists(windows(), max_size=3).map(tuple))


def _allowed(schedule: Schedule | None, lead_zone: str | None, at: datetime, voice: bool) -> bool:
    lead_ok = not voice or lead_zone is None or lead_local_open(lead_zone, at)
    return campaign_open(schedule, at) and lead_ok


def _sample(lo: datetime, hi: datetime, n: int = 200) -> list[datetime]:
    """Whole minutes spread over [lo, hi): every one if few, else an even sample."""
    first = lo.replace(second=0, microsecond=0)
    if first < lo:
        first += timedelta(minutes=1)
    count = max(0, int((hi - first).total_seconds() // 60) + 1)
    step = max(1, count // n)
    out = [first + timedelta(minutes=i) for i in range(0, count, step)]
    return [lo, *(m for m in out if m < hi)] if lo < hi else []


@settings(max_examples=300, deadline=None)
@given(schedules, st.none() | zones, instants, st.booleans())
def test_next_allowed_is_allowed_and_earliest(
    schedule: Schedule | None, lead_zone: str | None, at: datetime, voice: bool
) -> None:
    found = next_allowed(schedule, lead_zone, at, voice=voice)
    if found is None:
        # Nothing opens within the horizon: no sampled minute of it is allowed.
        for minute in _sample(at, at + HORIZON, n=500):
            assert not _allowed(schedule, lead_zone, minute, voice)
        return
    assert found.tzinfo is UTC
    assert found >= at
    assert campaign_open(schedule, found)
    if voice and lead_zone is not None:
        assert lead_local_open(lead_zone, found)
    if found > at:
        # `found` is the left edge of an open stretch: the instant just before is closed.
        assert not _allowed(schedule, lead_zone, found - timedelta(microseconds=1), voice)
    for minute in _sample(at, found):
        assert not _allowed(schedule, lead_zone, minute, voice)


@settings(max_examples=300, deadline=None)
@given(schedules, instants)
def test_next_campaign_open_is_open_and_earliest(schedule: Schedule | None, at: datetime) -> None:
    found = next_campaign_open(schedule, at)
    if found is None:
        # Only when the one weekly opening falls into a DST gap next week.
        assert schedule is not None
        for minute in _sample(at, at + HORIZON, n=500):
            assert not campaign_open(schedule, minute)
        return
    assert campaign_open(schedule, found)
    assert (found == at) is campaign_open(schedule, at)
    if found > at:
        assert not campaign_open(schedule, found - timedelta(microseconds=1))


@settings(max_examples=300, deadline=None)
@given(zones, instants)
def test_lead_local_open_is_the_local_clock(zone: str, at: datetime) -> None:
    local = at.astimezone(ZoneInfo(zone)).time()
    assert lead_local_open(zone, at) is (time(8) <= local < time(21))


@settings(max_examples=300, deadline=None)
@given(zones, st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)))
def test_lead_local_closed_outside_hours(zone: str, wall: datetime) -> None:
    """A local wall time outside 08:00-21:00, as an instant, is never callable."""
    tz = ZoneInfo(zone)
    instant = wall.replace(tzinfo=tz).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != wall:
        return  # the wall time falls in a DST gap: no such instant
    expected = time(8) <= wall.time() < time(21)
    assert lead_local_open(zone, instant) is expected
    found = next_lead_local_open(zone, instant)
    assert lead_local_open(zone, found)
    assert (found == instant) is expected
