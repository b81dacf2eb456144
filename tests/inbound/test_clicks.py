"""Tracked links: every link of a sent mail goes through /c/<token>, redirects to the
link's current target, counts people apart from link scanners, and follows an edit of the
target even from mails already sent (docs/architecture.md §9.1)."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from tests.inbound.conftest import Rig

Make = Callable[[str], Awaitable[Rig]]
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0"
CAMPAIGN = {
    "name": "Links",
    "sequence": [
        {
            "channel": "email",
            "subject": "Hi",
            "body": "See https://example.com/offer?x=1. Docs: https://docs.example.com/a",
        },
    ],
    "sender": {"email": "sales@mail.example.com"},
}


async def test_links_redirect_count_and_follow_an_edit(make_rig: Make, db_url: str) -> None:
    rig = await make_rig(db_url)
    status, c = await rig.call("POST", "/api/v1/campaigns", json=CAMPAIGN)
    cid = c["id"]
    await rig.runtime.service.leads.add(
        cid, [{"email": "ann@example.org"}, {"email": "bo@example.org"}]
    )
    await rig.call("POST", f"/api/v1/campaigns/{cid}/start")
    await rig.tick()
    bodies = {str(m["To"]): str(m.get_payload()) for m in mailbox.Maildir(rig.maildir)}
    ann = re.findall(r"https://dialer\.example\.com/c/[0-9a-f.]+", bodies["ann@example.org"])
    assert len(ann) == 2 and "example.com/offer" not in bodies["ann@example.org"]
    assert bodies["ann@example.org"].count(". Docs:") == 1  # the full stop stays prose
    offer = urlsplit(ann[0]).path

    async def follow(path: str, agent: str = BROWSER, method: str = "GET") -> tuple[int, str]:
        resp = await rig.client.request(
            method, path, allow_redirects=False, headers={"User-Agent": agent}
        )
        return resp.status, resp.headers.get("Location", "")

    # Scanners: within seconds of the send, HEAD, known agents: bot clicks.
    assert await follow(offer) == (302, "https://example.com/offer?x=1")
    await rig.clock.advance(60)
    assert (await follow(offer, method="HEAD"))[0] == 302
    assert (await follow(offer, agent="Barracuda Sentinel (EE)"))[0] == 302
    # People: two clicks by ann, one unique.
    assert await follow(offer) == (302, "https://example.com/offer?x=1")
    assert (await follow(offer))[0] == 302
    status, links = await rig.call("GET", f"/api/v1/campaigns/{cid}/links")
    assert status == 200
    items = {i["url"]: i for i in links["items"]}
    offer_link = items["https://example.com/offer?x=1"]
    assert (offer_link["clicks"], offer_link["unique_clicks"], offer_link["bot_clicks"]) == (
        2,
        1,
        3,
    )
    assert items["https://docs.example.com/a"]["clicks"] == 0
    # An edit applies to mails already sent; it is audited with old and new target.
    path = f"/api/v1/campaigns/{cid}/links/{offer_link['id']}"
    status, out = await rig.call("PATCH", path, json={"url": "https://example.com/new"})
    assert status == 200 and out["url"] == "https://example.com/new"
    assert await follow(offer) == (302, "https://example.com/new")
    status, _ = await rig.call("PATCH", path, json={"url": "javascript:alert(1)"})
    assert status == 422
    status, events = await rig.call("GET", f"/api/v1/campaigns/{cid}/events")
    changed = [e for e in events["items"] if e["type"] == "campaign.link_changed"]
    assert changed and changed[0]["data"]["old"] == "https://example.com/offer?x=1"
    assert changed[0]["data"]["new"] == "https://example.com/new"
    # Figures: one lead clicked (bots not counted).
    stats = (await rig.call("GET", f"/api/v1/campaigns/{cid}/stats"))[1]
    assert stats["emails"]["clicked"] == 1
    assert rig.runtime.metrics.email_clicks._value.get() == 3
    # A token we did not sign: a 404 page with the security headers.
    forged = offer.rsplit(".", 1)[0] + ".000000000000000000000000"
    resp = await rig.client.get(forged, allow_redirects=False)
    assert resp.status == 404 and "not valid" in await resp.text()
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert (await rig.client.get("/c/nonsense", allow_redirects=False)).status == 404
