from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dialer.domain.states import (
    AGENT_SELF_STATES,
    ATTEMPT_FINAL,
    ATTEMPT_LIVE,
    CAMPAIGN_TERMINAL,
    LEAD_DISPATCHABLE,
    LEAD_TERMINAL,
    AgentState,
    AttemptStatus,
    CampaignAction,
    CampaignState,
    InvalidTransition,
    LeadAction,
    LeadStatus,
    agent_transition,
    attempt_advances,
    campaign_transition,
    lead_transition,
)

C, CA = CampaignState, CampaignAction
L, LA = LeadStatus, LeadAction
A = AgentState
S = AttemptStatus

# --- campaign ------------------------------------------------------------------------------

# (state, action, dispatched) -> new state, for every transition the design allows.
CAMPAIGN_ALLOWED: dict[tuple[CampaignState, CampaignAction, bool], CampaignState] = {
    **{(C.DRAFT, CA.START, d): C.RUNNING for d in (False, True)},
    **{(C.SCHEDULED, CA.START, d): C.RUNNING for d in (False, True)},
    **{(C.DRAFT, CA.SCHEDULE, d): C.SCHEDULED for d in (False, True)},
    **{(C.SCHEDULED, CA.SCHEDULE, d): C.SCHEDULED for d in (False, True)},  # reschedule
    **{(C.RUNNING, CA.PAUSE, d): C.PAUSED for d in (False, True)},
    **{(C.PAUSED, CA.RESUME, d): C.RUNNING for d in (False, True)},
    **{(C.RUNNING, CA.COMPLETE, d): C.COMPLETED for d in (False, True)},
    **{(C.STOPPING, CA.DRAIN, d): C.STOPPED for d in (False, True)},
    # Terminate: never dispatched (or not yet started) -> cancelled; otherwise stopping.
    **{(C.DRAFT, CA.TERMINATE, d): C.CANCELLED for d in (False, True)},
    **{(C.SCHEDULED, CA.TERMINATE, d): C.CANCELLED for d in (False, True)},
    (C.RUNNING, CA.TERMINATE, False): C.CANCELLED,
    (C.PAUSED, CA.TERMINATE, False): C.CANCELLED,
    (C.RUNNING, CA.TERMINATE, True): C.STOPPING,
    (C.PAUSED, CA.TERMINATE, True): C.STOPPING,
}
# Repeating the current state is a no-op (None), not an error.
CAMPAIGN_NOOP = {
    (C.RUNNING, CA.START),
    (C.PAUSED, CA.PAUSE),
    (C.RUNNING, CA.RESUME),
    (C.STOPPING, CA.TERMINATE),
    (C.STOPPED, CA.TERMINATE),
    (C.CANCELLED, CA.TERMINATE),
}
CAMPAIGN_CASES = list(itertools.product(CampaignState, CampaignAction, (False, True)))


@pytest.mark.parametrize(("state", "action", "dispatched"), CAMPAIGN_CASES)
def test_campaign_transition_table(
    state: CampaignState, action: CampaignAction, dispatched: bool
) -> None:
    """Every (state, action) pair: allowed, no-op or rejected with the current state."""
    if (state, action, dispatched) in CAMPAIGN_ALLOWED:
        expected = CAMPAIGN_ALLOWED[(state, action, dispatched)]
        assert campaign_transition(state, action, dispatched=dispatched) is expected
    elif (state, action) in CAMPAIGN_NOOP:
        assert campaign_transition(state, action, dispatched=dispatched) is None
    else:
        with pytest.raises(InvalidTransition) as info:
            campaign_transition(state, action, dispatched=dispatched)
        assert (info.value.entity, info.value.state, info.value.action) == (
            "campaign",
            state,
            action,
        )
        assert str(state) in str(info.value)


@pytest.mark.parametrize(
    ("state", "action", "dispatched"),
    [c for c in CAMPAIGN_CASES if c[0] in CAMPAIGN_TERMINAL],
)
def test_terminal_campaign_has_no_way_out(
    state: CampaignState, action: CampaignAction, dispatched: bool
) -> None:
    try:
        assert campaign_transition(state, action, dispatched=dispatched) is None
    except InvalidTransition as err:
        assert err.state is state


def test_pause_and_resume_are_not_terminate() -> None:
    # Terminate is its own path: pause/resume never lead to stopping or cancelled.
    for state, action in itertools.product(CampaignState, (CA.PAUSE, CA.RESUME)):
        try:
            new = campaign_transition(state, action, dispatched=True)
        except InvalidTransition:
            continue
        assert new not in (C.STOPPING, C.STOPPED, C.CANCELLED)


# --- lead ----------------------------------------------------------------------------------

