"""What must hold after a fault, once the dialer recovered (issue 9; docs/architecture.md §15).

`observe()` reads the campaign's rows straight from the database, its `/stats` from the API
and the carrier's record (the fake Twilio's calls; the simulated carrier's record dies with
the process, so its runs are checked against the attempt rows). `evaluate()` turns that into
`Counts`, one number per property, 0 meaning it holds, with a line of detail per problem:

- `open_attempts`: attempts not in a final status (after lease + ring time have passed);
- `agents_stuck`: agents still `reserved`/`on_call` or holding a call, or still engaged with
  the campaign once it ended;
- `not_stopped`: the campaign did not reach `stopped` (after terminate) or `completed`;
- `stats_mismatch`: `/stats` figures that differ from the carrier's record (calls) or from
  the rows (emails, leads, and the calls of the simulated carrier);
- `duplicate_tries`: a (lead, step, try) or an idempotency key used twice, or one lead's
  step delivered twice (two `sent` emails, two calls answered and not by a machine);
- `redialled`: a second carrier call for one attempt, a call placed after its attempt was
  resolved, an attempt that came back to life after a final status;
- `advanced_by_outage`: a lead moved past a voice step without a carrier call having been
  answered (not by a machine) for it, nor `max_attempts` calls placed for it (an attempt that
  failed because the carrier was unreachable is not a try);
- `outage_unreported` (carrier-refusal runs only, `outage_reported`): no
  `campaign.channel_unavailable` event was recorded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlalchemy import select

from dialer.domain.states import ATTEMPT_FINAL
from dialer.store.db import Database
from dialer.store.models import Agent, Attempt, Campaign, Event, Lead
from tests.conftest import run_async
from tests.faults.rig import Rig

BUSY_AGENT = frozenset({"reserved", "on_call"})
TWILIO_FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# Seconds. Both sides stamp with this host's clock, but an attempt's end may come from the
# carrier's callback `Timestamp`, which Twilio gives in whole seconds.
REDIAL_TOLERANCE = 1.0
OUTAGE_EVENT = "campaign.channel_unavailable"


@dataclass
class Counts:
    open_attempts: int = 0
    agents_stuck: int = 0
    not_stopped: int = 0
    stats_mismatch: int = 0
    duplicate_tries: int = 0
    redialled: int = 0
    advanced_by_outage: int = 0
    details: list[str] = field(default_factory=list)

    def problem(self, name: str, detail: str, n: int = 1) -> None:
        setattr(self, name, getattr(self, name) + n)
        self.details.append(f"{name}: {detail}")

    def numbers(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}

    def total(self) -> int:
        return sum(self.numbers().values())

    def __iadd__(self, other: Counts) -> Counts:
        for name, value in other.numbers().items():
            setattr(self, name, getattr(self, name) + value)
        self.details.extend(other.details)
        return self

    def report(self) -> str:
        return "\n".join([str(self.numbers()), *self.details[:60]])


@dataclass(frozen=True)
class AttemptRow:
    id: int
    lead_id: int
    step: int
    try_no: int
    channel: str
    idem_key: str
    status: str
    carrier_id: str | None
    answered_by: str | None
    answered: bool
    rang: bool
    abandoned: bool
    error: str | None
    ended_at: float | None
    history: list[Any]


@dataclass(frozen=True)
class LeadRow:
    id: int
    status: str
    step: int
    tries: int
    stop_reason: str | None


@dataclass(frozen=True)
class AgentRow:
    id: str
    state: str
    campaign_id: str | None
    attempt_id: int | None


@dataclass
class Observed:
    campaign_id: str
    state: str
    sequence: list[dict[str, Any]]
    terminated: bool
    leads: list[LeadRow]
    attempts: list[AttemptRow]
    agents: list[AgentRow]
    event_types: Counter[str]
    stats: dict[str, Any]
    carrier: list[dict[str, Any]] | None  # the fake Twilio's calls; None: simulated


async def read_rows(db_url: str, campaign_id: str, agent_ids: list[str]) -> dict[str, Any]:
    db = Database(db_url)
    try:
        async with db.reader() as s:
            c = await s.get(Campaign, campaign_id)
            if c is None:
                raise LookupError(f"campaign {campaign_id} not in {db.dialect}")
            leads = (await s.scalars(select(Lead).where(Lead.campaign_id == campaign_id))).all()
            attempts = (
                await s.scalars(
                    select(Attempt).where(Attempt.campaign_id == campaign_id).order_by(Attempt.id)
                )
            ).all()
            agents = (await s.scalars(select(Agent).where(Agent.id.in_(agent_ids)))).all()
            types = (
                await s.scalars(select(Event.type).where(Event.campaign_id == campaign_id))
            ).all()
            return {
                "state": c.state,
                "sequence": list(c.config.get("sequence", [])),
                "leads": [LeadRow(x.id, x.status, x.step, x.tries, x.stop_reason) for x in leads],
                "attempts": [_attempt_row(a) for a in attempts],
                "agents": [AgentRow(a.id, a.state, a.campaign_id, a.attempt_id) for a in agents],
                "event_types": Counter(types),
            }
    finally:
        await db.aclose()


def _attempt_row(a: Attempt) -> AttemptRow:
    return AttemptRow(
        id=a.id,
        lead_id=a.lead_id,
        step=a.step,
        try_no=a.try_no,
        channel=a.channel,
        idem_key=a.idem_key,
        status=a.status,
        carrier_id=a.carrier_id,
        answered_by=a.answered_by,
        answered=a.answered_at is not None,
        rang=a.rang,
        abandoned=a.abandoned,
        error=a.error,
        ended_at=a.ended_at,
        history=list(a.history or []),
    )


def observe(rig: Rig, terminated: bool) -> Observed:
    """Everything the checks need, read once the run settled."""
    carrier = rig.carrier_calls()
    stats = rig.stats()
    rows = run_async(read_rows(rig.s.db_url, rig.campaign_id, rig.agent_ids))
    return Observed(
        campaign_id=rig.campaign_id,
        terminated=terminated,
        stats=stats,
        carrier=carrier,
        **rows,
    )


# -- the checks ------------------------------------------------------------------------------


def evaluate(o: Observed) -> Counts:
    counts = Counts()
    open_attempts(o, counts)
    agents_stuck(o, counts)
    not_stopped(o, counts)
    stats_mismatch(o, counts)
    duplicate_tries(o, counts)
    redialled(o, counts)
    advanced_by_outage(o, counts)
    return counts


def open_attempts(o: Observed, counts: Counts) -> None:
    for a in o.attempts:
        if a.status not in ATTEMPT_FINAL:
            counts.problem(
                "open_attempts",
                f"attempt {a.id} ({a.channel}, lead {a.lead_id} step {a.step} try {a.try_no}) "
                f"still {a.status}, carrier id {'set' if a.carrier_id else 'none'}",
            )


def agents_stuck(o: Observed, counts: Counts) -> None:
    ended = o.state in ("stopped", "completed", "cancelled")
    for agent in o.agents:
        engaged = ended and agent.campaign_id == o.campaign_id
        if agent.state in BUSY_AGENT or agent.attempt_id or engaged:
            counts.problem(
                "agents_stuck",
                f"agent {agent.id} {agent.state}, campaign {agent.campaign_id}, "
                f"attempt {agent.attempt_id}",
            )


def not_stopped(o: Observed, counts: Counts) -> None:
    wanted = {"stopped", "completed"} if o.terminated else {"completed"}
    if o.state not in wanted:
        counts.problem("not_stopped", f"campaign is {o.state}, wanted one of {sorted(wanted)}")


def _figures_from_rows(o: Observed) -> dict[str, int]:
    voice = [a for a in o.attempts if a.channel == "voice"]
    email = [a for a in o.attempts if a.channel == "email"]
    figures = {
        "emails.sent": sum(a.status in ("sent", "bounced") for a in email),
        "emails.failed": sum(a.status == "failed" for a in email),
        "emails.in_flight": sum(a.status not in ATTEMPT_FINAL for a in email),
    }
    leads = Counter(lead.status for lead in o.leads)
    for status in ("pending", "in_progress", "paused", "completed", "stopped", "skipped"):
        figures[f"leads.{status}"] = leads.get(status, 0)
    if o.carrier is None:
        figures |= {
            "calls.dialed": sum(a.carrier_id is not None for a in voice),
            "calls.received": sum(a.rang for a in voice),
            "calls.answered": sum(a.answered for a in voice),
            "calls.abandoned": sum(a.abandoned for a in voice),
            "calls.in_flight": sum(a.status not in ATTEMPT_FINAL for a in voice),
        }
    else:
        ours = {str(a.id) for a in voice}
        customers = [c for c in o.carrier if not c["agent_leg"] and c["attempt"] in ours]
        figures |= {
            "calls.dialed": len(customers),
            "calls.received": sum(
                "ringing" in c["history"] or "in-progress" in c["history"] for c in customers
            ),
            "calls.answered": sum("in-progress" in c["history"] for c in customers),
            "calls.in_flight": sum(c["status"] not in TWILIO_FINAL for c in customers),
        }
    return figures


def stats_mismatch(o: Observed, counts: Counts) -> None:
    source = "rows" if o.carrier is None else "carrier (calls) / rows"
    for name, expected in _figures_from_rows(o).items():
        group, _, key = name.partition(".")
        got = o.stats[group].get(key)
        if got != expected:
            counts.problem("stats_mismatch", f"{name}: /stats says {got}, {source} say {expected}")


def _delivered(a: AttemptRow) -> bool:
    if a.channel == "email":
        return a.status in ("sent", "bounced")
    # As the engine judges it (domain/timeline.py `judge`): answered, not by a machine.
    return a.status == "completed" and a.answered_by != "machine" and not a.abandoned


def duplicate_tries(o: Observed, counts: Counts) -> None:
    tries = Counter((a.lead_id, a.step, a.try_no) for a in o.attempts)
    for (lead, step, try_no), n in tries.items():
        if n > 1:
            counts.problem(
                "duplicate_tries", f"lead {lead} step {step} try {try_no}: {n} rows", n - 1
            )
    keys = Counter(a.idem_key for a in o.attempts)
    for n in keys.values():
        if n > 1:
            counts.problem("duplicate_tries", f"idempotency key used by {n} attempts", n - 1)
    delivered = Counter((a.lead_id, a.step) for a in o.attempts if _delivered(a))
    for (lead, step), n in delivered.items():
        if n > 1:
            counts.problem("duplicate_tries", f"lead {lead} step {step} delivered {n} times", n - 1)


def _calls_by_attempt(o: Observed) -> dict[str, list[dict[str, Any]]]:
    by_attempt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in o.carrier or []:
        if not call["agent_leg"] and call["attempt"] is not None:
            by_attempt[call["attempt"]].append(call)
    return by_attempt


def redialled(o: Observed, counts: Counts) -> None:
    for row in o.attempts:
        seen_final = False
        for entry in row.history:
            status = entry.get("status") if isinstance(entry, dict) else None
            if seen_final and status is not None and status not in ATTEMPT_FINAL:
                counts.problem("redialled", f"attempt {row.id} went back to {status} after a final")
                break
            seen_final = seen_final or status in ATTEMPT_FINAL
    if o.carrier is None:
        return
    attempts = {str(a.id): a for a in o.attempts}
    for attempt_id, calls in _calls_by_attempt(o).items():
        a = attempts.get(attempt_id)
        why = f" (error {a.error})" if a is not None and a.error else ""
        if len(calls) > 1:
            counts.problem(
                "redialled",
                f"attempt {attempt_id}{why}: {len(calls)} carrier calls",
                len(calls) - 1,
            )
        if a is not None and a.ended_at is not None:
            late = [c for c in calls if c["created_at"] > a.ended_at + REDIAL_TOLERANCE]
            if late:
                counts.problem(
                    "redialled",
                    f"attempt {attempt_id}{why}: {len(late)} call(s) placed after it ended "
                    f"({a.status})",
                    len(late),
                )


def _placed(o: Observed, a: AttemptRow, calls: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether a carrier call was placed for `a`: the fake's record says so; for the
    simulated carrier, a carrier id, or `lost` (its fate died with the process)."""
    if o.carrier is not None:
        return bool(calls.get(str(a.id)))
    return a.carrier_id is not None or (a.error or "").startswith("lost")


