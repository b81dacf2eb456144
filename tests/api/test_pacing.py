"""GET /api/v1/campaigns/{id}/pacing: the rolling abandon rate against the cap and the dial
level the pacer applies now (docs/api.md, docs/architecture.md §8)."""

from __future__ import annotations

import itertools

from dialer.domain.states import AttemptStatus
from dialer.store.models import Attempt
from tests.api.conftest import Api
from tests.harness import leads

DAY = 86400.0
_KEYS = itertools.count(1)


async def _answers(api: Api, campaign_id: str, humans: int, abandoned: int, at: float) -> None:
    """`humans` human answers `at`, the first `abandoned` of them abandoned."""
    [lead_id] = [x.id for x in (await api.service.leads.page(campaign_id))[0]]
    async with api.runtime.db.session() as s:
        for i in range(humans):
            s.add(
                Attempt(
                    campaign_id=campaign_id,
                    lead_id=lead_id,
                    step=0,
                    try_no=i + 1,
                    channel="voice",
                    idem_key=f"{campaign_id}:{lead_id}:0:{next(_KEYS)}",
                    campaign_version=1,
                    history=[],
                    status=AttemptStatus.COMPLETED,
                    created_at=at - 15,
                    answered_at=at,
                    answered_by="human",
                    abandoned=i < abandoned,
                    updated_at=at,
                )
            )


async def test_pacing_shows_the_rolling_rate_and_the_throttled_level(api: Api) -> None:
    c = await api.campaign(
        agent_ids=["a1"],
        pacing={"mode": "power", "lines_per_agent": 2.0, "max_abandon_rate": 0.03},
    )
    cid = c["id"]
    await api.service.leads.add(cid, leads(1))
    now = api.clock.now()
    status, body = await api.call("GET", f"/api/v1/campaigns/{cid}/pacing", role="viewer")
    assert status == 200, body
    # Nothing abandoned yet: the operator's ratio.
    assert body["mode"] == "power" and body["max_abandon_rate"] == 0.03
    assert (body["abandon_rate"], body["answered_humans"], body["dial_level"]) == (0.0, 0, 2.0)
    assert body["window_days"] == 30
    # 1,000 answers with 25 abandoned in the window (2.5 %), 40 older ones all abandoned and
    # out of it: the ratio is throttled halfway down to 1 (docs/architecture.md §8).
    await _answers(api, cid, 1000, 25, now - DAY)
    await _answers(api, cid, 40, 40, now - 31 * DAY)
    status, body = await api.call("GET", f"/api/v1/campaigns/{cid}/pacing", role="viewer")
    assert status == 200, body
    assert (body["answered_humans"], body["abandoned"]) == (1000, 25)
    assert body["abandon_rate"] == 0.025
    assert body["dial_level"] == 1.5
    # Over the cap: one line per free agent.
    await _answers(api, cid, 100, 20, now - DAY)
    status, body = await api.call("GET", f"/api/v1/campaigns/{cid}/pacing", role="viewer")
    assert body["abandon_rate"] == round(45 / 1100, 4) and body["dial_level"] == 1.0


async def test_pacing_of_an_unknown_campaign_is_404(api: Api) -> None:
    status, _ = await api.call("GET", "/api/v1/campaigns/nope/pacing", role="viewer")
    assert status == 404
