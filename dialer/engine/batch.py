"""Group commit: many small writes of the engine in one transaction (docs/architecture.md §6.5).

Callers `put` an item and wait for its own result; one drainer task takes whatever has
queued up meanwhile and applies it in one go. Under load a transaction carries hundreds of
items; alone, an item is written at once (no timer, no waiting for company).

Nothing is dropped: an item's caller gets its result or the exception that kept it from
being written, and retries by its own rules (a carrier redelivers its callback, the reconciler
takes an attempt over). A batch that fails for another reason than the database being away
is applied again one item at a time, so a single bad item fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from dialer.store.db import unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 500  # items per transaction: bounds a transaction's locks and its statement sizes


class GroupCommit(Generic[T, R]):
    """`apply(items)` writes a batch in one transaction and returns one result per item."""

    def __init__(
        self,
        apply: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._apply = apply
        self._name = name
        self._max = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (for tests and benches)

    async def put(self, item: T) -> R:
        return (await self.put_many([item]))[0]

    async def put_many(self, items: Sequence[T]) -> list[R]:
        """Queue items together (they go in the same transaction, unless it is full) and
        wait for all their results; the first failure is raised once all are settled."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            fut: asyncio.Future[R] = loop.create_future()
            self._queue.append((item, fut))
            futures.append(fut)
        if futures and (self._drainer is None or self._drainer.done()):
            # Its own task: a caller cancelled (a webhook whose client hung up) must not
            # strand the batch the others wait on.
            self._drainer = asyncio.create_task(self._drain(), name=f"group-commit-{self._name}")
        # Cancelling the caller cancels its futures only, not the batch.
        done = await asyncio.gather(*futures, return_exceptions=True)
        for result in done:
            if isinstance(result, BaseException):
                raise result
        return done  # type: ignore[return-value]

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            await self._write(batch)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._apply(items)
        except Exception as exc:
            if len(batch) == 1 or unavailable(exc):
                for _, fut in batch:
                    _settle(fut, exc=exc)
                return
            log.warning(
                "group_commit.batch_failed",
                extra={"batch": self._name, "items": len(batch), "error": repr(exc)},
            )
            for one in batch:  # find the bad item: the others still get written
                await self._write([one])
            return
        except BaseException as exc:  # cancelled (the loop is shutting down): nobody waits on
            for _, fut in batch:
                _settle(fut, exc=exc)
            raise
        self.batches += 1
        for (_, fut), result in zip(batch, results, strict=True):
            _settle(fut, result=result)


def _settle(
    fut: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None
) -> None:
    if fut.done():  # its caller gave up waiting (cancelled): the write stands regardless
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)  # type: ignore[arg-type]
