"""The lifecycle owners (engine/leads.py, engine/attempts.py, agents/pool.py `move`) apply
the domain tables (domain/states.py): what they refuse, log or raise, is what the tables
refuse."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from dialer.agents import pool
from dialer.domain.states import (
    AgentState,
    AttemptStatus,
    InvalidTransition,
    LeadAction,
    LeadStatus,
    StopReason,
)
from dialer.engine import attempts, leads
from dialer.store import attempts as attempt_store
from dialer.store.db import DbSession
from dialer.store.models import Agent, Lead


class Recorder:
    """Stands in for the session: the lifecycle only records events in it (in its `info`,
    written before the session flushes, store/events.py)."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    @property
    def added(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.info.get("dialer.pending_events", []))


def session() -> tuple[DbSession, Recorder]:
    rec = Recorder()
    return cast(DbSession, rec), rec


def lead(status: LeadStatus, **kw: Any) -> Lead:
    return Lead(id=7, campaign_id="c1", status=status, step=0, tries=0, seq=1, due=0.0, **kw)


def test_lead_transition_records_the_move_and_refuses_what_the_table_refuses() -> None:
    s, rec = session()
    ld = lead(LeadStatus.PENDING)
    assert leads.transition(s, ld, LeadAction.DISPATCH, 5.0, reason="dispatch")
    assert ld.status == LeadStatus.IN_PROGRESS and ld.updated_at == 5.0
    [ev] = rec.added
    assert (ev["type"], ev["from_state"], ev["to_state"]) == (
        "lead.state",
        "pending",
        "in_progress",
    )
    assert (ev["entity_id"], ev["campaign_id"], ev["at"]) == ("7", "c1", 5.0)
    assert not leads.transition(s, ld, LeadAction.DISPATCH, 6.0)  # a repeat: no event
    assert len(rec.added) == 1
    with pytest.raises(InvalidTransition):
        leads.transition(s, ld, LeadAction.SKIP, 7.0)
    assert ld.status == LeadStatus.IN_PROGRESS


def test_engine_moves_that_the_table_refuses_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    s, _ = session()
    ld = lead(LeadStatus.SKIPPED)
    with caplog.at_level(logging.WARNING):
        assert not leads.engine_transition(s, ld, LeadAction.COMPLETE, 1.0, reason="done")
    assert ld.status == LeadStatus.SKIPPED
    assert [r.getMessage() for r in caplog.records] == ["lead.transition_refused"]
    caplog.clear()  # the autouse check of this package looks for exactly these


def test_undispatch_gives_the_claim_back_but_keeps_a_pause_made_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s, _ = session()
    claimed = lead(LeadStatus.IN_PROGRESS, active_attempt_id=3, lease_owner="w1", lease_until=9.0)
    leads.undispatched(s, claimed, 3, LeadStatus.PENDING, 1.0)
    assert claimed.status == LeadStatus.PENDING
    assert (claimed.active_attempt_id, claimed.lease_owner, claimed.seq) == (None, None, 0)

    paused = lead(LeadStatus.PAUSED, active_attempt_id=3)
    with caplog.at_level(logging.WARNING):
        leads.undispatched(s, paused, 3, LeadStatus.PENDING, 1.0)
    assert paused.status == LeadStatus.PAUSED and paused.active_attempt_id is None
    caplog.clear()

    other = lead(LeadStatus.IN_PROGRESS, active_attempt_id=4)
    leads.undispatched(s, other, 3, LeadStatus.PENDING, 1.0)  # not this attempt's lead now
    assert (other.status, other.active_attempt_id, other.seq) == (LeadStatus.IN_PROGRESS, 4, 1)


def test_stop_keeps_the_first_reason() -> None:
    s, _ = session()
    ld = lead(LeadStatus.IN_PROGRESS)
    leads.stop(s, ld, StopReason.UNSUBSCRIBED, 1.0)
    leads.stop(s, ld, StopReason.BOUNCED, 2.0)
    assert (ld.status, ld.stop_reason) == (LeadStatus.STOPPED, StopReason.UNSUBSCRIBED)


def test_attempt_status_only_moves_forward() -> None:
    a = attempt_store.new(
        campaign_id="c1",
        campaign_version=1,
        lead_id=7,
        step=0,
        try_no=1,
        channel="voice",  # type: ignore[arg-type]
        idem_key="c1:7:0:1",
        status=AttemptStatus.CREATED,
        now=1.0,
    )
    assert attempts.set_status(a, AttemptStatus.RINGING, 2.0, 2.5)
    assert not attempts.set_status(a, AttemptStatus.QUEUED, 1.5, 3.0)  # late
    assert attempts.set_status(a, AttemptStatus.COMPLETED, 4.0, 4.5)
    assert not attempts.set_status(a, AttemptStatus.COMPLETED, 4.0, 5.0)  # duplicate
    assert a.status == AttemptStatus.COMPLETED and a.updated_at == 4.5
    assert [h["status"] for h in a.history] == ["created", "ringing", "completed"]


def test_agent_moves_check_the_engine_table_or_the_agents_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s, _ = session()
    agent = Agent(id="a1", name="A", state=AgentState.AVAILABLE, version=1, state_since=0.0)
    assert pool.move(s, agent, AgentState.ON_CALL, 1.0, "call bridged")  # the engine may
    assert agent.version == 2
    with pytest.raises(InvalidTransition):  # the agent may not leave a call itself
        pool.move(s, agent, AgentState.AVAILABLE, 2.0, None, actor="agent:a1", engine=False)
    with caplog.at_level(logging.WARNING):
        assert not pool.move(s, agent, AgentState.BREAK, 3.0, "?")  # never the engine's move
    assert agent.state == AgentState.ON_CALL
    assert [r.getMessage() for r in caplog.records] == ["agent.transition_refused"]
    caplog.clear()
