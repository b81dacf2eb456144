"""Every route in the app's route table, fuzzed with hostile input on SQLite and PostgreSQL:
no answer may be a 5xx (docs/api.md §3: "never a 500 for anything a client sent").

The routes come from the router, so a route added later is fuzzed without editing this file,
and `test_every_route_has_what_the_fuzzer_needs` fails until a new body has a valid example
here (the fuzzer makes one place of it hostile at a time, to get past the first check).

For each route hypothesis draws: path parameters (real ids of seeded objects, or hostile
text: NUL, '²', lone surrogates, huge digit strings), query parameters (documented and
made-up), headers (credentials, Last-Event-ID, If-Match, X-CSRF-Token, X-Forwarded-For,
content types and charsets), and a body (a valid one with one value made hostile, arbitrary
JSON with 6,000-digit numbers, NaN, 1e999 and 60,000 levels of nesting, raw bytes, CSV with
control characters, signed Twilio forms with hostile fields).

The server runs on the test's event loop; hypothesis runs in a worker thread and hands each
request to the loop, so the loop stays free to answer.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, web
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from tests.fuzz import strategies as hs
from tests.fuzz.rig import (
    AUTH,
    BODIES,
    CSV,
    FORM,
    Rig,
    body_example,
    doc_for,
    make_rig,
    route_id,
    routes_of,
)
from tests.harness import ClientFactory

EXAMPLES = 80  # per route and database: ~3,800 requests each
STREAM = "text/event-stream"
PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
POOL_OF = {"campaigns": "campaigns", "leads": "leads", "agents": "agents", "tokens": "tokens"}
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-16",
    "text/csv",
    "text/csv; charset=latin-1",
    "text/csv; charset=x-no-such",
    "text/csv; charset=rot13",
    "text/csv; charset=unicode_escape",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=x-no-such",
    "multipart/form-data; boundary=zz",
    "text/plain",
]


@dataclass
class Req:
    method: str
    path: str  # percent-encoded
    query: str  # percent-encoded
    headers: dict[str, str]
    body: bytes | None = None

    def __repr__(self) -> str:
        body = self.body if self.body is None or len(self.body) < 600 else self.body[:600]
        return f"{self.method} {self.path}?{self.query} headers={self.headers!r} body={body!r}"


@dataclass
class Results:
    counts: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)


FOCUS = ["body"] * 5 + ["path"] * 2 + ["query", "headers"]
PLAUSIBLE = ["1", "10", "0", "true", "all", "running", "pending", "lead", "campaign"]


def path_values(rig: Rig, canonical: str, name: str, hostile: bool) -> st.SearchStrategy[str]:
    segments = canonical.strip("/").split("/")
    before = next((segments[i - 1] for i, s in enumerate(segments) if name in s and i), "")
    pool = rig.pools.get(POOL_OF.get(before, name), [])
    if not pool:
        return hs.texts
    return st.one_of(st.sampled_from(pool), hs.texts) if hostile else st.sampled_from(pool)


@st.composite
def headers(draw: st.DrawFn, hostile: bool) -> dict[str, str]:
    out = dict(AUTH)
    if not hostile:
        return out
    extras = {
        "Authorization": st.sampled_from(
            ["Bearer dlr_x_y", "Bearer ²", "Basic Zm9vOmJhcg==", "Bearer " + "a" * 600, "Bearer"]
        ),
        "Cookie": st.sampled_from(["dialer_session=" + "a" * 43, "dialer_session=é", "x=y"]),
        "Last-Event-ID": st.one_of(hs.texts, st.sampled_from(["1", "0", "9" * 18])),
        "If-Match": st.one_of(hs.texts, st.sampled_from(["1", '"2"', 'W/"1"'])),
        "X-CSRF-Token": hs.texts,
        "X-Forwarded-For": st.sampled_from(["10.0.0.1", "::1, 10.0.0.2", "garbage", "1.2.3.4, x"]),
    }
    for name in draw(st.lists(st.sampled_from(sorted(extras)), min_size=1, max_size=3)):
        out[name] = draw(extras[name])
    if draw(st.integers(0, 4)) == 0:
        del out["Authorization"]
    return out


def form_body(rig: Rig, form: dict[str, str]) -> bytes:
    return "&".join(f"{hs.pct(k)}={hs.pct(v)}" for k, v in form.items()).encode()


@st.composite
def webhook(draw: st.DrawFn, rig: Rig, path: str) -> Req:
    attempt = draw(st.one_of(st.sampled_from(rig.pools["attempt"]), hs.texts))
    query = f"attempt={hs.pct(attempt)}" if draw(st.integers(0, 7)) else ""
    form = dict(FORM)
    form["CallSid"] = rig.sids.get(attempt, form["CallSid"])
    form["CallStatus"] = draw(
        st.sampled_from(["queued", "ringing", "in-progress", "completed", "busy", "failed"])
    )
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        form[draw(st.sampled_from([*FORM, "X"]))] = draw(hs.texts)
    req = Req("POST", path, query, {"Content-Type": "application/x-www-form-urlencoded"})
    req.body = form_body(rig, form)
    if draw(st.integers(0, 5)):
        signature = rig.signature(rig.url(path, query), form)
        if signature is not None:
            req.headers["X-Twilio-Signature"] = signature
    if draw(st.integers(0, 9)) == 0:
        req.headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    return req


@st.composite
def csv_body(draw: st.DrawFn) -> bytes:
    lines = CSV.splitlines()
    cells = [line.split(",") for line in lines]
    row = draw(st.integers(0, len(cells) - 1))
    col = draw(st.integers(0, len(cells[row]) - 1))
    cells[row][col] = draw(hs.texts).replace(",", ";")
    text = "\n".join(",".join(c) for c in cells)
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16", "unicode_escape"]))
    return text.encode(encoding, "surrogatepass" if encoding != "latin-1" else "replace")


@st.composite
def query_string(draw: st.DrawFn, rig: Rig, names: list[str], hostile: bool) -> str:
    pairs: list[tuple[str, str]] = []
    for name in names:
        if draw(st.booleans()):
            pool = rig.pools.get("campaigns", []) if name == "campaign" else PLAUSIBLE
            value = draw(
                st.one_of(hs.texts, st.sampled_from(pool)) if hostile else st.sampled_from(pool)
            )
            pairs.append((name, value))
    if hostile:
        pairs += draw(st.lists(st.tuples(hs.texts, hs.texts), max_size=2))
    return "&".join(f"{hs.pct(k)}={hs.pct(v)}" for k, v in pairs)


@st.composite
def requests_for(draw: st.DrawFn, rig: Rig, route: web.AbstractRoute) -> Req:
    """One request with one part made hostile (path, query, headers or body), the other
    parts valid, so the hostile part gets as far into the handler as it can."""
    assert route.resource is not None
    canonical = route.resource.canonical
    d = doc_for(route)
    focus = draw(st.sampled_from(FOCUS))
    path = PARAM.sub(
        lambda m: hs.pct(draw(path_values(rig, canonical, m.group(1), focus == "path"))).replace(
            "%2F", "/"
        ),
        canonical,
    )
    if canonical.startswith("/webhooks/"):
        return draw(webhook(rig, path))
    query = draw(query_string(rig, list(d.query) if d else [], focus == "query"))
    req = Req(route.method, path, query, draw(headers(focus == "headers")))
    example = body_example(d)
    if focus != "body":
        if example is not None:
            req.headers["Content-Type"] = "application/json"
            req.body = hs.dumps(example)
        return req
    kind = draw(st.integers(0, 9))
    if d is not None and "text/csv" in d.content_types and kind < 3:
        req.headers["Content-Type"] = draw(st.sampled_from(["text/csv", *CONTENT_TYPES[3:7]]))
        req.body = draw(csv_body())
    elif example is not None and kind < 9:
        req.headers["Content-Type"] = "application/json"
        req.body = hs.dumps(draw(hs.mutated(example)))
    else:
        req.headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
        req.body = draw(st.one_of(st.binary(max_size=64), st.builds(hs.dumps, hs.json_values)))
    return req


async def send(rig: Rig, req: Req, stream: bool) -> tuple[int, str] | None:
    """The status and the start of the answer; None if the client refused to send it."""
    try:
        async with rig.client.session.request(
            req.method, rig.url(req.path, req.query), headers=req.headers, data=req.body
        ) as resp:
            text = "" if stream else (await resp.read())[:500].decode("utf-8", "replace")
            return resp.status, text
    except (ValueError, ClientError):  # a header the client will not write, say
        return None


def fuzz_route(
    rig: Rig, loop: asyncio.AbstractEventLoop, route: web.AbstractRoute, results: Results
) -> None:
    d = doc_for(route)
    stream = d is not None and d.produces == STREAM
    rid = route_id(route)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(req=requests_for(rig, route))
    def check(req: Req) -> None:
        answer = asyncio.run_coroutine_threadsafe(send(rig, req, stream), loop).result(60)
        if answer is None:
            reject()
        status, text = answer
        results.counts[rid] += 1
        if status >= 500:
            results.failures.setdefault(rid, f"{status} {text}\n  {req!r}")

    check()


def fuzz_all(rig: Rig, loop: asyncio.AbstractEventLoop, results: Results) -> None:
    for route in routes_of(rig.client.app):
        fuzz_route(rig, loop, route, results)


@pytest.fixture
async def rig(aiohttp_client: ClientFactory, tmp_path: Path, db_url: str) -> Rig:
    return await make_rig(aiohttp_client, tmp_path, db_url)


def test_every_route_has_what_the_fuzzer_needs() -> None:
    """A route whose body has no valid example here fails this test: add one to BODIES."""
    from dialer.api.app import create_app
    from dialer.config import Settings

    application = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    missing = []
    for route in routes_of(application):
        try:
            body_example(doc_for(route))
        except KeyError as exc:
            missing.append(f"{route_id(route)}: {exc}")
    assert not missing, missing
    assert len(routes_of(application)) >= 45


@pytest.mark.timeout(360)  # 40 s alone; a hang guard beside the suite's other processes
async def test_no_route_answers_5xx(rig: Rig) -> None:
    results = Results()
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(asyncio.to_thread(fuzz_all, rig, loop, results), 240)
    every = {route_id(r) for r in routes_of(rig.client.app)}
    starved = {rid for rid in every if results.counts[rid] < EXAMPLES // 2}
    assert not starved, f"routes the fuzzer could not reach: {sorted(starved)}"
    report = "\n\n".join(f"{rid}: {text}" for rid, text in sorted(results.failures.items()))
    assert not results.failures, f"{len(results.failures)} routes answered 5xx:\n\n{report}"
    print(f"fuzz: {sum(results.counts.values())} requests over {len(every)} routes")


def test_bodies_are_valid_as_written() -> None:
    """The examples themselves are what the API takes, so a mutation is one step away."""
    from dialer.api import routes_auth, routes_clicks, routes_dnc, schemas, schemas_in
    from dialer.domain.campaign import CampaignPatch, CampaignSpec

    models: dict[str, Any] = {
        "CampaignSpec": CampaignSpec,
        "CampaignPatch": CampaignPatch,
        "AtIn": schemas.AtIn,
        "PauseIn": schemas.PauseIn,
        "TerminateIn": schemas.TerminateIn,
        "LeadsIn": schemas_in.LeadsIn,
        "LeadActionsIn": schemas_in.LeadActionsIn,
        "LeadPauseIn": schemas_in.LeadPauseIn,
        "LeadStopIn": schemas_in.LeadStopIn,
        "QualifyIn": schemas_in.QualifyIn,
        "AgentIn": schemas_in.AgentIn,
        "AgentStateIn": schemas_in.AgentStateIn,
        "DncIn": routes_dnc.DncIn,
        "LoginIn": routes_auth.LoginIn,
        "UserIn": routes_auth.UserIn,
        "TokenIn": routes_auth.TokenIn,
        "LinkPatchIn": routes_clicks.LinkPatchIn,
        "PreviewIn": schemas_in.PreviewIn,
    }
    assert set(models) == set(BODIES)
    for name, model in models.items():
        model.model_validate(BODIES[name])
