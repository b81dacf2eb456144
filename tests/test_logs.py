"""Logs through `dialer.logs.configure()` during a short campaign: lifecycle events are there,
and no lead's phone number or email, no token, password or session secret is
(docs/architecture.md §14.10).

Everything is captured after the configured formatter ran (what would reach stderr), at DEBUG.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from dialer import logs
from dialer.channels.simulated import SimProfile
from dialer.clock import FakeClock
from dialer.usecases.accounts import Accounts
from tests.harness import ADMIN, harness, leads

SECRET = "bootstrap-secret-Zq8vX2mL0pR7tY4w"
PASSWORD = "hunter2-but-longer-9Kd"
LIFECYCLE = ("campaign.state", "attempt.dispatched", "attempt.ended")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Configure logging as `dialer serve` does, plus a copy of its output in memory; then put
    logging back as it was."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("aiosqlite", "asyncio")}
    noisy["alembic.runtime.migration"] = logging.getLogger("alembic.runtime.migration").level
    buffer = io.StringIO()
    yield buffer
    structlog.reset_defaults()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in noisy.items():
        logging.getLogger(name).setLevel(level)


def start_capture(buffer: io.StringIO, *, as_json: bool) -> None:
    logs.configure("DEBUG", json=as_json)
    root = logging.getLogger()
    (configured,) = root.handlers
    copy = logging.StreamHandler(buffer)
    copy.setFormatter(configured.formatter)
    root.addHandler(copy)


async def exercise_accounts(accounts: Accounts) -> list[str]:
    """Every way a secret passes through the accounts code; returns the secrets it made."""
    assert await accounts.verify_token(SECRET) is not None
    assert await accounts.verify_token(SECRET[::-1]) is None
    token, _ = await accounts.create_token("supervisor", name="ci")
    assert await accounts.verify_token(token) is not None
    await accounts.create_user("ops", PASSWORD, "admin")
    assert await accounts.login("ops", PASSWORD[::-1]) is None
    logged_in = await accounts.login("ops", PASSWORD)
    assert logged_in is not None
    session, who = logged_in
    assert await accounts.session(session) is not None
    return [token, session, who.csrf or "missing-csrf"]


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
async def test_campaign_logs_mask_contacts_and_secrets(
    captured: io.StringIO, sqlite_url: str, tmp_path: Path, as_json: bool
) -> None:
    start_capture(captured, as_json=as_json)
    people = leads(12)
    profile = SimProfile(answer_rate=0.5, machine_rate=0.2, busy_rate=0.1, fail_rate=0.05)
    async with harness(sqlite_url, tmp_path, profile=profile) as h:
        await h.agents("a1", "a2")
        c = await h.campaign(
            sequence=[
                {"channel": "voice", "max_attempts": 1},
                {"channel": "email", "delay_seconds": 30, "subject": "Hi", "body": "Hello"},
            ],
            agent_ids=["a1", "a2"],
        )
        result = await h.service.leads.add(c.id, people)
        assert result.accepted == len(people)
        await h.service.start(c.id, actor=ADMIN)
        await h.run(20, step=2)
        await h.service.pause(c.id, actor=ADMIN, reason="lunch")
        await h.service.resume(c.id, actor=ADMIN)
        await h.run(240, step=2)
        made = await exercise_accounts(Accounts(h.rt.db, h.clock, bootstrap_token=SECRET))
    # A line that carries secrets and contacts on purpose: masking must catch it.
    logging.getLogger("dialer.test").warning(
        "contact %s at %s",
        people[0]["phone"],
        people[0]["email"],
        extra={"token": SECRET, "authorization": f"Bearer {SECRET}", "phone": people[1]["phone"]},
    )

    text = captured.getvalue()
    events = _events(text, as_json=as_json)
    for name in LIFECYCLE:
        assert name in events, f"no {name} line logged:\n{text[:3000]}"
    assert "contact" in events, "the deliberate line was not captured"
    leaked = [p["phone"] for p in people if p["phone"] in text]
    leaked += [p["phone"].removeprefix("+") for p in people if p["phone"][1:] in text]
    leaked += [p["email"] for p in people if p["email"] in text]
    leaked += [s for s in (SECRET, PASSWORD, *made) if s in text]
    assert not leaked, f"logged in clear: {leaked}"


def _events(text: str, *, as_json: bool) -> set[str]:
    if as_json:
        return {json.loads(line)["event"].split()[0] for line in text.splitlines() if line}
    # console: "<timestamp> [<level>] <event> ..." (the timestamp goes first)
    found = re.findall(r"\[\s*\w+\s*\]\s+(\S+)", text)
    return set(found)


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
def test_exception_text_is_masked(captured: io.StringIO, as_json: bool) -> None:
    """`log.exception(...)` during a failed request: the traceback carries the exception's
    message, which may quote a lead's number or address."""
    start_capture(captured, as_json=as_json)
    phone, email = "+12125550123", "lead7@example.com"
    try:
        raise ValueError(f"carrier rejected {phone} ({email})")
    except ValueError:
        logging.getLogger("dialer.test").exception("request.failed")
    text = captured.getvalue()
    assert "request.failed" in text and "ValueError" in text
    assert phone not in text and phone[1:] not in text and email not in text, text