def advanced_by_outage(o: Observed, counts: Counts) -> None:
    calls = _calls_by_attempt(o)
    by_lead: dict[int, list[AttemptRow]] = defaultdict(list)
    for a in o.attempts:
        by_lead[a.lead_id].append(a)
    last_step = len(o.sequence) - 1
    for lead in o.leads:
        attempts = by_lead.get(lead.id, [])
        for v, step in enumerate(o.sequence):
            if step.get("channel") != "voice":
                continue
            past = (
                lead.step > v
                or any(a.step > v for a in attempts)
                or (v == last_step and lead.status == "completed" and lead.stop_reason is None)
            )
            if not past:
                continue
            mine = [a for a in attempts if a.step == v]
            placed = [a for a in mine if _placed(o, a, calls)]
            if any(_delivered(a) for a in placed):
                continue
            if len(placed) >= int(step.get("max_attempts", 3)):
                continue
            errors = Counter(a.error or a.status for a in mine if a not in placed)
            counts.problem(
                "advanced_by_outage",
                f"lead {lead.id} passed voice step {v} ({lead.status}, step {lead.step}, "
                f"tries {lead.tries}) with {len(placed)} call(s) placed of "
                f"{step.get('max_attempts', 3)}; not placed: {dict(errors)}",
            )


def outage_reported(o: Observed) -> int:
    """0 if the carrier outage was reported (a `campaign.channel_unavailable` event)."""
    return 0 if o.event_types.get(OUTAGE_EVENT, 0) else 1


def as_dict(counts: Counts) -> dict[str, Any]:
    out = asdict(counts)
    out.pop("details")
    return out
