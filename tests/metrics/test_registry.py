from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dialer.domain.states import AgentState, CampaignState
from dialer.metrics.registry import Metrics
from tests.metrics.contract import REQUIRED

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def exercised() -> Metrics:
    m = Metrics()
    m.calls_dialed.labels("c1").inc()
    m.calls_received.labels("c1").inc()
    m.calls_answered.labels("c1", "human").inc()
    m.calls_abandoned.labels("c1").inc()
    m.call_duration.labels("c1").observe(42)
    m.emails_sent.labels("c1", "sent").inc()
    m.set_campaign_state("c1", "running")
    m.set_agent_counts({"available": 2})
    m.pause_duration.observe(0.003)
    m.dispatch.labels("voice", "dispatched").inc()
    return m


def text(m: Metrics) -> str:
    return m.render()[0].decode()


def samples(m: Metrics) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text(m))
        for s in family.samples
    }


def value(m: Metrics, name: str, **labels: str) -> float:
    return samples(m)[(name, frozenset(labels.items()))]


@pytest.mark.parametrize(("name", "kind", "labels"), REQUIRED, ids=[r[0] for r in REQUIRED])
def test_required_metric_is_exposed(name: str, kind: str, labels: set[str]) -> None:
    m = exercised()
    assert f"# TYPE {name} {kind}\n" in text(m)
    sample_names = {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    label_sets = [
        {k for k, _ in label_set} - {"le"}
        for (sample, label_set) in samples(m)
        if sample in sample_names
    ]
    assert label_sets, f"no samples for {name}"
    assert all(got == labels for got in label_sets), label_sets


def test_one_increment_each_shows_up() -> None:
    m = exercised()
    assert value(m, "dialer_calls_dialed_total", campaign="c1") == 1
    assert value(m, "dialer_calls_answered_total", campaign="c1", answered_by="human") == 1
    assert value(m, "dialer_call_duration_seconds_sum", campaign="c1") == 42
    assert value(m, "dialer_call_duration_seconds_bucket", campaign="c1", le="30.0") == 0
    assert value(m, "dialer_call_duration_seconds_bucket", campaign="c1", le="60.0") == 1
    assert value(m, "dialer_pause_duration_seconds_count") == 1
    assert value(m, "dialer_dispatch_total", channel="voice", outcome="dispatched") == 1


def test_call_duration_buckets_are_the_contract() -> None:
    m = exercised()
    les = [
        dict(labels)["le"]
        for (name, labels) in samples(m)
        if name == "dialer_call_duration_seconds_bucket"
    ]
    expected = [5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
    assert les == [f"{float(b)}" for b in expected] + ["+Inf"]


def test_instances_do_not_share_state() -> None:
    a, b = Metrics(), Metrics()
    a.calls_dialed.labels("c1").inc(3)
    assert value(a, "dialer_calls_dialed_total", campaign="c1") == 3
    assert "dialer_calls_dialed_total{" not in text(b)
    assert a.registry is not b.registry


def test_uses_the_given_registry() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    assert m.registry is registry
    m.calls_dialed.labels("c9").inc()
    assert registry.get_sample_value("dialer_calls_dialed_total", {"campaign": "c9"}) == 1


def test_campaign_state_is_one_hot() -> None:
    m = Metrics()
    m.set_campaign_state("c1", "running")
    m.set_campaign_state("c1", "paused")
    states = {
        s.value: value(m, "dialer_campaign_state", campaign="c1", state=s.value)
        for s in CampaignState
    }
    assert states == {s.value: (1.0 if s is CampaignState.PAUSED else 0.0) for s in CampaignState}


def test_unknown_campaign_state_is_refused() -> None:
    with pytest.raises(ValueError):
        Metrics().set_campaign_state("c1", "napping")


def test_forget_campaign_drops_its_series() -> None:
    m = Metrics()
    m.set_campaign_state("c1", "running")
    m.set_campaign_state("c2", "paused")
    m.forget_campaign("c1")
    m.forget_campaign("c1")
    assert 'campaign="c1"' not in text(m)
    assert value(m, "dialer_campaign_state", campaign="c2", state="paused") == 1


def test_agent_counts_cover_every_state() -> None:
    m = Metrics()
    m.set_agent_counts({"available": 2, "on_call": 1})
    m.set_agent_counts({"available": 1})
    got = {s.value: value(m, "dialer_agents", state=s.value) for s in AgentState}
    assert got == {s.value: (1.0 if s is AgentState.AVAILABLE else 0.0) for s in AgentState}


def test_unknown_agent_state_is_refused() -> None:
    with pytest.raises(ValueError, match="lunch"):
        Metrics().set_agent_counts({"lunch": 1})


def test_render_content_type() -> None:
    body, content_type = exercised().render()
    assert content_type == CONTENT_TYPE_LATEST
    assert content_type.startswith("text/plain; version=")
    assert body.endswith(b"\n")


def test_promtool_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/services.sh (installs Debian's prometheus)"
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exercised().render()[0],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