# --- Repeated errors are collapsed (docs/architecture.md §15.1) ------------------------------


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def collapsing() -> Iterator[tuple[logging.Logger, Kept, logs.CollapseRepeats, FakeClock]]:
    clock = FakeClock(1000.0)
    kept = Kept()
    collapse = logs.CollapseRepeats(10.0, clock=clock.now).install(kept)
    logger = logging.getLogger("dialer.test.collapse")
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    logger.handlers[:], logger.propagate = [kept], False
    logger.setLevel(logging.DEBUG)
    yield logger, kept, collapse, clock
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)


def _fail(logger: logging.Logger, event: str, exc: Exception) -> None:
    try:
        raise exc
    except type(exc):
        logger.exception(event)


async def test_identical_errors_are_logged_once_per_interval_with_a_count(
    collapsing: tuple[logging.Logger, Kept, logs.CollapseRepeats, FakeClock],
) -> None:
    logger, kept, _, clock = collapsing
    for _ in range(50):
        _fail(logger, "engine tick failed", ConnectionRefusedError(111, "refused"))
        await clock.advance(0.1)
    assert kept.lines() == ["engine tick failed"]
    assert kept.records[0].exc_info is not None  # the first keeps its traceback
    await clock.advance(5.0)  # the 10 s window has ended
    logger.info("attempt.dispatched")
    summary, info = kept.records[1:]
    assert summary.getMessage() == "engine tick failed repeated 49 times in the last 10 s"
    assert summary.levelno == logging.ERROR and summary.exc_info is None
    assert (summary.repeated, summary.exception_type) == (49, "ConnectionRefusedError")  # type: ignore[attr-defined]
    assert info.getMessage() == "attempt.dispatched"
    # A new window: the next failure is logged in full again.
    _fail(logger, "engine tick failed", ConnectionRefusedError(111, "refused"))
    assert kept.lines()[-1] == "engine tick failed" and kept.records[-1].exc_info is not None


async def test_only_identical_warnings_and_errors_collapse(
    collapsing: tuple[logging.Logger, Kept, logs.CollapseRepeats, FakeClock],
) -> None:
    logger, kept, collapse, clock = collapsing
    for _ in range(3):
        logger.info("attempt.dispatched")  # INFO: lifecycle lines are never collapsed
        _fail(logger, "live.poll_failed", ConnectionRefusedError(111, "refused"))
        _fail(logger, "live.poll_failed", KeyError("bug"))  # another exception type
        logger.warning("request.unavailable")
        logging.getLogger("dialer.test.collapse.other").warning("request.unavailable")
        await clock.advance(1)
    assert kept.lines().count("attempt.dispatched") == 3
    assert kept.lines().count("live.poll_failed") == 2
    assert kept.lines().count("request.unavailable") == 2  # one per logger
    assert len(kept.records) == 3 + 2 + 2
    # The same line after its window is not counted into the old one.
    await clock.advance(10)
    logger.warning("request.unavailable")
    assert kept.lines()[-1] == "request.unavailable"
    summaries = [line for line in kept.lines() if "repeated" in line]
    assert sorted(summaries) == [
        "live.poll_failed repeated 2 times in the last 13 s",
        "live.poll_failed repeated 2 times in the last 13 s",
        "request.unavailable repeated 2 times in the last 13 s",
        "request.unavailable repeated 2 times in the last 13 s",
    ]
    logger.error("once")
    logger.error("once")
    collapse.flush()  # at shutdown: what is pending goes out now
    assert kept.lines()[-2:] == ["once", "once repeated 1 times in the last 0 s"]


