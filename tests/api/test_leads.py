"""Lead routes: import (JSON, CSV), paging, one lead, control; every error status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tests.api.conftest import Api
from tests.harness import ClientFactory, app, leads, sqlite_url, world

CSV = {"Content-Type": "text/csv"}
NY = timezone(timedelta(hours=-5))
EMAIL_ONLY: dict[str, Any] = {
    "sequence": [
        {"channel": "email", "subject": "one", "body": "1"},
        {"channel": "email", "delay_seconds": 4 * 86400, "subject": "two", "body": "2"},
    ],
    "caller_ids": [],
}


def fields(body: Any) -> list[str]:
    return [e["field"] for e in body["error"]["details"]["errors"]]


def when(api: Api, seconds: float) -> str:
    return datetime.fromtimestamp(api.clock.now() + seconds, NY).isoformat()


async def lead_ids(api: Api, cid: str, query: str = "") -> list[int]:
    status, body = await api.call("GET", f"/api/v1/campaigns/{cid}/leads?limit=1000{query}")
    assert status == 200, body
    return [int(x["id"]) for x in body["items"]]


async def test_csv_import_keeps_good_rows_and_numbers_bad_ones_by_line(api: Api) -> None:
    cid = (await api.campaign())["id"]  # voice then email: phone and email are required
    text = (
        "\ufeffPhone,email,First Name,Region,\r\n"  # line 1; a BOM; a nameless column
        "+12125550001,a@example.com,Ann,West,\r\n"  # 2 good
        "not-a-phone,b@example.com,Bob,East\r\n"  # 3 bad phone
        "+12125550003,,Cy,North\r\n"  # 4 no email, and the sequence has an email step
        '"+1 212 555 0004",d@example.com,"Di\r\nanne",South\r\n'  # 5-6 good, two lines
        "+12125550001,e@example.com,Ed,West\r\n"  # 7 duplicate phone of line 2
        "\r\n"  # 8 blank
        "+12125550009,f@example.com,Fi,West,,extra\r\n"  # 9 too many values
        "+12125550010,a@EXAMPLE.com,Gus\r\n"  # 10 duplicate email of line 2
    )
    status, body = await api.call(
        "POST",
        f"/api/v1/campaigns/{cid}/leads",
        role="supervisor",
        data=text.encode(),
        headers=CSV,
    )
    assert status == 200, body
    assert body["accepted"] == 2
    assert [(r["row"], [e["field"] for e in r["errors"]]) for r in body["rejected"]] == [
        (3, ["phone"]),
        (4, ["email"]),
        (7, ["phone"]),
        (9, ["row"]),
        (10, ["email"]),
    ]
    status, page = await api.call("GET", f"/api/v1/campaigns/{cid}/leads", role="viewer")
    ann, di = page["items"]
    assert ann["phone"] == "+12125550001" and ann["first_name"] == "Ann"
    assert ann["custom"] == {"Region": "West"} and ann["timezone"] == "America/New_York"
    assert di["phone"] == "+12125550004" and di["first_name"] == "Di\r\nanne"

    status, body = await api.call(
        "POST", f"/api/v1/campaigns/{cid}/leads", data=b"phone,email\n", headers=CSV
    )
    assert status == 200 and body == {"accepted": 0, "rejected": []}


async def test_csv_that_cannot_be_read_is_refused_naming_the_body(api: Api) -> None:
    cid = (await api.campaign())["id"]
    path = f"/api/v1/campaigns/{cid}/leads"
    for data in (
        b"",
        b" \n\n",
        b"+12125550001,a@example.com\n",  # no header row
        "phone,email,first_name\n+12125550001,a@example.com,Ren\xe9\n".encode("latin-1"),
        b"phone,email,phone\n",
        b'phone,email\n"' + b"9" * 200_000 + b'",a@example.com\n',  # a field beyond csv's limit
    ):
        status, body = await api.call("POST", path, data=data, headers=CSV)
        assert status == 422 and fields(body) == ["body"], (data, body)
    status, body = await api.call(
        "POST", path, data=b"phone\n", headers={"Content-Type": "text/plain"}
    )
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"
    status, body = await api.call(
        "POST", path, data=b"phone\n", headers={"Content-Type": "text/csv; charset=bogus"}
    )
    assert status == 415
    latin = "phone,email,first_name\n+12125550001,a@example.com,Ren\xe9\n".encode("latin-1")
    status, body = await api.call(
        "POST", path, data=latin, headers={"Content-Type": "text/csv; charset=latin-1"}
    )
    assert status == 200 and body["accepted"] == 1


async def test_json_import_and_errors(api: Api) -> None:
    cid = (await api.campaign())["id"]
    path = f"/api/v1/campaigns/{cid}/leads"
    rows: list[Any] = [*leads(2), {"phone": "12", "email": "x@example.com"}, "nope", leads(1)[0]]
    rows.append({"phone": "+12125550099", "email": "z@example.com", "shoe_size": 9})
    status, body = await api.call("POST", path, json={"leads": rows})
    assert status == 200 and body["accepted"] == 2
    assert [(r["row"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        (3, "phone"),
        (4, "row"),
        (5, "phone"),
        (6, "shoe_size"),
    ]
    assert (await api.call("POST", path, role=None, json={"leads": []}))[0] == 401
    for role in ("viewer", "agent"):
        status, body = await api.call("POST", path, role=role, json={"leads": []})
        assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await api.call("POST", "/api/v1/campaigns/c_nope/leads", json={"leads": []})
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await api.call("POST", path, json={"rows": []})
    assert status == 422 and set(fields(body)) == {"leads", "rows"}
    status, body = await api.call("POST", path, json={"leads": {"phone": "+12125550001"}})
    assert status == 422 and fields(body) == ["leads"]
    status, body = await api.call(
        "POST", path, data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and body["error"]["code"] == "bad_json"
    status, _ = await api.call("POST", f"/api/v1/campaigns/{cid}/terminate", json={"confirm": cid})
    assert status == 200
    status, body = await api.call("POST", path, json={"leads": leads(1, start=50)})
    assert status == 409 and body["error"]["details"]["state"] == "cancelled"


async def test_paging_returns_each_lead_once(api: Api) -> None:
    cid = (await api.campaign())["id"]
    await api.runtime.service.leads.add(cid, leads(25))
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        status, body = await api.call(
            "GET", f"/api/v1/campaigns/{cid}/leads?limit=10{cursor}", role="viewer"
        )
        assert status == 200, body
        seen += [x["id"] for x in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert pages == 3 and len(seen) == 25 and len(set(seen)) == 25
    first = seen[0]
    assert (await api.call("POST", f"/api/v1/leads/{first}/skip"))[0] == 200
    assert await lead_ids(api, cid, "&status=skipped") == [int(first)]
    assert len(await lead_ids(api, cid, "&status=pending")) == 24
    path = f"/api/v1/campaigns/{cid}/leads"
    for query, name in (("status=bogus", "status"), ("limit=0", "limit"), ("cursor=x", "cursor")):
        status, body = await api.call("GET", f"{path}?{query}")
        assert status == 422 and fields(body) == [name], body
    assert (await api.call("GET", path, role=None))[0] == 401
    assert (await api.call("GET", path, role="agent"))[0] == 403
    assert (await api.call("GET", "/api/v1/campaigns/c_nope/leads"))[0] == 404


async def test_one_lead_with_its_attempts(api: Api) -> None:
    cid = (await api.campaign(**EMAIL_ONLY))["id"]
    await api.runtime.service.leads.add(cid, [{"email": "a@example.com"}])
    (lead_id,) = await lead_ids(api, cid)
    assert (await api.call("POST", f"/api/v1/campaigns/{cid}/start"))[0] == 200
    await api.tick()
    status, body = await api.call("GET", f"/api/v1/leads/{lead_id}", role="viewer")
    assert status == 200 and body["status"] == "in_progress"
    assert [(a["channel"], a["lead_id"]) for a in body["attempts"]] == [("email", str(lead_id))]
    assert (await api.call("GET", f"/api/v1/leads/{lead_id}", role=None))[0] == 401
    assert (await api.call("GET", f"/api/v1/leads/{lead_id}", role="agent"))[0] == 403
    for bad in ("999999", "abc", "1.5", "-1", "9" * 40):
        status, body = await api.call("GET", f"/api/v1/leads/{bad}")
        assert status == 404 and body["error"]["code"] == "not_found", bad
        assert (await api.call("POST", f"/api/v1/leads/{bad}/stop"))[0] == 404


async def test_lead_control(api: Api) -> None:
    cid = (await api.campaign())["id"]
    rows = leads(6)
    for i, row in enumerate(rows):
        row["company"] = "Acme" if i % 2 else "Other"
    await api.runtime.service.leads.add(cid, rows)
    a, b, c, d, e, f = await lead_ids(api, cid)
    status, body = await api.call("POST", f"/api/v1/leads/{a}/pause", json={"reason": "x"})
    assert status == 409 and body["error"]["details"]["state"] == "pending"  # only in_progress
    status, body = await api.call("POST", f"/api/v1/leads/{a}/skip", role="supervisor")
    assert status == 200 and body["status"] == "skipped"
    status, body = await api.call("POST", f"/api/v1/leads/{a}/resume")
    assert status == 409 and body["error"]["details"]["state"] == "skipped"
    status, body = await api.call("POST", f"/api/v1/leads/{c}/stop", json={"reason": "no"})
    assert status == 200 and body["status"] == "stopped" and body["stop_reason"] == "manual"
    status, body = await api.call("POST", f"/api/v1/leads/{c}/skip")
    assert status == 409 and body["error"]["details"]["state"] == "stopped"
    status, body = await api.call("POST", f"/api/v1/leads/{b}/qualify", json={"scope": "company"})
    assert status == 200 and sorted(int(x["id"]) for x in body["items"]) == [b, d, f]
    assert {x["stop_reason"] for x in body["items"]} == {"qualified", "company_stopped"}
    status, body = await api.call("POST", f"/api/v1/leads/{e}/qualify")
    assert status == 200 and [int(x["id"]) for x in body["items"]] == [e]
    status, body = await api.call("POST", f"/api/v1/leads/{e}/qualify", json={"scope": "all"})
    assert status == 422 and fields(body) == ["scope"]
    status, body = await api.call("POST", f"/api/v1/leads/{e}/stop", json={"reason": 5})
    assert status == 422 and fields(body) == ["reason"]
    for action in ("pause", "resume", "stop", "skip", "qualify"):
        path = f"/api/v1/leads/{e}/{action}"
        assert (await api.call("POST", path, role=None))[0] == 401
        assert (await api.call("POST", path, role="viewer"))[0] == 403
        assert (await api.call("POST", path, role="agent"))[0] == 403


async def test_pause_until_resumes_by_itself(api: Api) -> None:
    cid = (await api.campaign(**EMAIL_ONLY))["id"]
    await api.runtime.service.leads.add(cid, [{"email": "a@example.com"}])
    (lead_id,) = await lead_ids(api, cid)
    await api.call("POST", f"/api/v1/campaigns/{cid}/start")
    await api.tick()
    path = f"/api/v1/leads/{lead_id}/pause"
    status, body = await api.call("POST", path, json={"until": when(api, -60)})
    assert status == 422 and fields(body) == ["until"]
    naive = datetime.fromtimestamp(api.clock.now() + 60).isoformat()  # no offset
    status, body = await api.call("POST", path, json={"until": naive})
    assert status == 422 and fields(body) == ["until"]
    status, body = await api.call("POST", path, json={"until": "soon"})
    assert status == 422 and fields(body) == ["until"]
    until = when(api, 3600)
    status, body = await api.call(
        "POST", path, role="supervisor", json={"reason": "call back", "until": until}
    )
    assert status == 200 and body["status"] == "paused" and body["pause_reason"] == "call back"
    assert datetime.fromisoformat(body["paused_until"]) == datetime.fromisoformat(until)
    assert datetime.fromisoformat(body["paused_until"]).utcoffset() == timedelta(0)
    status, again = await api.call("POST", path, json={"reason": "again"})
    assert status == 200 and again["status"] == "paused"  # pausing a paused lead changes nothing
    await api.clock.advance(3000)
    await api.tick()
    assert (await api.call("GET", f"/api/v1/leads/{lead_id}"))[1]["status"] == "paused"
    await api.clock.advance(601)
    await api.tick()
    status, body = await api.call("GET", f"/api/v1/leads/{lead_id}")
    assert body["status"] == "in_progress" and body["paused_until"] is None
    status, body = await api.call("POST", f"/api/v1/leads/{lead_id}/pause")
    assert status == 200 and body["status"] == "paused" and body["paused_until"] is None
    status, body = await api.call("POST", f"/api/v1/leads/{lead_id}/resume")
    assert status == 200 and body["status"] == "in_progress"


# -- issue 14: search, stale, bulk actions, export ------------------------------------------
async def test_bulk_action_counts_then_acts_and_names_bad_fields(api: Api) -> None:
    cid = (await api.campaign(**EMAIL_ONLY))["id"]
    await api.call("POST", f"/api/v1/campaigns/{cid}/leads", json={"leads": leads(7)})
    path = f"/api/v1/campaigns/{cid}/leads/actions"
    body = {"action": "skip", "filter": {"company": "Co3", "status": "pending"}}
    status, out = await api.call("POST", path, role="supervisor", json={**body, "dry_run": True})
    assert (status, out) == (200, {"matched": 1, "changed": 1})
    assert await lead_ids(api, cid, "&status=skipped") == []
    status, out = await api.call("POST", path, role="supervisor", json=body)
    assert (status, out) == (200, {"matched": 1, "changed": 1})
    assert len(await lead_ids(api, cid, "&status=skipped")) == 1
    status, out = await api.call("POST", path, role="viewer", json=body)
    assert status == 403
    for bad, field in (
        ({"action": "pause", "filter": {"colour": "red"}}, "filter.colour"),
        ({"action": "pause", "filter": {"status": "pending"}}, "filter.status"),
        ({"action": "pause", "until": when(api, -60)}, "until"),
        ({"action": "resume", "at": when(api, -60)}, "at"),
        ({"action": "dial"}, "action"),
    ):
        status, out = await api.call("POST", path, role="supervisor", json=bad)
        assert status == 422 and fields(out) == [field], (bad, out)


async def test_search_stale_flag_and_csv_export(api: Api) -> None:
    cid = (await api.campaign(**EMAIL_ONLY))["id"]
    rows = leads(3)
    rows[1]["company"] = '=HYPERLINK("http://x")'
    await api.call("POST", f"/api/v1/campaigns/{cid}/leads", json={"leads": rows})
    await api.call("POST", f"/api/v1/campaigns/{cid}/start", role="supervisor")
    await api.tick()
    first = (await lead_ids(api, cid))[0]
    status, lead = await api.call("POST", f"/api/v1/leads/{first}/pause", role="supervisor")
    assert status == 200 and lead["paused_at"] and lead["stale"] is False
    await api.advance(31 * 86400)
    status, page = await api.call("GET", f"/api/v1/campaigns/{cid}/leads?stale=true")
    assert [x["id"] for x in page["items"]] == [str(first)] and page["items"][0]["stale"]
    status, stats = await api.call("GET", f"/api/v1/campaigns/{cid}/stats")
    assert stats["leads"]["stale"] == 1
    assert await lead_ids(api, cid, "&q=LEAD2%40example") == [first + 2]
    status, out = await api.call("GET", f"/api/v1/campaigns/{cid}/leads?stale=maybe")
    assert status == 422 and fields(out) == ["stale"]
    status, out = await api.call("GET", f"/api/v1/campaigns/{cid}/leads?pause_reason=%00")
    assert status in (400, 422)
    status, text = await api.call("GET", f"/api/v1/campaigns/{cid}/leads.csv?status=in_progress")
    assert status == 200
    lines = text.splitlines()
    assert lines[0].startswith("id,phone,email") and "stop_reason" in lines[0]
    assert len(lines) == 3  # the header and the two leads in progress
    assert lines[1].split(",")[1] == "'+12125550001"  # a leading + reads as a formula
    assert "'=HYPERLINK" in lines[1]
    status, text = await api.call("GET", f"/api/v1/campaigns/{cid}/leads.csv?stale=true")
    assert len(text.splitlines()) == 2 and text.splitlines()[1].startswith(f"{first},")
    status, out = await api.call("GET", "/api/v1/campaigns/c_nope/leads.csv")
    assert status == 404


async def test_stale_pause_days_setting_reaches_the_api(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    w = world(tmp_path)
    client = await aiohttp_client(
        app(sqlite_url(tmp_path, "stale"), "w", w.clock, email=w.email, stale_pause_days=0.25)
    )
    api = Api(client, w.clock, w.sim, w.voice)
    cid = (await api.campaign(**EMAIL_ONLY))["id"]
    await api.call("POST", f"/api/v1/campaigns/{cid}/leads", json={"leads": leads(1)})
    await api.call("POST", f"/api/v1/campaigns/{cid}/start")
    await api.tick()
    (lead_id,) = await lead_ids(api, cid)
    await api.call("POST", f"/api/v1/leads/{lead_id}/pause")
    await api.advance(5 * 3600)
    assert await lead_ids(api, cid, "&stale=true") == []
    await api.advance(3600 + 1)  # six hours: a quarter of a day
    assert await lead_ids(api, cid, "&stale=true") == [lead_id]
