"""Structured logs: one line per lifecycle event, ids bound, phone numbers and email
addresses masked wherever they appear (docs/architecture.md §14.10, §13).

Repeated identical warnings and errors are collapsed (`CollapseRepeats`, §15.1): during an
outage a loop that fails every tick logs its first failure, then one line with a count.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog

# A phone number as it can appear in a log line: E.164 (`+` and 7-15 digits, as every
# stored number is; single spaces, dots, dashes or brackets between digits allowed), or a
# North American number without the `+` (10 digits, or 11 with the leading 1; plain or
# written 212-555-0123 / (212) 555-0123). Not glued to a letter or another digit, so a
# call id (CA0123…), a timestamp (2026-01-05 15:20:03), a decimal (1767625200.0), a status
# code or a count is left alone (docs/architecture.md §14.10).
PHONE = re.compile(
    r"""
    (?:
        (?<![\w+])\+\d{7,15}(?!\d)
      | (?<![\w+])\+\d(?:[ .()-]{0,2}\d){6,14}
      | (?<![\w+.:-])(?:1[ .-]?)?(?:\([2-9]\d{2}\)\ ?|[2-9]\d{2}[ .-]?)[2-9]\d{2}[ .-]?\d{4}
    )
    (?![\w]|[.:,-]\d)
    """,
    re.VERBOSE,
)
# Starts only where a local part can start, and a local part is at most 64 characters: a
# long run of letters without an `@` is scanned once, not once per letter.
EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{0,63}@([A-Za-z0-9.-]+\.[A-Za-z]{2,})"
)
SECRET_KEYS = ("password", "token", "secret", "auth", "authorization", "smtp_url")


def mask_text(text: str) -> str:
    """`text` with every email address and phone number in it masked, and nothing else."""
    text = EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return PHONE.sub(lambda m: _mask_digits(m.group(0)), text)


def _mask_digits(number: str) -> str:
    return number[:4] + "*" * max(0, len(number) - 6) + number[-2:]


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


def mask_processor(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(s in key.lower() for s in SECRET_KEYS):
            event[key] = "***"
        elif key not in ("timestamp", "level", "logger"):
            event[key] = _mask(event[key])
    return event


COLLAPSE_SECONDS = 10.0
_Key = tuple[str, str, str | None]  # logger, event, exception type


@dataclass
class _Window:
    started: float
    levelno: int
    event: str
    suppressed: int = 0


class CollapseRepeats(logging.Filter):
    """A handler filter: the same (logger, event, exception type) at WARNING or above is
    let through once per `interval` seconds; the copies in between are counted, and one
    line "<event> repeated N times in the last T s" (fields `repeated`, `seconds`) goes out
    when the window has ended, before the next record to pass this handler (docs/architecture.md
    §15.1). Any logger, stdlib or structlog; INFO and below are never touched."""

    def __init__(
        self,
        interval: float = COLLAPSE_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.WARNING,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.level = level
        self.clock = clock  # settable: tests inject a fake one
        self._windows: dict[_Key, _Window] = {}
        self._lock = threading.Lock()
        self._handler: logging.Handler | None = None
        self._emitting = threading.local()  # the summary this thread is handing to the handler

    def install(self, handler: logging.Handler) -> CollapseRepeats:
        """Filter `handler`'s records; summaries are emitted through it."""
        self._handler = handler
        handler.addFilter(self)
        return self

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(self._emitting, "record", None) is record:
            return True
        now = self.clock()
        with self._lock:
            due = self._expired(now)
            keep = True
            if record.levelno >= self.level:
                key = _key(record)
                window = self._windows.get(key)
                if window is None:
                    self._windows[key] = _Window(now, record.levelno, key[1])
                else:
                    window.suppressed += 1
                    keep = False
        for key, window in due:
            self._summarise(key, window, now)
        return keep

    def flush(self) -> None:
        """Emit the summaries of every open window now (at shutdown, say)."""
        now = self.clock()
        with self._lock:
            due = [(k, w) for k, w in self._windows.items() if w.suppressed]
            self._windows.clear()
        for key, window in due:
            self._summarise(key, window, now)

    def _expired(self, now: float) -> list[tuple[_Key, _Window]]:
        done = [(k, w) for k, w in self._windows.items() if now - w.started >= self.interval]
        for k, _ in done:
            del self._windows[k]
        return [(k, w) for k, w in done if w.suppressed]

    def _summarise(self, key: _Key, window: _Window, now: float) -> None:
        if self._handler is None:
            return
        seconds = round(now - window.started)
        record = logging.LogRecord(
            key[0],
            window.levelno,
            __file__,
            0,
            f"{window.event} repeated {window.suppressed} times in the last {seconds} s",
            None,
            None,
        )
        record.repeated = window.suppressed
        record.seconds = seconds
        if key[2] is not None:
            record.exception_type = key[2]
        self._emitting.record = record
        try:
            self._handler.handle(record)
        finally:
            self._emitting.record = None


def _key(record: logging.LogRecord) -> _Key:
    msg = record.msg
    # A structlog logger's record carries its event dict; a stdlib one its format string.
    event = str(msg.get("event", "")) if isinstance(msg, dict) else str(msg)
    exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
    return record.name, event, exc


def configure(level: str = "INFO", *, json: bool = False) -> None:
    """Route stdlib and structlog records through one masking renderer on stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # tracebacks as text, so they get masked
        mask_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    CollapseRepeats().install(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiosqlite", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def flush_repeats() -> None:
    """Write the pending "repeated N times" lines (at shutdown: none is lost)."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, CollapseRepeats):
                f.flush()