LEAD_ALLOWED: dict[tuple[LeadStatus, LeadAction], LeadStatus] = {
    (L.PENDING, LA.DISPATCH): L.IN_PROGRESS,
    (L.IN_PROGRESS, LA.DISPATCH): L.IN_PROGRESS,  # the next step of a lead in progress
    (L.IN_PROGRESS, LA.PAUSE): L.PAUSED,
    (L.PAUSED, LA.RESUME): L.IN_PROGRESS,
    (L.PENDING, LA.STOP): L.STOPPED,
    (L.IN_PROGRESS, LA.STOP): L.STOPPED,
    (L.PAUSED, LA.STOP): L.STOPPED,
    (L.PENDING, LA.SKIP): L.SKIPPED,
    (L.PENDING, LA.COMPLETE): L.COMPLETED,
    (L.IN_PROGRESS, LA.COMPLETE): L.COMPLETED,
    (L.PAUSED, LA.COMPLETE): L.COMPLETED,
}
LEAD_NOOP = {
    (L.PAUSED, LA.PAUSE),
    (L.IN_PROGRESS, LA.RESUME),
    (L.STOPPED, LA.STOP),
    (L.SKIPPED, LA.SKIP),
    (L.COMPLETED, LA.COMPLETE),
}


@pytest.mark.parametrize(("status", "action"), list(itertools.product(LeadStatus, LeadAction)))
def test_lead_transition_table(status: LeadStatus, action: LeadAction) -> None:
    if (status, action) in LEAD_ALLOWED:
        assert lead_transition(status, action) is LEAD_ALLOWED[(status, action)]
    elif (status, action) in LEAD_NOOP:
        assert lead_transition(status, action) is None
    else:
        with pytest.raises(InvalidTransition) as info:
            lead_transition(status, action)
        assert (info.value.entity, info.value.state) == ("lead", status)


@pytest.mark.parametrize(
    ("status", "action"), list(itertools.product(sorted(LEAD_TERMINAL), LeadAction))
)
def test_terminal_lead_has_no_way_out(status: LeadStatus, action: LeadAction) -> None:
    try:
        assert lead_transition(status, action) is None
    except InvalidTransition as err:
        assert err.state is status


def test_lead_pause_only_from_in_progress_and_skip_only_from_pending() -> None:
    assert {s for s in LeadStatus if (s, LA.PAUSE) in LEAD_ALLOWED} == {L.IN_PROGRESS}
    assert {s for s in LeadStatus if (s, LA.SKIP) in LEAD_ALLOWED} == {L.PENDING}
    assert {s for (s, a) in LEAD_ALLOWED if a is LA.DISPATCH} == set(LEAD_DISPATCHABLE)


# --- attempt -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (S.CREATED, S.QUEUED, True),
        (S.QUEUED, S.RINGING, True),
        (S.INITIATED, S.RINGING, True),
        (S.RINGING, S.IN_PROGRESS, True),
        (S.IN_PROGRESS, S.COMPLETED, True),
        (S.RINGING, S.NO_ANSWER, True),
        (S.QUEUED, S.CANCELED, True),
        (S.CREATED, S.SENT, True),
        (S.SENT, S.BOUNCED, True),  # a bounce arrives after the send
        # late or duplicated reports are no-ops
        (S.RINGING, S.RINGING, False),
        (S.RINGING, S.INITIATED, False),
        (S.IN_PROGRESS, S.RINGING, False),
        (S.COMPLETED, S.IN_PROGRESS, False),
        (S.COMPLETED, S.COMPLETED, False),
        (S.COMPLETED, S.FAILED, False),
        (S.BUSY, S.COMPLETED, False),
        (S.BOUNCED, S.SENT, False),
        (S.CANCELED, S.RINGING, False),
        (S.SKIPPED, S.SENT, False),
    ],
)
def test_attempt_advances(current: AttemptStatus, new: AttemptStatus, expected: bool) -> None:
    assert attempt_advances(current, new) is expected


@pytest.mark.parametrize(("current", "new"), list(itertools.product(AttemptStatus, AttemptStatus)))
def test_attempt_status_only_moves_forward(current: AttemptStatus, new: AttemptStatus) -> None:
    advances = attempt_advances(current, new)
    if advances:
        assert not attempt_advances(new, current)  # never back
    if current in ATTEMPT_FINAL and (current, new) != (S.SENT, S.BOUNCED):
        assert not advances  # finals are final
    if current in ATTEMPT_LIVE and new in ATTEMPT_FINAL:
        assert advances


def test_attempt_statuses_partition() -> None:
    assert ATTEMPT_LIVE.isdisjoint(ATTEMPT_FINAL)
    assert ATTEMPT_LIVE | ATTEMPT_FINAL == set(AttemptStatus)


# --- agent ---------------------------------------------------------------------------------

AGENT_ALLOWED = {
    (A.OFFLINE, A.AVAILABLE),
    (A.AVAILABLE, A.OFFLINE),
    (A.AVAILABLE, A.BREAK),
    (A.BREAK, A.AVAILABLE),
    (A.BREAK, A.OFFLINE),
    (A.AVAILABLE, A.RESERVED),
    (A.RESERVED, A.AVAILABLE),  # released (pause) or reservation expired
    (A.RESERVED, A.ON_CALL),
    (A.ON_CALL, A.WRAP_UP),
    (A.WRAP_UP, A.AVAILABLE),
    (A.WRAP_UP, A.BREAK),
    (A.WRAP_UP, A.OFFLINE),
}


