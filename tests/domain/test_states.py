from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dialer.domain.states import (
    AGENT_ENGINE_MOVES,
    AGENT_FORCE_TARGETS,
    AGENT_FREE,
    AGENT_SELF_MOVES,
    AGENT_SELF_STATES,
    ATTEMPT_ANSWERED,
    ATTEMPT_DIALING,
    ATTEMPT_FINAL,
    ATTEMPT_LIVE,
    ATTEMPT_RINGING,
    ATTEMPT_UNANSWERED_END,
    CAMPAIGN_MOVES,
    CAMPAIGN_NOOP,
    CAMPAIGN_TERMINAL,
    LEAD_DISPATCHABLE,
    LEAD_MOVES,
    LEAD_NOOP,
    LEAD_OPEN,
    LEAD_TERMINAL,
    AgentState,
    AttemptStatus,
    CampaignAction,
    CampaignState,
    InvalidTransition,
    LeadAction,
    LeadStatus,
    agent_force,
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

CAMPAIGN_CASES = list(itertools.product(CampaignState, CampaignAction, (False, True)))


def terminate_expected(state: CampaignState, dispatched: bool) -> CampaignState | None:
    """Terminate: a campaign that never dispatched (or never started) is cancelled; one
    that did is stopped, through stopping; a terminated one stays as it is."""
    if state in CAMPAIGN_NOOP[CA.TERMINATE]:
        return None
    if state in (C.DRAFT, C.SCHEDULED) or (state in (C.RUNNING, C.PAUSED) and not dispatched):
        return C.CANCELLED
    return C.STOPPING


@pytest.mark.parametrize(("state", "action", "dispatched"), CAMPAIGN_CASES)
def test_campaign_transition_follows_the_table(
    state: CampaignState, action: CampaignAction, dispatched: bool
) -> None:
    """Every (state, action) pair: allowed (the table), no-op or rejected with the state."""
    if action is CA.TERMINATE and state is not C.COMPLETED:
        expected = terminate_expected(state, dispatched)
        assert campaign_transition(state, action, dispatched=dispatched) is expected
    elif (state, action) in CAMPAIGN_MOVES:
        expected = CAMPAIGN_MOVES[(state, action)]
        assert campaign_transition(state, action, dispatched=dispatched) is expected
    elif state in CAMPAIGN_NOOP.get(action, frozenset()):
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


def test_campaign_table_rules() -> None:
    """The rules of the design (docs/architecture.md, state machines) that the table holds."""
    sources = {a: {s for (s, act) in CAMPAIGN_MOVES if act is a} for a in CampaignAction}
    assert sources[CA.PAUSE] == {C.RUNNING, C.SCHEDULED}  # a scheduled start can be held
    assert sources[CA.RESUME] == {C.PAUSED}
    assert sources[CA.START] == {C.DRAFT, C.SCHEDULED}
    assert sources[CA.COMPLETE] == {C.RUNNING}
    assert sources[CA.DRAIN] == {C.STOPPING}
    assert not sources[CA.TERMINATE]  # resolved by terminate_target
    assert not {s for (s, _) in CAMPAIGN_MOVES} & CAMPAIGN_TERMINAL
    for (state, _), target in CAMPAIGN_MOVES.items():
        assert target is not state or target is C.SCHEDULED  # a reschedule


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


@pytest.mark.parametrize(("status", "action"), list(itertools.product(LeadStatus, LeadAction)))
def test_lead_transition_follows_the_table(status: LeadStatus, action: LeadAction) -> None:
    if (status, action) in LEAD_MOVES:
        assert lead_transition(status, action) is LEAD_MOVES[(status, action)]
    elif status in LEAD_NOOP.get(action, frozenset()):
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


def test_lead_table_rules() -> None:
    sources = {a: {s for (s, act) in LEAD_MOVES if act is a} for a in LeadAction}
    assert sources[LA.PAUSE] == {L.IN_PROGRESS}
    assert sources[LA.SKIP] == {L.PENDING}
    assert sources[LA.DISPATCH] == set(LEAD_DISPATCHABLE)
    assert sources[LA.STOP] == sources[LA.COMPLETE] == set(LEAD_OPEN)
    # Only the engine gives a claimed lead back, when its attempt never reached a channel.
    assert {k: v for k, v in LEAD_MOVES.items() if k[1] is LA.UNDISPATCH} == {
        (L.IN_PROGRESS, LA.UNDISPATCH): L.PENDING
    }
    assert not {s for (s, _) in LEAD_MOVES} & LEAD_TERMINAL
    assert LEAD_OPEN | LEAD_TERMINAL == set(LeadStatus)
    assert LEAD_OPEN.isdisjoint(LEAD_TERMINAL)


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
    assert ATTEMPT_RINGING < ATTEMPT_DIALING < ATTEMPT_LIVE
    assert ATTEMPT_LIVE - ATTEMPT_DIALING == {S.IN_PROGRESS}
    assert ATTEMPT_UNANSWERED_END < ATTEMPT_FINAL
    assert ATTEMPT_ANSWERED.isdisjoint(ATTEMPT_UNANSWERED_END | ATTEMPT_DIALING)


# --- agent ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "to", "engine"), list(itertools.product(AgentState, AgentState, (False, True)))
)
def test_agent_transition_follows_the_table(
    state: AgentState, to: AgentState, engine: bool
) -> None:
    moves = AGENT_ENGINE_MOVES if engine else AGENT_SELF_MOVES
    if state == to:
        assert agent_transition(state, to, engine=engine) is None
    elif (state, to) in moves:
        assert agent_transition(state, to, engine=engine) is to
    else:
        with pytest.raises(InvalidTransition) as info:
            agent_transition(state, to, engine=engine)
        assert (info.value.entity, info.value.state) == ("agent", state)


