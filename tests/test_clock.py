from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from dialer.clock import FakeClock, Scheduled, SystemClock

START = 1_767_225_600.0


def recorder(clock: FakeClock, log: list[tuple[str, float]], name: str) -> Scheduled:
    async def fn() -> None:
        log.append((name, clock.now()))

    return fn


def test_fake_clock_starts_at_2026() -> None:
    clock = FakeClock()
    assert clock.now() == START
    assert clock.utcnow() == datetime(2026, 1, 1, tzinfo=UTC)
    assert FakeClock(start=10.0).now() == 10.0


async def test_advance_runs_due_items_in_time_then_insertion_order() -> None:
    clock = FakeClock(start=0.0)
    log: list[tuple[str, float]] = []
    clock.schedule(5, recorder(clock, log, "c"))
    clock.schedule(1, recorder(clock, log, "a"))
    clock.schedule(5, recorder(clock, log, "d"))
    clock.schedule(1, recorder(clock, log, "b"))
    clock.schedule(10, recorder(clock, log, "late"))
    assert clock.pending() == 5

    await clock.advance(7)

    assert log == [("a", 1.0), ("b", 1.0), ("c", 5.0), ("d", 5.0)]
    assert clock.now() == 7.0
    assert clock.pending() == 1


async def test_items_scheduled_while_running_are_honoured_up_to_the_target() -> None:
    clock = FakeClock(start=0.0)
    log: list[tuple[str, float]] = []

    async def chain() -> None:
        log.append(("chain", clock.now()))
        clock.schedule(2, chain)

    clock.schedule(0, chain)
    await clock.advance(5)

    assert log == [("chain", 0.0), ("chain", 2.0), ("chain", 4.0)]
    assert clock.pending() == 1


async def test_cancelled_items_do_not_run() -> None:
    clock = FakeClock(start=0.0)
    log: list[tuple[str, float]] = []
    handle = clock.schedule(1, recorder(clock, log, "x"))
    handle.cancel()
    handle.cancel()
    assert clock.pending() == 0
    await clock.advance(2)
    assert log == []


async def test_sleep_wakes_when_time_passes() -> None:
    clock = FakeClock(start=0.0)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(3)
        woke.append(clock.now())

    task = asyncio.create_task(sleeper())
    await clock.advance(2)
    assert woke == []
    await clock.advance(2)
    await task
    assert woke == [3.0]


async def test_sleep_of_zero_returns_at_once() -> None:
    clock = FakeClock(start=0.0)
    await clock.sleep(0)
    assert clock.now() == 0.0


async def test_tasks_woken_by_an_item_run_before_the_next_item() -> None:
    clock = FakeClock(start=0.0)
    event = asyncio.Event()
    seen: list[str] = []

    async def waiter() -> None:
        await event.wait()
        seen.append("waiter")

    async def setter() -> None:
        event.set()

    async def after() -> None:
        seen.append("after")

    task = asyncio.create_task(waiter())
    clock.schedule(1, setter)
    clock.schedule(1, after)
    await clock.advance(1)
    await task
    assert seen == ["waiter", "after"]


async def test_exceptions_in_items_propagate_to_the_test() -> None:
    clock = FakeClock()

    async def boom() -> None:
        raise RuntimeError("boom")

    clock.schedule(1, boom)
    with pytest.raises(RuntimeError, match="boom"):
        await clock.advance(1)


async def test_time_only_moves_forward() -> None:
    with pytest.raises(ValueError):
        await FakeClock().advance(-1)


async def test_run_until_idle_follows_the_schedule_to_its_end() -> None:
    clock = FakeClock(start=0.0)
    log: list[tuple[str, float]] = []

    async def first() -> None:
        log.append(("first", clock.now()))
        clock.schedule(100, recorder(clock, log, "second"))

    clock.schedule(10, first)
    await clock.run_until_idle()
    assert log == [("first", 10.0), ("second", 110.0)]
    assert clock.now() == 110.0
    assert clock.pending() == 0


async def test_run_until_idle_is_bounded() -> None:
    clock = FakeClock(start=0.0)
    runs: list[float] = []

    async def forever() -> None:
        runs.append(clock.now())
        clock.schedule(60, forever)

    clock.schedule(0, forever)
    await clock.run_until_idle(max_seconds=600)
    assert len(runs) == 11
    assert clock.pending() == 1


async def test_fake_aclose_drops_scheduled_work_and_sleepers() -> None:
    clock = FakeClock()
    log: list[tuple[str, float]] = []
    clock.schedule(1, recorder(clock, log, "x"))
    task = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    await clock.aclose()
    assert clock.pending() == 0
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.advance(10)
    assert log == []


async def test_system_clock_runs_scheduled_work() -> None:
    clock = SystemClock()
    done = asyncio.Event()

    async def fn() -> None:
        done.set()

    clock.schedule(0, fn)
    await done.wait()
    assert clock.utcnow().tzinfo is UTC
    await clock.aclose()


async def test_system_clock_logs_failures(caplog: pytest.LogCaptureFixture) -> None:
    clock = SystemClock()
    ran = asyncio.Event()

    async def boom() -> None:
        ran.set()
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="dialer.clock"):
        clock.schedule(0, boom)
        await ran.wait()
        for _ in range(5):
            await asyncio.sleep(0)
    assert "scheduled task failed" in caplog.text
    assert "boom" in caplog.text
    await clock.aclose()


async def test_system_clock_aclose_cancels_timers_and_running_tasks() -> None:
    clock = SystemClock()
    started = asyncio.Event()
    ran_late: list[bool] = []
    cancelled: list[bool] = []

    async def late() -> None:
        ran_late.append(True)

    async def hangs() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    clock.schedule(3600, late)
    clock.schedule(0, hangs)
    await started.wait()
    await clock.aclose()
    assert cancelled == [True]
    assert ran_late == []


async def test_system_handle_cancel_before_it_fires() -> None:
    clock = SystemClock()
    ran: list[bool] = []

    async def fn() -> None:
        ran.append(True)

    clock.schedule(0, fn).cancel()
    marker = asyncio.Event()

    async def mark() -> None:
        marker.set()

    clock.schedule(0, mark)
    await marker.wait()
    await clock.aclose()
    assert ran == []


async def test_concurrent_clock_runs_items_due_at_one_instant_side_by_side() -> None:
    """Two items due together, the first waiting for the second: one after the other they
    would never finish; side by side (as the system clock runs them) both do. Items due later
    still wait for their time."""
    clock = FakeClock(start=0.0, concurrent=True)
    second_ran = asyncio.Event()
    log: list[tuple[str, float]] = []

    async def first() -> None:
        await second_ran.wait()
        log.append(("first", clock.now()))

    async def second() -> None:
        second_ran.set()
        log.append(("second", clock.now()))

    clock.schedule(1, first)
    clock.schedule(1, second)
    clock.schedule(2, recorder(clock, log, "later"))
    cancelled = clock.schedule(1, recorder(clock, log, "cancelled"))
    cancelled.cancel()
    await asyncio.wait_for(clock.advance(5), timeout=5)
    assert log == [("second", 1.0), ("first", 1.0), ("later", 2.0)]
    assert clock.pending() == 0