@pytest.mark.parametrize(("state", "to"), list(itertools.product(AgentState, AgentState)))
def test_agent_transition_table(state: AgentState, to: AgentState) -> None:
    if state == to:
        assert agent_transition(state, to) is None
    elif (state, to) in AGENT_ALLOWED:
        assert agent_transition(state, to) is to
    else:
        with pytest.raises(InvalidTransition) as info:
            agent_transition(state, to)
        assert (info.value.entity, info.value.state) == ("agent", state)


def test_agent_cannot_pick_call_states_itself() -> None:
    assert {A.AVAILABLE, A.OFFLINE, A.BREAK} == AGENT_SELF_STATES
    assert not AGENT_SELF_STATES & {A.RESERVED, A.ON_CALL, A.WRAP_UP}


# --- a campaign, its leads and agents, driven at random ------------------------------------

N_LEADS = 4
N_AGENTS = 3
leads = st.integers(0, N_LEADS - 1)
agents = st.integers(0, N_AGENTS - 1)


class CampaignMachine(RuleBasedStateMachine):
    """Control actions in any order never let work out while paused or after the end."""

    def __init__(self) -> None:
        super().__init__()
        self.state = C.DRAFT
        self.dispatched = False
        self.leads = [L.PENDING] * N_LEADS
        self.agents = [A.OFFLINE] * N_AGENTS
        self.dispatches: Counter[CampaignState] = Counter()
        self.final_state: CampaignState | None = None
        self.final_leads: dict[int, LeadStatus] = {}

    @rule(action=st.sampled_from(CampaignAction))
    def campaign_action(self, action: CampaignAction) -> None:
        try:
            new = campaign_transition(self.state, action, dispatched=self.dispatched)
        except InvalidTransition as err:
            assert err.state is self.state
            return
        if new is None:
            return
        self.state = new
        if new is not C.RUNNING:
            # What the service does on pause/terminate: release reserved agents at once.
            for i, agent in enumerate(self.agents):
                if agent is A.RESERVED:
                    assert agent_transition(agent, A.AVAILABLE) is A.AVAILABLE
                    self.agents[i] = A.AVAILABLE

    @rule(i=leads, action=st.sampled_from([a for a in LeadAction if a is not LA.DISPATCH]))
    def lead_action(self, i: int, action: LeadAction) -> None:
        try:
            new = lead_transition(self.leads[i], action)
        except InvalidTransition as err:
            assert err.state is self.leads[i]
            return
        if new is not None:
            self.leads[i] = new

    @rule(i=leads)
    def dispatch(self, i: int) -> None:
        """The engine's claim: a running campaign and a dispatchable lead, nothing else."""
        status = self.leads[i]
        if self.state is not C.RUNNING:
            return
        try:
            new = lead_transition(status, LA.DISPATCH)
        except InvalidTransition:
            assert status not in LEAD_DISPATCHABLE
            return
        assert status in LEAD_DISPATCHABLE
        assert new is L.IN_PROGRESS
        self.leads[i] = new
        self.dispatched = True
        self.dispatches[self.state] += 1

    @rule(i=agents, to=st.sampled_from(AgentState))
    def agent_move(self, i: int, to: AgentState) -> None:
        if to is A.RESERVED and self.state is not C.RUNNING:
            return  # only a running campaign reserves agents
        try:
            new = agent_transition(self.agents[i], to)
        except InvalidTransition as err:
            assert err.state is self.agents[i]
            return
        if new is not None:
            self.agents[i] = new

    @precondition(lambda self: self.state is C.STOPPING)
    @rule()
    def drain(self) -> None:
        assert campaign_transition(self.state, CA.DRAIN) is C.STOPPED
        self.state = C.STOPPED

    @invariant()
    def no_dispatch_unless_running(self) -> None:
        assert set(self.dispatches) <= {C.RUNNING}

    @invariant()
    def never_dispatched_before_start(self) -> None:
        if self.state in (C.DRAFT, C.SCHEDULED):
            assert not self.dispatched
        if self.state is C.CANCELLED:
            assert not self.dispatched  # a campaign that dispatched is stopped, not cancelled

    @invariant()
    def terminal_is_terminal(self) -> None:
        if self.final_state is not None:
            assert self.state is self.final_state
        elif self.state in CAMPAIGN_TERMINAL:
            self.final_state = self.state

    @invariant()
    def lead_terminal_is_terminal(self) -> None:
        for i, status in enumerate(self.leads):
            if i in self.final_leads:
                assert status is self.final_leads[i]
            elif status in LEAD_TERMINAL:
                self.final_leads[i] = status

    @invariant()
    def lead_counts_are_conserved(self) -> None:
        counts = Counter(self.leads)
        assert sum(counts.values()) == N_LEADS
        assert set(counts) <= set(LeadStatus)

    @invariant()
    def no_agent_held_unless_running(self) -> None:
        if self.state is not C.RUNNING:
            assert A.RESERVED not in self.agents


CampaignMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40)
test_campaign_machine = CampaignMachine.TestCase
