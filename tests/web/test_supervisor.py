"""The supervisor's view of what is stuck (issue 9; docs/api.md §4.5 and §6), end to end in
Debian's Chromium against a real `dialer serve`: the red banner of a channel the engine
reported down, what a stopping campaign waits for, and forcing a stuck agent free.

The stuck states are what a crash leaves behind (a call the carrier will never report on,
an agent left on it), written into the server's own SQLite database as the crashed process
would have left them; the channel reports are written as the engine writes them (an event
row). Everything else goes through the server."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

from playwright.sync_api import Browser, expect

from tests.web.conftest import SUPERVISOR, Problems, Server, login, shot

LONG = 60_000  # ms


@contextmanager
def database(server: Server) -> Iterator[sqlite3.Connection]:
    """The serving process's SQLite database (tests/web/conftest.py puts it beside the log)."""
    with closing(sqlite3.connect(server.log.parent / "dialer.db", timeout=30)) as conn:
        with conn:  # one transaction, committed on leaving
            yield conn


def agent(server: Server, agent_id: str) -> None:
    server.call("POST", "/api/v1/agents", {"name": agent_id.upper(), "id": agent_id})


def crashed_mid_call(server: Server, campaign_id: str, agent_id: str) -> int:
    """The campaign was terminated and the process died: one call left `ringing` (the
    carrier will never report on it) with `agent_id` on it. Returns the attempt id."""
    now = time.time()
    with database(server) as db:
        (lead_id,) = db.execute(
            "SELECT id FROM leads WHERE campaign_id = ? ORDER BY id LIMIT 1", (campaign_id,)
        ).fetchone()
        cur = db.execute(
            "INSERT INTO attempts (campaign_id, lead_id, step, try_no, channel, idem_key,"
            " status, carrier_id, rang, abandoned, campaign_version, history, created_at,"
            " updated_at) VALUES (?, ?, 0, 1, 'voice', ?, 'ringing', 'CA-lost', 1, 0, 1, ?,"
            " ?, ?)",
            (
                campaign_id,
                lead_id,
                f"{campaign_id}:{lead_id}:0:1",
                json.dumps([{"status": "ringing", "at": now - 30}]),
                now - 30,
                now,
            ),
        )
        attempt_id = int(cur.lastrowid or 0)
        db.execute(
            "UPDATE leads SET status = 'in_progress', active_attempt_id = ? WHERE id = ?",
            (attempt_id, lead_id),
        )
        db.execute(
            "UPDATE campaigns SET state = 'stopping', dispatched = 1, version = version + 1"
            " WHERE id = ?",
            (campaign_id,),
        )
        db.execute(
            "UPDATE agents SET state = 'on_call', campaign_id = ?, attempt_id = ?,"
            " version = version + 1 WHERE id = ?",
            (campaign_id, attempt_id, agent_id),
        )
    return attempt_id


def channel_report(server: Server, campaign_id: str, type_: str, **data: object) -> None:
    """What the engine records when a channel goes down or comes back."""
    with database(server) as db:
        db.execute(
            "INSERT INTO events (at, campaign_id, entity, entity_id, type, actor, data)"
            " VALUES (?, ?, 'campaign', ?, ?, 'engine', ?)",
            (time.time(), campaign_id, campaign_id, type_, json.dumps(data)),
        )


def test_channel_banner_and_what_a_stopping_campaign_waits_for(
    browser: Browser, server: Server, problems: Problems
) -> None:
    agent(server, "w1")
    c = server.campaign("Carrier outage", leads=5, start=False)
    cid = c["id"]
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    page = problems.watch(ctx.new_page())
    login(page, server.url, SUPERVISOR)
    page.locator(f'tr[data-campaign="{cid}"]').get_by_role("link").click()
    expect(page.locator("#campaign-state [data-state='draft']")).to_be_visible(timeout=LONG)
    banner = page.locator("#channel-alert")
    expect(banner).to_be_hidden()
    expect(page.locator("#waiting-for")).to_be_hidden()

    # The engine reports the carrier down: the banner comes with the live event.
    channel_report(
        server,
        cid,
        "campaign.channel_unavailable",
        channel="voice",
        error="connection refused",
        retry_at=time.time() + 30,
    )
    expect(banner).to_be_visible(timeout=LONG)
    expect(banner).to_contain_text(
        re.compile(r"Voice carrier unreachable since \d\d:\d\d — dialling held, retrying")
    )
    expect(banner).to_contain_text("connection refused")
    expect(banner.locator("[data-channel='email']")).to_have_count(0)
    shot(page, "30-channel-down")
    channel_report(server, cid, "campaign.channel_available", channel="voice")
    expect(banner).to_be_hidden(timeout=LONG)

    # After a crash, the terminated campaign waits for a call nobody reports on.
    crashed_mid_call(server, cid, "w1")
    page.reload()
    expect(page.locator("#campaign-state [data-state='stopping']")).to_be_visible(timeout=LONG)
    waiting = page.locator("#waiting-for")
    expect(waiting).to_be_visible()
    expect(waiting.locator("[data-figure='waiting_attempts']")).to_have_text(
        "1 attempt in flight: 1 ringing."
    )
    expect(waiting.locator("#waiting-agents")).to_have_text(
        "Agents held or on a call: W1 (on call)."
    )
    expect(waiting).to_contain_text("the engine resolves the last by")
    shot(page, "31-stopping-waits-for")
    ctx.close()
    assert not problems.items, problems.items


def test_supervisor_forces_a_stuck_agent_free(
    browser: Browser, server: Server, problems: Problems
) -> None:
    agent(server, "f1")
    agent(server, "f2")
    server.call("POST", "/api/v1/agents/f2/state", {"state": "available"})
    c = server.campaign("Crashed mid-call", leads=3, start=False)
    crashed_mid_call(server, c["id"], "f1")
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    page = problems.watch(ctx.new_page())
    login(page, server.url, SUPERVISOR)
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible(timeout=LONG)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents").click()
    stuck = page.locator("tr[data-agent='f1']")
    expect(stuck.locator("[data-state='on_call']")).to_be_visible(timeout=LONG)
    # Only an agent the tables leave stuck offers the override.
    expect(page.locator("tr[data-agent='f2']").get_by_role("button")).to_have_count(0)

    stuck.get_by_role("button", name="Force offline").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("F1 is on call")
    dialog.get_by_label("Reason (optional)").fill("left on a dead call by a crash")
    shot(page, "32-force-dialog")
    dialog.get_by_role("button", name="Force offline").click()
    expect(stuck.locator("[data-state='offline']")).to_be_visible(timeout=LONG)
    expect(stuck.get_by_role("button")).to_have_count(0)
    shot(page, "33-forced-offline")

    agents = {a["id"]: a for a in server.call("GET", "/api/v1/agents")["items"]}
    assert agents["f1"]["state"] == "offline"
    assert agents["f1"]["campaign_id"] is None and agents["f1"]["attempt_id"] is None
    events = server.call("GET", f"/api/v1/campaigns/{c['id']}/events?entity=agent")["items"]
    forced = [e for e in events if e["type"] == "agent.forced"]
    assert len(forced) == 1 and SUPERVISOR in forced[0]["actor"]
    assert (forced[0]["from_state"], forced[0]["to_state"]) == ("on_call", "offline")
    assert forced[0]["reason"] == "left on a dead call by a crash"
    ctx.close()
    assert not problems.items, problems.items
