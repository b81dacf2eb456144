"""Group commit (engine/batch.py, docs/architecture.md §6.5): what queues up while a batch is
being written goes in the next one, every caller gets its own result, a bad item fails
alone, and a database outage fails every caller of the batch (their senders retry)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import exc as sa_exc

from dialer.engine.batch import GroupCommit


class Writer:
    """An `apply` that records its batches; the first one waits at `gate` when it is set."""

    def __init__(self, *, fail_on: str | None = None, down: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail_on = fail_on
        self.down = down

    async def __call__(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        self.entered.set()
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        if self.down:
            raise sa_exc.TimeoutError("QueuePool limit reached, connection timed out")
        if self.fail_on in items:
            raise ValueError(f"cannot write {self.fail_on}")
        return [item.upper() for item in items]


async def test_items_queued_during_a_write_go_together_in_the_next() -> None:
    writer = Writer()
    gate = writer.gate = asyncio.Event()
    commit: GroupCommit[str, str] = GroupCommit(writer, name="test")
    first = asyncio.create_task(commit.put("a"))
    await writer.entered.wait()
    rest = [asyncio.create_task(commit.put(x)) for x in "bcde"]
    await asyncio.sleep(0)
    gate.set()
    assert await first == "A"
    assert [await t for t in rest] == ["B", "C", "D", "E"]
    assert writer.batches == [["a"], ["b", "c", "d", "e"]]
    assert commit.batches == 2


async def test_put_many_goes_in_one_transaction_capped_at_max_batch() -> None:
    writer = Writer()
    commit: GroupCommit[str, str] = GroupCommit(writer, name="test", max_batch=3)
    assert await commit.put_many(list("abcde")) == list("ABCDE")
    assert writer.batches == [["a", "b", "c"], ["d", "e"]]


async def test_a_bad_item_fails_alone_the_others_are_written() -> None:
    writer = Writer(fail_on="bad")
    commit: GroupCommit[str, str] = GroupCommit(writer, name="test")
    results = await asyncio.gather(
        *(commit.put(x) for x in ("a", "bad", "c")), return_exceptions=True
    )
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)
    # The batch, then each item on its own to find the bad one.
    assert writer.batches == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_a_database_outage_fails_every_caller_without_retrying_one_by_one() -> None:
    writer = Writer(down=True)
    commit: GroupCommit[str, str] = GroupCommit(writer, name="test")
    results = await asyncio.gather(*(commit.put(x) for x in "abc"), return_exceptions=True)
    assert all(isinstance(r, sa_exc.TimeoutError) for r in results)
    assert writer.batches == [["a", "b", "c"]]
    with pytest.raises(sa_exc.TimeoutError):
        await commit.put_many(["d", "e"])


async def test_a_caller_that_gives_up_does_not_strand_the_batch() -> None:
    writer = Writer()
    gate = writer.gate = asyncio.Event()
    commit: GroupCommit[str, str] = GroupCommit(writer, name="test")
    quitter = asyncio.create_task(commit.put("a"))
    stayer = asyncio.create_task(commit.put("b"))
    await writer.entered.wait()
    quitter.cancel()
    gate.set()
    assert await stayer == "B"
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert writer.batches == [["a", "b"]]  # written regardless of who still waits
