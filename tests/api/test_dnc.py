"""Do-not-call routes: add (JSON, CSV), page, remove; every error status; and a listed
number is never dialled (its lead is stopped with reason `dnc`)."""

from __future__ import annotations

from typing import Any

import pytest

from dialer.domain.states import CampaignState
from tests.api.conftest import Api
from tests.harness import leads, phone

CSV = {"Content-Type": "text/csv"}


def fields(body: Any) -> list[str]:
    return [e["field"] for e in body["error"]["details"]["errors"]]


async def listed(api: Api) -> list[str]:
    status, body = await api.call("GET", "/api/v1/dnc?limit=1000", role="viewer")
    assert status == 200, body
    return [x["phone"] for x in body["items"]]


async def test_add_normalises_and_reports_bad_numbers_by_row(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/dnc",
        role="supervisor",
        json={
            "phones": ["(212) 555-0001", "not a phone", "+44 20 7946 0958", 12, "+12125550001"],
            "reason": "asked",
        },
    )
    assert status == 200, body
    assert body["added"] == 2  # the repeat of row 1 is not counted twice
    assert [(r["row"], [e["field"] for e in r["errors"]]) for r in body["rejected"]] == [
        (2, ["phone"]),
        (4, ["phone"]),
    ]
    assert await listed(api) == ["+12125550001", "+442079460958"]
    # Listing again adds nothing and rejects nothing.
    status, body = await api.call("POST", "/api/v1/dnc", json={"phones": ["+12125550001"]})
    assert (status, body) == (200, {"added": 0, "rejected": []})


async def test_csv_import_numbers_bad_rows_by_line(api: Api) -> None:
    text = (
        "name,Phone\r\n"  # line 1: the header, any column order
        "Ann,+12125550001\r\n"  # 2
        "Bob,nope\r\n"  # 3 bad
        "\r\n"  # 4 blank
        'Cy,"+1 212 555 0003"\r\n'  # 5
        "Di\r\n"  # 6 no phone cell
    )
    status, body = await api.call(
        "POST", "/api/v1/dnc?reason=list%20import", data=text.encode(), headers=CSV
    )
    assert status == 200, body
    assert body["added"] == 2
    assert [r["row"] for r in body["rejected"]] == [3, 6]
    status, page = await api.call("GET", "/api/v1/dnc")
    assert [(x["phone"], x["reason"]) for x in page["items"]] == [
        ("+12125550001", "list import"),
        ("+12125550003", "list import"),
    ]
    assert page["items"][0]["added_at"].startswith("2026-01-05T15:00:00")


async def test_csv_without_a_phone_column_is_422(api: Api) -> None:
    status, body = await api.call(
        "POST", "/api/v1/dnc", data=b"name,number\r\nAnn,+12125550001\r\n", headers=CSV
    )
    assert status == 422
    assert fields(body) == ["body"]


async def test_pages_follow_the_cursor(api: Api) -> None:
    numbers = [phone(i) for i in range(7)]
    await api.call("POST", "/api/v1/dnc", json={"phones": numbers})
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        status, body = await api.call("GET", f"/api/v1/dnc?limit=3&cursor={cursor}")
        assert status == 200, body
        seen += [x["phone"] for x in body["items"]]
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert seen == sorted(numbers)


async def test_delete_takes_a_number_off(api: Api) -> None:
    await api.call("POST", "/api/v1/dnc", json={"phones": [phone(1), phone(2)]})
    status, _ = await api.call("DELETE", "/api/v1/dnc/%2B12125550001", role="supervisor")
    assert status == 204
    assert await listed(api) == [phone(2)]
    status, body = await api.call("DELETE", "/api/v1/dnc/%2B12125550001")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert (await api.call("DELETE", "/api/v1/dnc/garbage"))[0] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "phones"),
        ({"phones": "+12125550001"}, "phones"),
        ({"phones": [], "reason": "x" * 501}, "reason"),
        ({"phones": [], "extra": 1}, "extra"),
    ],
)
async def test_bad_body_is_422_naming_the_field(api: Api, body: Any, field: str) -> None:
    status, out = await api.call("POST", "/api/v1/dnc", json=body)
    assert status == 422, out
    assert field in fields(out)


@pytest.mark.parametrize(
    ("query", "field"), [("limit=0", "limit"), ("limit=x", "limit"), ("cursor=abc", "cursor")]
)
async def test_bad_query_is_422_naming_the_field(api: Api, query: str, field: str) -> None:
    status, out = await api.call("GET", f"/api/v1/dnc?{query}")
    assert status == 422
    assert fields(out) == [field]


async def test_other_media_types_are_415(api: Api) -> None:
    status, _ = await api.call(
        "POST", "/api/v1/dnc", data=b"+12125550001", headers={"Content-Type": "text/plain"}
    )
    assert status == 415


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/dnc"), ("GET", "/api/v1/dnc"), ("DELETE", "/api/v1/dnc/+12125550001")],
)
async def test_no_credentials_is_401(api: Api, method: str, path: str) -> None:
    status, _ = await api.call(method, path, role=None, json={"phones": []})
    assert status == 401


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("POST", "/api/v1/dnc", "viewer"),
        ("POST", "/api/v1/dnc", "agent"),
        ("DELETE", "/api/v1/dnc/+12125550001", "viewer"),
        ("GET", "/api/v1/dnc", "agent"),
    ],
)
async def test_wrong_role_is_403(api: Api, method: str, path: str, role: str) -> None:
    status, _ = await api.call(method, path, role=role, json={"phones": []})
    assert status == 403


async def test_listed_number_is_never_dialled(api: Api) -> None:
    """Through the API end to end: the listed lead ends stopped (dnc), the campaign completes."""
    cid = (await api.campaign(sequence=[{"channel": "voice", "max_attempts": 1}]))["id"]
    status, _ = await api.call("POST", f"/api/v1/campaigns/{cid}/leads", json={"leads": leads(3)})
    assert status == 200
    await api.call("POST", "/api/v1/dnc", json={"phones": [phone(1)]})
    assert (await api.call("POST", f"/api/v1/campaigns/{cid}/start"))[0] == 200
    for _ in range(600):
        await api.tick()
        status, c = await api.call("GET", f"/api/v1/campaigns/{cid}")
        if c["state"] == CampaignState.COMPLETED:
            break
        await api.clock.advance(5)
    assert c["state"] == CampaignState.COMPLETED
    assert phone(1) not in {d.to for d in api.voice.of(cid)}
    assert len(api.voice.of(cid)) == 2
    _, page = await api.call("GET", f"/api/v1/campaigns/{cid}/leads?status=stopped")
    assert [(x["phone"], x["stop_reason"]) for x in page["items"]] == [(phone(1), "dnc")]
