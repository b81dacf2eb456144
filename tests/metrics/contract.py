"""The Prometheus contract of docs/api.md §12: exposed sample name, type, labels (histograms add
`le`
on their buckets). One list, checked against the registry and against a live /metrics."""

from __future__ import annotations

REQUIRED: list[tuple[str, str, set[str]]] = [
    ("dialer_calls_dialed_total", "counter", {"campaign"}),
    ("dialer_calls_received_total", "counter", {"campaign"}),
    ("dialer_calls_answered_total", "counter", {"campaign", "answered_by"}),
    ("dialer_calls_abandoned_total", "counter", {"campaign"}),
    ("dialer_call_duration_seconds", "histogram", {"campaign"}),
    ("dialer_emails_sent_total", "counter", {"campaign", "result"}),
    ("dialer_campaign_state", "gauge", {"campaign", "state"}),
    ("dialer_agents", "gauge", {"state"}),
    ("dialer_pause_duration_seconds", "histogram", set()),
    ("dialer_dispatch_total", "counter", {"channel", "outcome"}),
]
