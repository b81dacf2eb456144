"""The dashboard end to end: a real `dialer serve` with the simulated carrier, driven in
Debian's Chromium. Screenshots of each step go to artifacts/screenshots/."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import (
    AGENT_USER,
    README_SHOT,
    SUPERVISOR,
    Problems,
    Server,
    login,
    shot,
)

LONG = 60_000  # ms: generous, the simulated carrier runs on a busy CI machine too


def figure(page: Page, name: str) -> int:
    text = page.locator(f'[data-figure="{name}"]').first.inner_text()
    return int(re.sub(r"[^0-9]", "", text) or 0)


def wait_figure_above(page: Page, name: str, value: int) -> None:
    page.wait_for_function(
        """([name, value]) => {
            const el = document.querySelector(`[data-figure="${name}"]`);
            return el && Number(el.textContent.replace(/[^0-9]/g, "")) > value;
        }""",
        arg=[name, value],
        timeout=LONG,
    )


def held_still(page: Page, name: str, seconds: float) -> int:
    """The figure's value after it stayed the same for `seconds` (60 simulated seconds at
    20x): this observes that nothing grows, so it has to watch for a while."""
    value = figure(page, name)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        assert figure(page, name) == value, f"{name} grew while paused"
    return value


def test_static_files_are_served_with_a_strict_policy(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/") as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert b'<script type="module" src="/static/js/main.js">' in resp.read()
    with urllib.request.urlopen(server.url + "/static/js/main.js") as resp:
        assert resp.headers["Content-Type"].startswith("text/javascript")
    for path in (
        "/static/../pyproject.toml",
        "/static/%2e%2e/pyproject.toml",
        "/static/.x.js",
        "/static/vendor/uplot/LICENSE",  # only the listed types are served
        "/static/nothing.js",
    ):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + path)
        err.value.close()
        assert err.value.code == 404, path


def test_wrong_password_is_shown_in_words(browser: Browser, server: Server) -> None:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.get_by_label("Username").fill(SUPERVISOR)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert").filter(has_text="wrong username or password")).to_be_visible()
    page.close()


@pytest.mark.timeout(420)
def test_pause_play_terminate(browser: Browser, server: Server, problems: Problems) -> None:
    c = server.campaign("Spring renewals")
    cid = c["id"]
    sup = browser.new_context(viewport={"width": 1360, "height": 900})
    page = problems.watch(sup.new_page())

    # Log in and open the running campaign from the list.
    login(page, server.url, SUPERVISOR)
    row = page.locator(f'tr[data-campaign="{cid}"]')
    expect(row.locator('[data-state="running"]')).to_be_visible(timeout=LONG)
    shot(page, "01-campaigns")
    row.get_by_role("link", name="Spring renewals").click()
    expect(page.locator("#campaign-state [data-state='running']")).to_be_visible()

    # Figures move (live campaign.stats events).
    start = figure(page, "received")
    wait_figure_above(page, "received", start + 5)
    wait_figure_above(page, "answered", 2)
    shot(page, "02-running")

    # Pause asks first; the button becomes play once the server's event says paused.
    control = page.locator("#control")
    expect(control).to_have_attribute("data-action", "pause")
    control.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Pause")
    dialog.get_by_label("Reason (optional)").fill("script change")
    dialog.get_by_role("button", name="Pause campaign").click()
    expect(control).to_have_attribute("data-action", "play", timeout=LONG)
    expect(page.locator("#campaign-state [data-state='paused']")).to_be_visible()
    shot(page, "03-paused")

    # Calls in flight end; then nothing grows.
    expect(page.locator('[data-figure="in_flight"]')).to_have_text("0", timeout=LONG)
    dialed = server.stats(cid)["calls"]["dialed"]
    received = held_still(page, "received", 3.0)
    assert server.stats(cid)["calls"]["dialed"] == dialed
    assert server.stats(cid)["calls"]["received"] == received
    shot(page, "04-paused-still")

    # The agent, in its own browser context: its queue emptied and itself free.
    agent_ctx = browser.new_context(viewport={"width": 1024, "height": 768})  # a tablet
    agent = problems.watch(agent_ctx.new_page())
    login(agent, server.url, AGENT_USER)
    expect(agent.locator("#agent-status [data-free='true']")).to_be_visible(timeout=LONG)
    expect(agent.locator("#upcoming [data-empty='true']")).to_be_visible(timeout=LONG)
    shot(agent, "05-agent-free")

    # Play: resume now; the button becomes pause again and dispatch resumes.
    control.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Resume now")).to_be_checked()
    dialog.get_by_role("button", name="Resume").click()
    expect(control).to_have_attribute("data-action", "pause", timeout=LONG)
    wait_figure_above(page, "received", received + 8)
    shot(page, "06-resumed")
    README_SHOT.parent.mkdir(parents=True, exist_ok=True)
    # The README's picture: running, then paused (the flat stretch), then resumed.
    page.screenshot(path=str(README_SHOT), full_page=True)
    expect(agent.locator("#upcoming table")).to_be_visible(timeout=LONG)
    shot(agent, "07-agent-working")

    # Terminate: only with the id typed; then the steps, until stopped; no play any more.
    confirm = page.get_by_label(re.compile("Type the campaign id"))
    terminate = page.get_by_role("button", name="Terminate campaign")
    confirm.fill("not-the-id")
    expect(terminate).to_be_disabled()
    confirm.fill(cid)
    terminate.click()
    steps = page.locator("#terminate-steps")
    expect(steps).to_contain_text("Stopped claiming new work", timeout=LONG)
    shot(page, "08-terminating")
    expect(page.locator("#campaign-state [data-state='stopped']")).to_be_visible(timeout=LONG)
    expect(steps.locator("[data-step='state:stopping->stopped']")).to_be_visible()
    expect(steps.locator("li.wait")).to_have_count(0)
    expect(control).to_be_hidden()
    expect(page.locator("[data-action='play']")).to_have_count(0)
    final = server.stats(cid)["calls"]
    expect(page.locator('[data-figure="in_flight"]')).to_have_text(str(final["in_flight"]))
    expect(page.locator('[data-figure="received"]')).to_have_text(str(final["received"]))
    shot(page, "09-stopped")

    # The agent is free again and the audit trail names the supervisor's actions.
    expect(agent.locator("#agent-status [data-free='true']")).to_be_visible(timeout=LONG)
    page.get_by_role("tab", name="Audit trail").click()
    trail = page.get_by_role("table", name="Audit trail")
    expect(trail).to_contain_text(f"supervisor:{SUPERVISOR}", timeout=LONG)
    expect(trail.locator("[data-event='terminate.claims_stopped']")).to_be_visible()
    shot(page, "10-audit")
    sup.close()
    agent_ctx.close()
    assert not problems.items, problems.items


def test_configuration_and_lead_actions(
    browser: Browser, server: Server, problems: Problems
) -> None:
    c = server.campaign("Autumn upsell", leads=60)
    cid = c["id"]
    deadline = time.monotonic() + 60  # some leads in progress first (setup, not an outcome)
    while server.stats(cid)["leads"]["in_progress"] < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    c = server.call("POST", f"/api/v1/campaigns/{cid}/pause", {"reason": "setup"})["campaign"]
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = problems.watch(ctx.new_page())
    login(page, server.url, SUPERVISOR)
    page.locator(f'tr[data-campaign="{cid}"]').get_by_role("link").click()
    expect(page.locator("#campaign-state [data-state='paused']")).to_be_visible(timeout=LONG)

    # Editable while paused. The user starts editing, someone else saves meanwhile: the
    # user's save is refused with a 412 in words (never a silent overwrite). Typing first
    # keeps the form's version whether or not the other change's live event came already.
    page.get_by_role("tab", name="Configuration").click()
    wrap = page.get_by_label("Wrap-up seconds")
    expect(wrap).to_be_enabled()
    wrap.fill("5")
    server.call(
        "PATCH",
        f"/api/v1/campaigns/{cid}",
        {"name": "Autumn upsell (edited)"},
        **{"If-Match": str(c["version"])},
    )
    page.get_by_role("button", name="Save changes").click()
    alert = page.get_by_role("alert").filter(has_text="Someone else changed this")
    expect(alert).to_contain_text("version")
    shot(page, "20-config-412")

    # Reloaded: saved; then a bad sequence is a 422 naming the field.
    page.reload()
    page.get_by_role("tab", name="Configuration").click()
    page.get_by_label("Wrap-up seconds").fill("5")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved: wrap_up_seconds")).to_be_visible()
    expect(page.get_by_text(f"Version {c['version'] + 2}.")).to_be_visible()
    seq = page.get_by_label("Sequence (JSON)")
    seq.fill(seq.input_value().replace('"ring_timeout_seconds": 25', '"ring_timeout_seconds": 5'))
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert").filter(has_text="ring_timeout_seconds")).to_be_visible()
    shot(page, "21-config-422")

    # Leads: pause one in progress with a reason and a date, find it under Paused, resume it.
    page.get_by_role("tab", name="Leads").click()
    page.locator("#lead-filter").select_option("in_progress")
    row = page.locator("tr[data-status='in_progress']").first
    lead_id = row.get_attribute("data-lead")
    row.get_by_role("button", name=f"Pause lead {lead_id}").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason").fill("asked to call back")
    dialog.get_by_label(re.compile("Until")).fill("2030-01-02T10:30")
    dialog.get_by_role("button", name="Pause lead").click()
    expect(page.locator(f"tr[data-lead='{lead_id}'][data-status='paused']")).to_be_visible()
    page.locator("#lead-filter").select_option("paused")
    paused = page.locator(f"tr[data-lead='{lead_id}']")
    expect(paused).to_contain_text("asked to call back")
    shot(page, "22-lead-paused")
    paused.get_by_role("button", name=f"Resume lead {lead_id}").click()
    expect(page.locator(f"tr[data-lead='{lead_id}'][data-status='in_progress']")).to_be_visible()

    # A pending lead: skip; another: qualify for its whole company.
    page.locator("#lead-filter").select_option("pending")
    first = page.locator("tr[data-status='pending']").first
    skip_id = first.get_attribute("data-lead")
    first.get_by_role("button", name=f"Skip lead {skip_id}").click()
    expect(page.locator(f"tr[data-lead='{skip_id}'][data-status='skipped']")).to_be_visible()
    other = page.locator("tr[data-status='pending']").first
    q_id = other.get_attribute("data-lead")
    other.get_by_role("button", name=f"Qualify lead {q_id}").click()
    page.get_by_role("dialog").get_by_label(re.compile("Every open lead")).check()
    page.get_by_role("dialog").get_by_role("button", name="Qualify").click()
    expect(page.locator(f"tr[data-lead='{q_id}'][data-status='stopped']")).to_be_visible()
    shot(page, "23-leads")
    ctx.close()
    assert not problems.items, problems.items
