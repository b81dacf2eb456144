"""The campaign page shows the pacing: the rolling abandon rate against the cap and the dial
level (GET /api/v1/campaigns/{id}/pacing, docs/architecture.md §8)."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.web.conftest import SUPERVISOR, Problems, Server, login, shot

LONG = 60_000


def test_campaign_page_shows_rate_against_cap_and_dial_level(
    browser: Browser, server: Server, problems: Problems
) -> None:
    c = server.campaign("Pacing shown")
    page = problems.watch(browser.new_context(viewport={"width": 1360, "height": 900}).new_page())
    login(page, server.url, SUPERVISOR)
    row = page.locator(f'tr[data-campaign="{c["id"]}"]')
    row.get_by_role("link", name="Pacing shown").click()
    panel = page.locator("#pacing")
    expect(panel).to_be_visible(timeout=LONG)
    # A power 2.0 campaign with the default 3 % cap (docs/api.md).
    expect(page.locator("#pacing-rate")).to_have_text(re.compile(r"^\d+\.\d % / 3\.0 %$"))
    expect(page.locator("#pacing-level")).to_have_text(re.compile(r"^[12]\.\d\d lines/agent$"))
    expect(page.locator("#pacing-note")).to_contain_text("power")
    shot(page, "30-pacing")
    assert problems.items == []
