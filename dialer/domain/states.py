"""State machines of campaigns, leads, attempts and agents (docs/architecture.md §2).

Pure code: no clock, database or network. Every function either returns the new state or
raises a typed error that the API turns into a 409 carrying the current state.
"""

from __future__ import annotations

from enum import StrEnum


class InvalidTransition(Exception):
    """A transition that the state machine does not allow from the current state."""

    def __init__(self, entity: str, state: str, action: str) -> None:
        super().__init__(f"cannot {action} a {entity} that is {state}")
        self.entity = entity
        self.state = state
        self.action = action


class CampaignState(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


CAMPAIGN_TERMINAL = frozenset(
    {CampaignState.STOPPED, CampaignState.CANCELLED, CampaignState.COMPLETED}
)
CAMPAIGN_EDITABLE = frozenset({CampaignState.DRAFT, CampaignState.SCHEDULED, CampaignState.PAUSED})


class CampaignAction(StrEnum):
    START = "start"
    SCHEDULE = "schedule"
    PAUSE = "pause"
    RESUME = "resume"
    TERMINATE = "terminate"
    COMPLETE = "complete"
    DRAIN = "drain"


# (from, action) -> to.  Terminate is resolved by `terminate_target`.
CAMPAIGN_MOVES: dict[tuple[CampaignState, CampaignAction], CampaignState] = {
    (CampaignState.DRAFT, CampaignAction.START): CampaignState.RUNNING,
    (CampaignState.SCHEDULED, CampaignAction.START): CampaignState.RUNNING,
    (CampaignState.DRAFT, CampaignAction.SCHEDULE): CampaignState.SCHEDULED,
    (CampaignState.SCHEDULED, CampaignAction.SCHEDULE): CampaignState.SCHEDULED,
    (CampaignState.RUNNING, CampaignAction.PAUSE): CampaignState.PAUSED,
    # A scheduled campaign can be paused: its start is dropped, resume starts it
    # (docs/architecture.md §2.1).
    (CampaignState.SCHEDULED, CampaignAction.PAUSE): CampaignState.PAUSED,
    (CampaignState.PAUSED, CampaignAction.RESUME): CampaignState.RUNNING,
    (CampaignState.RUNNING, CampaignAction.COMPLETE): CampaignState.COMPLETED,
    (CampaignState.STOPPING, CampaignAction.DRAIN): CampaignState.STOPPED,
}

# Repeating the current state is a no-op, not an error.
CAMPAIGN_NOOP: dict[CampaignAction, frozenset[CampaignState]] = {
    CampaignAction.START: frozenset({CampaignState.RUNNING}),
    CampaignAction.PAUSE: frozenset({CampaignState.PAUSED}),
    CampaignAction.RESUME: frozenset({CampaignState.RUNNING}),
    CampaignAction.TERMINATE: frozenset(
        {CampaignState.STOPPING, CampaignState.STOPPED, CampaignState.CANCELLED}
    ),
}


def campaign_transition(
    state: CampaignState, action: CampaignAction, *, dispatched: bool = False
) -> CampaignState | None:
    """The state after `action`, or None when the action repeats the current state.

    `dispatched` says whether the campaign ever handed work to a channel: terminate on a
    campaign that never did is a cancel, otherwise a stop (through `stopping`).
    """
    if action is CampaignAction.TERMINATE:
        return terminate_target(state, dispatched=dispatched)
    if state in CAMPAIGN_NOOP.get(action, frozenset()):
        return None
    try:
        return CAMPAIGN_MOVES[(state, action)]
    except KeyError:
        raise InvalidTransition("campaign", state, action) from None


def terminate_target(state: CampaignState, *, dispatched: bool) -> CampaignState | None:
    if state in CAMPAIGN_NOOP[CampaignAction.TERMINATE]:
        return None
    if state is CampaignState.COMPLETED:
        raise InvalidTransition("campaign", state, CampaignAction.TERMINATE)
    if state in (CampaignState.DRAFT, CampaignState.SCHEDULED):
        return CampaignState.CANCELLED
    if not dispatched:
        return CampaignState.CANCELLED
    return CampaignState.STOPPING


class LeadStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    SKIPPED = "skipped"


LEAD_TERMINAL = frozenset({LeadStatus.COMPLETED, LeadStatus.STOPPED, LeadStatus.SKIPPED})
LEAD_DISPATCHABLE = frozenset({LeadStatus.PENDING, LeadStatus.IN_PROGRESS})
# May still be contacted: not terminal.
LEAD_OPEN = frozenset({LeadStatus.PENDING, LeadStatus.IN_PROGRESS, LeadStatus.PAUSED})


class StopReason(StrEnum):
    REPLIED = "replied"
    QUALIFIED = "qualified"
    UNSUBSCRIBED = "unsubscribed"
    DNC = "dnc"
    BOUNCED = "bounced"
    MANUAL = "manual"
    COMPANY_STOPPED = "company_stopped"
    CLICKED = "clicked"  # a tracked link, when the campaign's stop_on has "click"
    FAILED = "failed"  # an email step's tries ran out on soft failures (docs/architecture.md §9.1)


class PauseReason(StrEnum):
    """The pause reasons dialer sets by itself (docs/architecture.md §3.5); a person's pause
    carries free text."""

    SEQUENCE_CHANGED = "sequence_changed"  # finished the old sequence, new steps ahead
    SENDER_CHANGED = "sender_changed"  # an email step ahead, and the sender changed


class LeadAction(StrEnum):
    DISPATCH = "dispatch"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    SKIP = "skip"
    COMPLETE = "complete"
    # The engine only: a claimed lead whose attempt never reached a channel (the fence
    # refused it) goes back to pending.
    UNDISPATCH = "undispatch"


# (from, action) -> to: every lead move, by people (API) and by the engine.
LEAD_MOVES: dict[tuple[LeadStatus, LeadAction], LeadStatus] = {
    (LeadStatus.PENDING, LeadAction.DISPATCH): LeadStatus.IN_PROGRESS,
    (LeadStatus.IN_PROGRESS, LeadAction.DISPATCH): LeadStatus.IN_PROGRESS,
    (LeadStatus.IN_PROGRESS, LeadAction.UNDISPATCH): LeadStatus.PENDING,
    (LeadStatus.IN_PROGRESS, LeadAction.PAUSE): LeadStatus.PAUSED,
    (LeadStatus.PAUSED, LeadAction.RESUME): LeadStatus.IN_PROGRESS,
    (LeadStatus.PENDING, LeadAction.STOP): LeadStatus.STOPPED,
    (LeadStatus.IN_PROGRESS, LeadAction.STOP): LeadStatus.STOPPED,
    (LeadStatus.PAUSED, LeadAction.STOP): LeadStatus.STOPPED,
    (LeadStatus.PENDING, LeadAction.SKIP): LeadStatus.SKIPPED,
    (LeadStatus.PENDING, LeadAction.COMPLETE): LeadStatus.COMPLETED,
    (LeadStatus.IN_PROGRESS, LeadAction.COMPLETE): LeadStatus.COMPLETED,
    (LeadStatus.PAUSED, LeadAction.COMPLETE): LeadStatus.COMPLETED,
}

# Repeating the current status is a no-op, not an error.
LEAD_NOOP: dict[LeadAction, frozenset[LeadStatus]] = {
    LeadAction.PAUSE: frozenset({LeadStatus.PAUSED}),
    LeadAction.RESUME: frozenset({LeadStatus.IN_PROGRESS}),
    LeadAction.STOP: frozenset({LeadStatus.STOPPED}),
    LeadAction.SKIP: frozenset({LeadStatus.SKIPPED}),
    LeadAction.COMPLETE: frozenset({LeadStatus.COMPLETED}),
    LeadAction.UNDISPATCH: frozenset({LeadStatus.PENDING}),
}


def lead_transition(status: LeadStatus, action: LeadAction) -> LeadStatus | None:
    """The status after `action`, or None when it repeats the current status."""
    if status in LEAD_NOOP.get(action, frozenset()):
        return None
    try:
        return LEAD_MOVES[(status, action)]
    except KeyError:
        raise InvalidTransition("lead", status, action) from None


class AttemptStatus(StrEnum):
    """Follows Twilio's call statuses; email attempts use created/sent/failed/bounced."""

    CREATED = "created"  # row written, not yet handed to the channel
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELED = "canceled"
    SENT = "sent"
    BOUNCED = "bounced"
    SKIPPED = "skipped"


ATTEMPT_RANK: dict[AttemptStatus, int] = {
    AttemptStatus.CREATED: 0,
    AttemptStatus.QUEUED: 1,
    AttemptStatus.INITIATED: 2,
    AttemptStatus.RINGING: 3,
    AttemptStatus.IN_PROGRESS: 4,
}
ATTEMPT_FINAL = frozenset(
    {
        AttemptStatus.COMPLETED,
        AttemptStatus.BUSY,
        AttemptStatus.NO_ANSWER,
        AttemptStatus.FAILED,
        AttemptStatus.CANCELED,
        AttemptStatus.SENT,
        AttemptStatus.BOUNCED,
        AttemptStatus.SKIPPED,
    }
)
ATTEMPT_LIVE = frozenset(ATTEMPT_RANK)  # in flight: not final
# Handed to the carrier and not answered yet: may still be answered and need an agent.
ATTEMPT_RINGING = frozenset({AttemptStatus.QUEUED, AttemptStatus.INITIATED, AttemptStatus.RINGING})
# A line in use before the answer (a `created` attempt is about to be dialled).
ATTEMPT_DIALING = ATTEMPT_RINGING | {AttemptStatus.CREATED}
# Someone (a person or a machine) picked up: Twilio's `completed` implies the answer.
ATTEMPT_ANSWERED = frozenset({AttemptStatus.IN_PROGRESS, AttemptStatus.COMPLETED})
# Ended without an answer, as the carrier saw it (a call we cancelled is not among them).
ATTEMPT_UNANSWERED_END = frozenset(
    {AttemptStatus.BUSY, AttemptStatus.NO_ANSWER, AttemptStatus.FAILED}
)


def attempt_advances(current: AttemptStatus, new: AttemptStatus) -> bool:
    """Whether a (possibly late or duplicated) status report moves the attempt forward.

    Status only moves forward: a final status is never left, and among live statuses only a
    higher rank wins. `sent` may still become `bounced` (a bounce arrives after the send).
    """
    if current == new:
        return False
    if current is AttemptStatus.SENT and new is AttemptStatus.BOUNCED:
        return True
    if current in ATTEMPT_FINAL:
        return False
    if new in ATTEMPT_FINAL:
        return True
    return ATTEMPT_RANK[new] > ATTEMPT_RANK[current]


class AgentState(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    BREAK = "break"


# Moves an agent asks for itself, or a supervisor for it (API: POST /agents/{id}/state).
AGENT_SELF_MOVES: frozenset[tuple[AgentState, AgentState]] = frozenset(
    {
        (AgentState.OFFLINE, AgentState.AVAILABLE),
        (AgentState.AVAILABLE, AgentState.OFFLINE),
        (AgentState.AVAILABLE, AgentState.BREAK),
        (AgentState.BREAK, AgentState.AVAILABLE),
        (AgentState.BREAK, AgentState.OFFLINE),
        (AgentState.RESERVED, AgentState.AVAILABLE),  # gives up the hold for a ringing call
        (AgentState.WRAP_UP, AgentState.AVAILABLE),  # ends the wrap-up early
        (AgentState.WRAP_UP, AgentState.BREAK),
        (AgentState.WRAP_UP, AgentState.OFFLINE),
    }
)
# Moves the engine makes (agents/pool.py): hold for a ringing call, bridge, end of call.
AGENT_ENGINE_MOVES: frozenset[tuple[AgentState, AgentState]] = frozenset(
    {
        (AgentState.AVAILABLE, AgentState.RESERVED),  # held for a ringing call of a pause
        (AgentState.RESERVED, AgentState.AVAILABLE),  # released, or back to work on resume
        (AgentState.AVAILABLE, AgentState.ON_CALL),  # bridged to an answered call
        (AgentState.RESERVED, AgentState.ON_CALL),
        (AgentState.ON_CALL, AgentState.WRAP_UP),  # call ended, wrap-up configured
        (AgentState.ON_CALL, AgentState.AVAILABLE),  # call ended, no wrap-up
        (AgentState.WRAP_UP, AgentState.AVAILABLE),  # wrap-up over
    }
)
# A supervisor's override (API: POST /agents/{id}/state with `force`, docs/architecture.md
# §2.4): from any state, to one of these, ending the agent's engagement (its call, hold or
# wrap-up). Not a move of either table above: it is the way out when they have no move
# (an agent left `on_call` or `reserved` by a crash).
AGENT_FORCE_TARGETS = frozenset({AgentState.OFFLINE, AgentState.AVAILABLE})
# The agents the engine may put on an answered call.
AGENT_FREE = frozenset({AgentState.AVAILABLE, AgentState.RESERVED})

# States an agent may ask for itself (API: POST /agents/{id}/state).
AGENT_SELF_STATES = frozenset({AgentState.AVAILABLE, AgentState.OFFLINE, AgentState.BREAK})


def agent_transition(
    state: AgentState, to: AgentState, *, engine: bool = False
) -> AgentState | None:
    """The new state, None when unchanged; InvalidTransition when not allowed. `engine`
    picks the engine's moves, otherwise the agent's own."""
    if state == to:
        return None
    if (state, to) not in (AGENT_ENGINE_MOVES if engine else AGENT_SELF_MOVES):
        raise InvalidTransition("agent", state, f"move to {to}")
    return to


def agent_force(state: AgentState, to: AgentState) -> AgentState | None:
    """A supervisor's forced move: `to` from any state, None when the agent is there
    already; InvalidTransition when `to` is not a force target (AGENT_FORCE_TARGETS)."""
    if to not in AGENT_FORCE_TARGETS:
        raise InvalidTransition("agent", state, f"force to {to}")
    return None if state == to else to
