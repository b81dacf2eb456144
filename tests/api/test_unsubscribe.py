"""RFC 8058 one-click unsubscribe from the link in a sent message, honoured at once."""

from __future__ import annotations

import mailbox
from pathlib import Path
from urllib.parse import urlsplit

from tests.api.conftest import Api

EMAIL_ONLY = {
    "sequence": [
        {"channel": "email", "subject": "Hi {first_name}", "body": "one"},
        {"channel": "email", "delay_seconds": 3600, "subject": "Again", "body": "two"},
    ],
    "caller_ids": [],
}


async def test_one_click_unsubscribe_stops_the_address_everywhere(api: Api, tmp_path: Path) -> None:
    first = await api.campaign(name="First", **EMAIL_ONLY)
    second = await api.campaign(name="Second", **EMAIL_ONLY)
    service = api.runtime.service
    await service.leads.add(first["id"], [{"email": "ann@example.com", "first_name": "Ann"}])
    await service.leads.add(
        second["id"], [{"email": "ann@example.com"}, {"email": "bo@example.com"}]
    )
    await api.call("POST", f"/api/v1/campaigns/{first['id']}/start")
    await api.tick()
    (message,) = list(mailbox.Maildir(tmp_path / "maildir"))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    path = urlsplit(url).path
    status, page = await api.call("GET", path, role=None)
    assert status == 200 and "<form" in page
    lead = (await service.leads.page(first["id"]))[0][0]
    assert lead.status == "in_progress"  # a GET (link prefetch) changes nothing
    status, page = await api.call("POST", path, role=None, data="List-Unsubscribe=One-Click")
    assert status == 200 and "Unsubscribed" in page
    stopped = {
        (x.email, x.status, x.stop_reason)
        for cid in (first["id"], second["id"])
        for x in (await service.leads.page(cid))[0]
    }
    assert stopped == {
        ("ann@example.com", "stopped", "unsubscribed"),
        ("bo@example.com", "pending", None),
    }
    stats = (await api.call("GET", f"/api/v1/campaigns/{first['id']}/stats"))[1]
    assert stats["emails"]["unsubscribed"] == 1
    await api.clock.advance(7200)
    await api.tick()
    assert len(list(mailbox.Maildir(tmp_path / "maildir"))) == 1  # no follow-up went out
    forged = path.rsplit(".", 1)[0] + ".0123456789abcdef0123456789abcdef"
    assert (await api.call("POST", forged, role=None))[0] == 404
    assert (await api.call("POST", "/u/not-a-token", role=None))[0] == 404
