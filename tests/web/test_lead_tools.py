"""A supervisor's day on the dashboard (issue 14; docs/api.md §5): search, the stale flag, a
bulk action by filter (count first, then confirm), archive and unarchive, pausing a
scheduled campaign, and the agents' figures of the day. Debian's Chromium against a real
`dialer serve`."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime

from playwright.sync_api import Browser, expect

from tests.web.conftest import SUPERVISOR, Problems, Server, login, shot

LONG = 60_000  # ms
DAY = 86400.0


def paused_long_ago(server: Server, campaign_id: str, days: float) -> int:
    """One lead of the campaign paused `days` ago (as a pause then would have left it)."""
    with closing(sqlite3.connect(server.log.parent / "dialer.db", timeout=30)) as conn:
        with conn:
            (lead_id,) = conn.execute(
                "SELECT id FROM leads WHERE campaign_id = ? ORDER BY id LIMIT 1", (campaign_id,)
            ).fetchone()
            conn.execute(
                "UPDATE leads SET status = 'paused', pause_reason = 'call back in spring',"
                " paused_at = ?, paused_remaining = 0 WHERE id = ?",
                (time.time() - days * DAY, lead_id),
            )
    return int(lead_id)


def test_bulk_action_search_stale_and_archive(
    browser: Browser, server: Server, problems: Problems
) -> None:
    c = server.campaign("Supervisor day", leads=12, start=False)
    cid = c["id"]
    stale_id = paused_long_ago(server, cid, 40)
    leads = server.call("GET", f"/api/v1/campaigns/{cid}/leads?limit=100")["items"]
    other = leads[3]
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    page = problems.watch(ctx.new_page())
    login(page, server.url, SUPERVISOR)
    page.locator(f'tr[data-campaign="{cid}"]').get_by_role("link").click()
    expect(page.locator("#campaign-state [data-state='draft']")).to_be_visible(timeout=LONG)
    expect(page.get_by_role("table", name="Agents today")).to_be_visible()

    page.get_by_role("tab", name="Leads").click()
    rows = page.locator("tr[data-lead]")
    expect(rows).to_have_count(12, timeout=LONG)
    stale_row = page.locator(f'tr[data-lead="{stale_id}"]')
    expect(stale_row.locator("[data-state='stale']")).to_be_visible()
    page.get_by_label("Stale pauses only").check()
    expect(rows).to_have_count(1, timeout=LONG)
    page.get_by_label("Stale pauses only").uncheck()
    expect(rows).to_have_count(12, timeout=LONG)
    page.get_by_label("Search", exact=True).fill(other["email"].upper())
    expect(rows).to_have_count(1, timeout=LONG)
    expect(page.locator(f'tr[data-lead="{other["id"]}"]')).to_be_visible()
    href = page.locator("#lead-export").get_attribute("href") or ""
    assert f"/api/v1/campaigns/{cid}/leads.csv?" in href and "q=" in href

    # Bulk: skip every pending lead; the count comes first, then the confirmation.
    page.get_by_label("Search", exact=True).fill("")
    expect(rows).to_have_count(12, timeout=LONG)
    page.get_by_label("Status", exact=True).select_option("pending")
    expect(rows).to_have_count(11, timeout=LONG)
    page.get_by_role("button", name="Bulk action…").click()
    page.get_by_label("Action", exact=True).select_option("skip")
    page.get_by_role("button", name="Preview count").click()
    expect(page.locator("#bulk-count")).to_have_text(
        "11 match the filters; 11 can be skipped (the others' status does not take this action).",
        timeout=LONG,
    )
    shot(page, "40-bulk-count")
    page.get_by_role("button", name="Skip 11").click()
    expect(page.locator("tr[data-status='pending']")).to_have_count(0, timeout=LONG)
    page.get_by_label("Status", exact=True).select_option("")
    expect(page.locator("tr[data-status='skipped']")).to_have_count(11, timeout=LONG)
    audit = server.call("GET", f"/api/v1/campaigns/{cid}/events?entity=campaign")["items"]
    bulk = [e for e in audit if e["type"] == "leads.bulk_action"]
    assert [(e["data"]["matched"], e["data"]["changed"]) for e in bulk] == [(11, 11)]
    assert bulk[0]["data"]["filter"] == {"status": "pending"}

    # Archive, then unarchive: the button follows the flag.
    page.get_by_role("tab", name="Overview").click()
    page.get_by_role("button", name="Archive", exact=True).click()
    expect(page.get_by_role("button", name="Unarchive")).to_be_visible(timeout=LONG)
    assert server.call("GET", f"/api/v1/campaigns/{cid}")["archived"] is True
    page.get_by_role("button", name="Unarchive").click()
    expect(page.get_by_role("button", name="Archive", exact=True)).to_be_visible(timeout=LONG)
    assert server.call("GET", f"/api/v1/campaigns/{cid}")["archived"] is False
    ctx.close()
    assert not problems.items, problems.items


def test_a_scheduled_campaign_is_paused_from_its_page(
    browser: Browser, server: Server, problems: Problems
) -> None:
    c = server.campaign("Scheduled", leads=2, start=False)
    cid = c["id"]
    at = datetime.fromtimestamp(time.time() + 3 * 3600, UTC).isoformat()
    server.call("POST", f"/api/v1/campaigns/{cid}/start", {"at": at})
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    page = problems.watch(ctx.new_page())
    login(page, server.url, SUPERVISOR)
    page.locator(f'tr[data-campaign="{cid}"]').get_by_role("link").click()
    expect(page.locator("#campaign-state [data-state='scheduled']")).to_be_visible(timeout=LONG)
    page.get_by_role("button", name="Pause (drop the scheduled start)").click()
    expect(page.locator("#campaign-state [data-state='paused']")).to_be_visible(timeout=LONG)
    assert server.call("GET", f"/api/v1/campaigns/{cid}")["scheduled_at"] is None
    ctx.close()
    assert not problems.items, problems.items
