"""The do-not-call list: add or import, page, remove (docs/architecture.md §7.2).

Numbers are kept in E.164. The list is checked where it matters, at claim time: a lead whose
phone is listed is stopped with reason `dnc` instead of being dialled (engine/dispatch.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dialer.clock import Clock
from dialer.domain.contacts import ContactError, normalize_phone
from dialer.errors import NotFound, ValidationFailed
from dialer.store import dnc as store
from dialer.store.db import Database
from dialer.store.models import DoNotCall
from dialer.usecases.limits import text_problem

MAX_DNC_IMPORT = 100_000


@dataclass(slots=True)
class DncResult:
    added: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _phone_of(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ContactError("phone", "must be a string")
    return normalize_phone(raw)


class DncOps:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def add(
        self, phones: list[Any], *, reason: str | None = None, first_row: int = 1
    ) -> DncResult:
        """List numbers; bad ones are reported by row (`first_row` numbers the first) and the
        good ones kept. A number already listed is not added again (nor rejected)."""
        if len(phones) > MAX_DNC_IMPORT:
            raise ValidationFailed(
                f"at most {MAX_DNC_IMPORT} numbers per import",
                [{"field": "phones", "message": f"{len(phones)} numbers; split the file"}],
            )
        problem = None if reason is None else text_problem(reason, max_length=500)
        if problem:
            raise ValidationFailed(f"reason: {problem}", [{"field": "reason", "message": problem}])
        result = DncResult()
        good: dict[str, None] = {}  # insertion-ordered set
        for i, raw in enumerate(phones):
            try:
                good[_phone_of(raw)] = None
            except ContactError as exc:
                errors = [{"field": exc.field, "message": exc.message}]
                result.rejected.append({"row": first_row + i, "errors": errors})
        now = self.clock.now()
        async with self.db.begin() as conn:
            result.added = await store.add(conn, list(good), reason=reason, now=now)
        return result

    async def page(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[DoNotCall], str | None]:
        """Listed numbers in E.164 order; the cursor is the last number of the previous page."""
        limit = max(1, min(limit, 1000))
        async with self.db.reader() as s:
            items = await store.page(s, limit=limit + 1, after=cursor)
        more = len(items) > limit
        items = items[:limit]
        return items, (items[-1].phone if more and items else None)

    async def remove(self, phone: str) -> None:
        """Take a number off the list; NotFound if it is not on it."""
        try:
            number = normalize_phone(phone)
        except ContactError:
            raise NotFound(f"{phone!r} is not on the do-not-call list", {"phone": phone}) from None
        async with self.db.session() as s:
            if not await store.remove(s, number):
                raise NotFound(f"{number} is not on the do-not-call list", {"phone": number})