def test_agent_table_rules() -> None:
    # An agent asks only for available, offline or break, never from a call.
    assert {to for (_, to) in AGENT_SELF_MOVES} == set(AGENT_SELF_STATES)
    assert A.ON_CALL not in {s for (s, _) in AGENT_SELF_MOVES}
    # The engine never sends an agent offline or on a break, and bridges only free agents.
    assert not {to for (_, to) in AGENT_ENGINE_MOVES} & {A.OFFLINE, A.BREAK}
    assert {s for (s, to) in AGENT_ENGINE_MOVES if to is A.ON_CALL} == set(AGENT_FREE)
    # A call ends in wrap-up or, without one, available; only the engine ends it.
    assert {to for (s, to) in AGENT_ENGINE_MOVES if s is A.ON_CALL} == {A.WRAP_UP, A.AVAILABLE}
    # Every state is left somehow.
    assert {s for (s, _) in AGENT_SELF_MOVES | AGENT_ENGINE_MOVES} == set(AgentState)


def test_agent_cannot_pick_call_states_itself() -> None:
    assert {A.AVAILABLE, A.OFFLINE, A.BREAK} == AGENT_SELF_STATES
    assert not AGENT_SELF_STATES & {A.RESERVED, A.ON_CALL, A.WRAP_UP}


@pytest.mark.parametrize(("state", "to"), list(itertools.product(AgentState, AgentState)))
def test_agent_force_reaches_its_targets_from_anywhere(state: AgentState, to: AgentState) -> None:
    """A supervisor's override goes to offline or available from every state (even those
    no table leaves to it: on_call, reserved), and to nothing else."""
    if to not in AGENT_FORCE_TARGETS:
        with pytest.raises(InvalidTransition) as info:
            agent_force(state, to)
        assert (info.value.entity, info.value.state) == ("agent", state)
    elif state == to:
        assert agent_force(state, to) is None
    else:
        assert agent_force(state, to) is to


def test_agent_force_is_the_only_way_out_of_a_stuck_call() -> None:
    assert {A.OFFLINE, A.AVAILABLE} == AGENT_FORCE_TARGETS
    # Neither the agent nor anyone but the engine can take an agent off a call or a hold
    # to offline: only the force does.
    for stuck in (A.ON_CALL, A.RESERVED):
        assert (stuck, A.OFFLINE) not in AGENT_SELF_MOVES | AGENT_ENGINE_MOVES
        assert agent_force(stuck, A.OFFLINE) is A.OFFLINE
    assert (A.ON_CALL, A.AVAILABLE) not in AGENT_SELF_MOVES


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
                    assert agent_transition(agent, A.AVAILABLE, engine=True) is A.AVAILABLE
                    self.agents[i] = A.AVAILABLE

    @rule(
        i=leads,
        action=st.sampled_from([a for a in LeadAction if a not in (LA.DISPATCH, LA.UNDISPATCH)]),
    )
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

    @rule(i=agents, to=st.sampled_from(AgentState), engine=st.booleans())
    def agent_move(self, i: int, to: AgentState, engine: bool) -> None:
        if to is A.RESERVED and self.state is not C.RUNNING:
            return  # only a running campaign reserves agents
        try:
            new = agent_transition(self.agents[i], to, engine=engine)
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