async def test_configured_logging_collapses_a_flood(captured: io.StringIO) -> None:
    """Through `logs.configure()`: what reaches stderr is one traceback and one count."""
    logs.configure("INFO", json=True)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(captured)
    (collapse,) = [f for f in handler.filters if isinstance(f, logs.CollapseRepeats)]
    clock = FakeClock(0.0)
    collapse.clock = clock.now
    engine = logging.getLogger("dialer.engine.engine")
    for _ in range(100):
        _fail(engine, "engine tick failed", OSError(111, "Connect call failed"))
        await clock.advance(0.1)
    await clock.advance(1)
    logging.getLogger("dialer.api.live").info("live.poll_recovered")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "engine tick failed",
        "engine tick failed repeated 99 times in the last 11 s",
        "live.poll_recovered",
    ]
    assert "Traceback" in lines[0]["exception"] and "exception" not in lines[1]
    assert (lines[1]["repeated"], lines[1]["level"]) == (99, "error")


# --- What the masks hide, and what they leave (docs/architecture.md §14.10) -----------------
@pytest.mark.parametrize(
    "text",
    [
        "status 503 after 2 tries",
        "at 2026-01-05T15:20:03.417+00:00",
        "at 2026-01-05 15:20:03",
        "Mon, 05 Jan 2026 15:20:03 +0000",
        "call CA0123456789abcdef0123456789abcdef",
        "call CA00000000000000000000000000000042",
        "due 1767625200.0 (epoch), 1767625200123 ms",
        "attempt 812 lead 1234567 campaign c_0a1b2c3d4e5f",
        "request 3f2c1d2e-1234-4321-8765-123456789012 from 127.0.0.1:8080",
    ],
)
def test_masks_leave_what_is_not_a_contact(text: str) -> None:
    assert logs.mask_text(text) == text


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("to +12125550123 at 15:20", "+12125550123"),
        ("to:+33142685300.", "33142685300"),
        ("call (212) 555-0123 now", "555-0123"),
        ("call 212-555-0123 now", "555-0123"),
        ("call 1-212-555-0123 now", "555-0123"),
        ("sms 12125550123", "12125550123"),
        ("intl +44 20 7183 8750 ok", "7183 8750"),
        ("to +12125550123 503", "+12125550123"),
        ("mail ann.lee+x@example.com, bo@example.org", "ann.lee+x"),
    ],
)
def test_masks_hide_phone_numbers_and_emails(text: str, hidden: str) -> None:
    masked = logs.mask_text(text)
    assert hidden not in masked, masked
    if "503" in text:
        assert masked.endswith(" 503")  # the status after the number is not part of it


async def test_database_errors_never_carry_the_statement_parameters(
    captured: io.StringIO, db_url: str
) -> None:
    """SQLAlchemy puts a failed statement's parameters in the error's text, and the error is
    logged: the engine is made with hide_parameters, so a lead's name never gets there."""
    from sqlalchemy import text

    from dialer.store.db import Database

    start_capture(captured, as_json=True)
    name = "Zelda Quietname"
    db = Database(db_url)
    try:
        with pytest.raises(Exception) as caught:
            async with db.begin() as conn:
                await conn.execute(
                    text("SELECT * FROM no_such_table WHERE name = :name"), {"name": name}
                )
    finally:
        await db.aclose()
    assert name not in str(caught.value)
    assert "hidden" in str(caught.value)
    try:
        raise caught.value
    except Exception:
        logging.getLogger("dialer.api.errors").exception("request.failed")
    out = captured.getvalue()
    assert "request.failed" in out and "no_such_table" in out and name not in out
