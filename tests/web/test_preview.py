"""The agent page in preview mode: the next lead with Dial and Skip (docs/api.md §6)."""

from __future__ import annotations

from datetime import UTC, datetime

from playwright.sync_api import Browser, expect

from dialer.cli.demo import demo_leads
from tests.web.conftest import AGENT_USER, Problems, Server, login, shot

LONG = 60_000


def test_agent_previews_skips_and_dials(
    server: Server, browser: Browser, problems: Problems
) -> None:
    # Campaigns of earlier tests would engage the agent first (oldest start first): hold
    # them, then the agent leaves whatever it served (offline releases it) and is free again.
    server.call("POST", "/api/v1/campaigns/pause-all", {"reason": "preview test"})
    for state in ("offline", "available"):
        server.call("POST", "/api/v1/agents/a1/state", {"state": state, "force": True})
    c = server.call(
        "POST",
        "/api/v1/campaigns",
        {
            "name": "Preview calls",
            "sequence": [{"channel": "voice", "max_attempts": 1}],
            "pacing": {"mode": "preview"},
            "caller_ids": ["+14155550100"],
            "agent_ids": ["a1"],
            "wrap_up_seconds": 1,
        },
    )
    cid = c["id"]
    rows = demo_leads(3, datetime.now(UTC), seed=99)
    server.call("POST", f"/api/v1/campaigns/{cid}/leads", {"leads": rows})
    server.call("POST", f"/api/v1/campaigns/{cid}/start")
    try:
        ctx = browser.new_context(viewport={"width": 1024, "height": 768})
        page = problems.watch(ctx.new_page())
        login(page, server.url, AGENT_USER)
        box = page.locator("#preview section")
        expect(box).to_be_visible(timeout=LONG)
        first = box.get_attribute("data-lead")
        assert server.stats(cid)["calls"]["dialed"] == 0  # the engine never dials alone
        shot(page, "preview-01-offered")

        page.get_by_role("button", name="Skip").click()
        expect(box).not_to_have_attribute("data-lead", first or "", timeout=LONG)
        second = box.get_attribute("data-lead")

        page.get_by_role("button", name="Dial").click()
        # The call runs at 20x and may already be over: the figures and the lead say it
        # was placed, once, and the lead is no longer offered.
        expect(page.locator(f"#preview section[data-lead='{second}']")).to_have_count(
            0, timeout=LONG
        )
        expect(page.get_by_role("alert")).to_have_count(0)
        assert server.stats(cid)["calls"]["dialed"] == 1
        lead = server.call("GET", f"/api/v1/leads/{second}")
        assert lead["status"] != "pending", lead
        shot(page, "preview-02-dialled")
        ctx.close()
    finally:
        server.call("POST", f"/api/v1/campaigns/{cid}/terminate", {"confirm": cid})
    assert not problems.items, problems.items
