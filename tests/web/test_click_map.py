"""The campaign page's click map (docs/api.md §4, docs/architecture.md §9.1): every tracked
link of the campaign's emails with its clicks, and an edit that changes where the link leads
for mails already sent too."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import Browser, expect

from dialer.cli.demo import demo_leads
from tests.web.conftest import SUPERVISOR, Problems, Server, login, shot

LONG = 60_000


def email_campaign(server: Server, name: str) -> dict[str, Any]:
    body = {
        "name": name,
        "sequence": [
            {
                "channel": "email",
                "subject": "Hi {first_name}",
                "body": "Our offer: https://example.com/offer?x=1 - see you",
            }
        ],
        "sender": {"email": "sales@example.com", "name": "Sales"},
    }
    c: dict[str, Any] = server.call("POST", "/api/v1/campaigns", body)
    rows = demo_leads(5, datetime.now(UTC), seed=3)
    server.call("POST", f"/api/v1/campaigns/{c['id']}/leads", {"leads": rows})
    return server.call("POST", f"/api/v1/campaigns/{c['id']}/start")  # type: ignore[no-any-return]


def test_the_click_map_lists_links_and_edits_their_target(
    browser: Browser, server: Server, problems: Problems
) -> None:
    c = email_campaign(server, "Click map shown")
    links_path = f"/api/v1/campaigns/{c['id']}/links"
    for _ in range(600):  # a hang guard: the engine sends the mails in its next rounds
        if server.call("GET", links_path)["items"]:
            break
        time.sleep(0.1)
    [link] = server.call("GET", links_path)["items"]
    assert link["url"] == "https://example.com/offer?x=1"

    page = problems.watch(browser.new_context(viewport={"width": 1360, "height": 900}).new_page())
    login(page, server.url, SUPERVISOR)
    page.locator(f'tr[data-campaign="{c["id"]}"]').get_by_role(
        "link", name="Click map shown"
    ).click()
    page.get_by_role("tab", name="Click map").click()
    row = page.locator(f'tr[data-link="{link["id"]}"]')
    expect(row).to_contain_text("https://example.com/offer?x=1", timeout=LONG)
    row.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("New target").fill("https://example.com/spring-offer")
    dialog.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("https://example.com/spring-offer", timeout=LONG)
    shot(page, "31-click-map")
    [edited] = server.call("GET", links_path)["items"]
    assert edited["url"] == "https://example.com/spring-offer"
    assert problems.items == []
