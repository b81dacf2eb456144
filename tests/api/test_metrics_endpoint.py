"""GET /metrics after a short campaign run: every name of docs/api.md §12 with its type and labels,
and
`promtool check metrics` accepts the exposition."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialer.channels.simulated import SimProfile
from dialer.domain.states import AgentState, CampaignState
from tests.api.conftest import Api, ApiFactory
from tests.harness import leads
from tests.metrics.contract import REQUIRED

CALL_BUCKETS = {"5.0", "15.0", "30.0", "60.0", "120.0", "300.0", "600.0", "900.0", "1800.0"}
CALL_BUCKETS |= {"3600.0", "+Inf"}
CLOSED = {
    "answered_by": {"human", "machine", "unknown"},
    "state": {s.value for s in CampaignState} | {s.value for s in AgentState},
    "channel": {"voice", "email"},
}


async def run_campaigns(api: Api) -> tuple[str, str]:
    """A voice campaign with one agent for many answered calls (so some are abandoned), and
    an email-only campaign; both run a few virtual minutes, then the voice one is paused."""
    status, _ = await api.call("POST", "/api/v1/agents/a1/state", json={"state": "available"})
    assert status == 200
    voice = await api.campaign(
        name="Voice",
        sequence=[{"channel": "voice", "max_attempts": 1}],
        pacing={"mode": "power", "lines_per_agent": 5, "calls_per_second": 50},
        agent_ids=["a1"],
        wrap_up_seconds=1,
    )
    email = await api.campaign(
        name="Email", sequence=[{"channel": "email", "subject": "Hi", "body": "Hello"}]
    )
    service = api.runtime.service
    await service.leads.add(voice["id"], leads(20))
    await service.leads.add(email["id"], leads(5, start=100))
    for c in (voice, email):
        status, body = await api.call("POST", f"/api/v1/campaigns/{c['id']}/start")
        assert status == 200, body
    for _ in range(40):
        await api.tick()
        await api.clock.advance(3)
    status, body = await api.call("POST", f"/api/v1/campaigns/{voice['id']}/pause")
    assert status == 200, body
    return voice["id"], email["id"]


async def exposition(make_api: ApiFactory) -> str:
    api = await make_api(
        profile=SimProfile(answer_rate=0.8, machine_rate=0.1, busy_rate=0.0, fail_rate=0.0)
    )
    await run_campaigns(api)
    resp = await api.client.get("/metrics")  # no credentials
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return await resp.text()


async def test_metrics_after_a_campaign_run(make_api: ApiFactory) -> None:
    text = await exposition(make_api)
    required_metrics_with_type_and_labels(text)
    campaign_state_is_one_hot(text)
    promtool_accepts(text)


def required_metrics_with_type_and_labels(exposition: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    for name, kind, labels in REQUIRED:
        family = families.get(name.removesuffix("_total"))
        assert family is not None, f"{name} is not exposed"
        assert family.type == kind, (name, family.type)
        samples = [s for s in family.samples if s.name in (name, f"{name}_bucket")]
        assert samples, f"{name} has no samples after a campaign run"
        for s in samples:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
            for label, allowed in CLOSED.items():
                if label in s.labels:
                    assert s.labels[label] in allowed, (name, s.labels)
        if name == "dialer_call_duration_seconds":
            assert {s.labels["le"] for s in samples if "le" in s.labels} == CALL_BUCKETS


def campaign_state_is_one_hot(exposition: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    by_campaign: dict[str, dict[str, float]] = {}
    for s in families["dialer_campaign_state"].samples:
        by_campaign.setdefault(s.labels["campaign"], {})[s.labels["state"]] = s.value
    current = set()
    for states in by_campaign.values():
        assert set(states) == {s.value for s in CampaignState}
        assert sorted(states.values()) == [0.0] * (len(states) - 1) + [1.0]
        current.add(next(state for state, v in states.items() if v == 1.0))
    assert len(by_campaign) == 2 and "paused" in current  # the voice campaign


def promtool_accepts(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: `make setup` installs Debian's prometheus package")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
