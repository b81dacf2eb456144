"""The checks themselves: each one sees the fault it is for (so a clean run means something)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.faults import checks
from tests.faults.checks import AgentRow, AttemptRow, LeadRow, Observed

SEQUENCE = [{"channel": "voice", "max_attempts": 2}, {"channel": "email"}]


def attempt(id: int, lead: int, step: int, try_no: int, status: str, **kw: Any) -> AttemptRow:
    fields: dict[str, Any] = {
        "channel": "voice" if step == 0 else "email",
        "idem_key": f"c:{lead}:{step}:{try_no}:{id}",
        "carrier_id": f"CA{id}" if step == 0 else f"m{id}",
        "answered_by": None,
        "answered": False,
        "rang": False,
        "abandoned": False,
        "error": None,
        "ended_at": 100.0,
        "history": [{"status": status, "at": 100.0}],
    } | kw
    return AttemptRow(id, lead, step, try_no, status=status, **fields)


def call(attempt_id: int, status: str = "completed", created_at: float = 99.0) -> dict[str, Any]:
    history = ["queued", "initiated", "ringing"] + (
        ["in-progress"] if status == "completed" else []
    )
    return {
        "sid": f"CA{attempt_id}-{created_at}",
        "attempt": str(attempt_id),
        "agent_leg": False,
        "status": status,
        "history": [*history, status],
        "created_at": created_at,
    }


def observed(
    attempts: list[AttemptRow],
    leads: list[LeadRow],
    carrier: list[dict[str, Any]] | None,
    stats: dict[str, Any] | None = None,
    **kw: Any,
) -> Observed:
    base: dict[str, Any] = {
        "campaign_id": "c1",
        "state": "completed",
        "sequence": SEQUENCE,
        "terminated": False,
        "agents": [],
        "event_types": Counter(),
    } | kw
    o = Observed(leads=leads, attempts=attempts, carrier=carrier, stats={}, **base)
    o.stats = stats if stats is not None else _stats_of(o)
    return o


def _stats_of(o: Observed) -> dict[str, Any]:
    """Stats that agree with the rows and the record (so only the fault under test shows)."""
    figures = checks._figures_from_rows(o)
    out: dict[str, Any] = {"calls": {}, "emails": {}, "leads": {}}
    for name, value in figures.items():
        group, _, key = name.partition(".")
        out[group][key] = value
    return out


def answered(id: int, lead: int) -> AttemptRow:
    return attempt(id, lead, 0, 1, "completed", answered=True, rang=True, answered_by="human")


def test_a_clean_run_counts_nothing() -> None:
    o = observed(
        [answered(1, 1), attempt(2, 1, 1, 1, "sent")],
        [LeadRow(1, "completed", 2, 0, None)],
        [call(1)],
    )
    counts = checks.evaluate(o)
    assert counts.total() == 0, counts.report()


def test_each_check_sees_its_fault() -> None:
    o = observed(
        [
            answered(1, 1),
            attempt(2, 1, 1, 1, "sent"),
            attempt(3, 1, 1, 1, "sent"),  # the same try twice, and the email sent twice
            attempt(4, 2, 0, 1, "ringing"),  # still open
            attempt(
                5, 3, 0, 1, "failed", error="lost: the carrier's record died with its process"
            ),  # re-dialled after it was lost
            # Lead 4 moved on to its email with no call placed: carrier down, not a try.
            attempt(6, 4, 0, 1, "failed", error="carrier_unavailable", carrier_id=None),
            attempt(7, 4, 1, 1, "sent"),
        ],
        [
            LeadRow(1, "completed", 2, 0, None),
            LeadRow(2, "in_progress", 0, 0, None),
            LeadRow(3, "in_progress", 0, 1, None),
            LeadRow(4, "completed", 2, 0, None),
        ],
        [call(1), call(4, "ringing"), call(5, "no-answer"), call(5, "no-answer", 150.0)],
        state="stopping",
        terminated=True,
        agents=[AgentRow("a1", "on_call", "c1", 4), AgentRow("a2", "available", None, None)],
    )
    o.stats["calls"]["dialed"] -= 1  # /stats disagrees with the carrier
    counts = checks.evaluate(o)
    assert counts.numbers() == {
        "open_attempts": 1,
        "agents_stuck": 1,
        "not_stopped": 1,
        "stats_mismatch": 1,
        "duplicate_tries": 2,  # (lead 1, step 1, try 1) twice; lead 1's email delivered twice
        "redialled": 2,  # two calls for attempt 5; the second placed after it ended
        "advanced_by_outage": 1,
    }, counts.report()


def test_simulated_runs_are_checked_against_the_rows() -> None:
    lost = attempt(
        1,
        1,
        0,
        1,
        "failed",
        error="lost: the carrier's record died with its process",
        carrier_id=None,
    )
    o = observed([lost, attempt(2, 1, 0, 2, "busy", rang=True)], [], None)
    assert checks.evaluate(o).total() == 0  # a lost call counts as a try of the carrier's
    o.stats["calls"]["received"] = 2
    counts = checks.evaluate(o)
    assert counts.numbers()["stats_mismatch"] == 1 and "calls.received" in counts.details[0]
