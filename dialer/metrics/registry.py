"""The Prometheus metrics of docs/api.md §12, on a registry owned by one app
(docs/architecture.md §11).

Each `Metrics` has its own `CollectorRegistry`, so two apps in one process (tests) never
share figures. Label values come only from closed sets, plus the campaign id.

Counters and histograms are per process and add up across a deployment. The gauges that
describe the database (campaign state, due leads, abandon cap, agents by state) are exported
once per deployment, by `dialer serve`: a worker's `Metrics(database_gauges=False)` makes
their setters no-ops, so `sum()` in Grafana never counts them twice (docs/api.md §12,
docs/architecture.md §12.2).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from dialer.domain.states import AgentState, CampaignState

CALL_DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
# Pause latency (request received -> halt guaranteed): milliseconds when healthy, seconds
# when a worker has to be fenced out by its lease.
PAUSE_DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# The kinds of `dialer_emails_received_total`.
RECEIVED_KINDS = ("reply", "auto_reply", "bounce", "soft_bounce", "unmatched")


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, *, database_gauges: bool = True
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # False in `dialer worker`: the database's gauges come from serve only (see above).
        self.database_gauges = database_gauges
        r = self.registry
        # prometheus_client appends `_total` to counter names when it exposes them.
        self.calls_dialed = Counter(
            "dialer_calls_dialed", "Calls handed to the carrier.", ["campaign"], registry=r
        )
        self.calls_received = Counter(
            "dialer_calls_received",
            "Calls that reached the called party (rang or answered).",
            ["campaign"],
            registry=r,
        )
        self.calls_answered = Counter(
            "dialer_calls_answered",
            "Calls picked up, by who answered (human, machine, unknown).",
            ["campaign", "answered_by"],
            registry=r,
        )
        self.calls_abandoned = Counter(
            "dialer_calls_abandoned",
            "Answered calls not connected to an agent within 2 seconds.",
            ["campaign"],
            registry=r,
        )
        self.call_duration = Histogram(
            "dialer_call_duration_seconds",
            "Connected talk time of answered calls.",
            ["campaign"],
            buckets=CALL_DURATION_BUCKETS,
            registry=r,
        )
        self.emails_sent = Counter(
            "dialer_emails_sent",
            "Emails handed to the mail server, by result.",
            ["campaign", "result"],
            registry=r,
        )
        self.campaign_state = Gauge(
            "dialer_campaign_state",
            "1 for the campaign's current state, 0 for the others.",
            ["campaign", "state"],
            registry=r,
        )
        self.agents = Gauge("dialer_agents", "Agents by state.", ["state"], registry=r)
        self.campaign_due_leads = Gauge(
            "dialer_campaign_due_leads",
            "Leads of a running campaign due now (counted up to 10,000).",
            ["campaign"],
            registry=r,
        )
        self.campaign_max_abandon_rate = Gauge(
            "dialer_campaign_max_abandon_rate",
            "The campaign's abandon-rate cap (pacing.max_abandon_rate).",
            ["campaign"],
            registry=r,
        )
        self.pause_duration = Histogram(
            "dialer_pause_duration_seconds",
            "Pause request received until no new attempt can be dispatched.",
            buckets=PAUSE_DURATION_BUCKETS,
            registry=r,
        )
        self.dispatch = Counter(
            "dialer_dispatch",
            "Dispatch decisions of the engine, by channel and outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self.channel_up = Gauge(
            "dialer_channel_up",
            "1 while the channel's carrier or mail server is reachable, 0 while it is held.",
            ["channel"],
            registry=r,
        )
        self.attempts_reconciled = Counter(
            "dialer_attempts_reconciled",
            "Open attempts whose lease ran out, resolved by asking the carrier, by result.",
            ["result"],
            registry=r,
        )
        # Email that listens (docs/api.md §12, docs/architecture.md §9.1).
        self.emails_received = Counter(
            "dialer_emails_received",
            "Messages that came back (webhook or IMAP), by kind.",
            ["kind"],
            registry=r,
        )
        for kind in RECEIVED_KINDS:
            self.emails_received.labels(kind)
        self.email_clicks = Counter(
            "dialer_email_clicks",
            "Follows of tracked links by people (link scanners not counted).",
            registry=r,
        )
        # Only the process that watches a mailbox (`dialer serve` with DIALER_IMAP_URL) has a
        # series: one, labelled by the folder it watches (configured, not from traffic).
        self.imap_connected = Gauge(
            "dialer_imap_connected",
            "1 while the IMAP watcher is logged in to its mailbox, 0 while it reconnects.",
            ["folder"],
            registry=r,
        )
        for channel in ("voice", "email"):
            self.channel_up.labels(channel).set(1)

    def set_campaign_state(self, campaign_id: str, state: str) -> None:
        """1 for `state`, 0 for every other campaign state (ValueError if unknown)."""
        current = CampaignState(state)
        if not self.database_gauges:
            return
        for s in CampaignState:
            self.campaign_state.labels(campaign_id, s.value).set(1 if s is current else 0)

    def forget_campaign(self, campaign_id: str) -> None:
        """Drop the campaign's state series (a deleted campaign must not linger)."""
        for s in CampaignState:
            try:
                self.campaign_state.remove(campaign_id, s.value)
            except KeyError:
                pass
        for gauge in (self.campaign_due_leads, self.campaign_max_abandon_rate):
            try:
                gauge.remove(campaign_id)
            except KeyError:
                pass

    def set_agent_counts(self, counts: Mapping[str, int]) -> None:
        """Every agent state gets a value, 0 when absent from `counts`."""
        unknown = set(counts) - {s.value for s in AgentState}
        if unknown:
            raise ValueError(f"unknown agent states: {sorted(unknown)}")
        if not self.database_gauges:
            return
        for s in AgentState:
            self.agents.labels(s.value).set(counts.get(s.value, 0))

    def set_campaign_gauges(
        self, campaign_id: str, *, due_leads: int, max_abandon_rate: float
    ) -> None:
        """A running campaign's leads due now and its abandon cap."""
        if not self.database_gauges:
            return
        self.campaign_max_abandon_rate.labels(campaign_id).set(max_abandon_rate)
        self.campaign_due_leads.labels(campaign_id).set(due_leads)

    def clear_due_leads(self, campaign_id: str) -> None:
        """A campaign no longer running has no lead due."""
        if self.database_gauges:
            self.campaign_due_leads.labels(campaign_id).set(0)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for `GET /metrics`."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
