"""An email step whose tries run out on soft failures (a 4xx, a soft bounce): by default the
lead stops `failed` and no follow-up goes to an address that never got the step; a step with
`"on_exhausted": "next"` goes on (docs/architecture.md §9.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dialer.channels.base import ChannelError, EmailMessage
from dialer.store.models import Attempt, Lead
from tests.harness import ADMIN, harness, leads


@pytest.mark.parametrize(
    ("on_exhausted", "status", "stop_reason", "subjects"),
    [
        ("stop", "stopped", "failed", set()),
        ("next", "completed", None, {"Second"}),
    ],
)
async def test_soft_failures_to_exhaustion_stop_the_lead_unless_the_step_goes_on(
    db_url: str,
    tmp_path: Path,
    on_exhausted: str,
    status: str,
    stop_reason: str | None,
    subjects: set[str],
) -> None:
    async with harness(db_url, tmp_path) as h:
        first = {"channel": "email", "subject": "First", "body": "One", "max_attempts": 2}
        c = await h.campaign(
            sequence=[
                {**first, "retry_delay_seconds": 0, "on_exhausted": on_exhausted},
                {"channel": "email", "subject": "Second", "body": "Two", "delay_seconds": 0},
            ],
            caller_ids=[],
        )
        await h.service.leads.add(c.id, leads(1))
        # The mail server refuses the first step's messages with a 4xx, whatever the try.
        refused = h.email.send

        async def send(message: EmailMessage) -> str:
            if message.subject == "First":
                raise ChannelError("451 try again later", retryable=True)
            return await refused(message)

        h.email.send = send  # type: ignore[method-assign]
        await h.service.start(c.id, actor=ADMIN)
        for _ in range(6):
            await h.tick()
            await h.clock.advance(1)
        async with h.rt.db.reader() as s:
            lead = (await s.scalars(select(Lead))).one()
            tries = (await s.scalars(select(Attempt).where(Attempt.step == 0))).all()
        assert (lead.status, lead.stop_reason) == (status, stop_reason)
        assert [a.status for a in tries] == ["failed", "failed"]
        box = tmp_path / "maildir" / "new"
        mails = list(box.iterdir()) if box.exists() else []
        sent = {p.read_text().split("Subject: ", 1)[1].split("\n", 1)[0] for p in mails}
        assert sent == subjects
