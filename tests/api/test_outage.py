"""A database outage under a running app (docs/architecture.md §15.1, docs/api.md §3).

The app runs on a PostgreSQL cluster of the test's own; the test stops it (immediate mode:
the database is just gone) and every kind of route answers 503 `unavailable` with
`Retry-After`, never 500, `/readyz` names the database, the engine dispatches nothing; the
test starts the cluster again and the same requests succeed on the same app, the engine
dispatches again and the live hub polls again. Nothing is restarted but PostgreSQL.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from dialer.api.auth import SESSION_COOKIE
from dialer.api.keys import ACCOUNTS, LIVE
from dialer.store.db import Database, unavailable
from dialer.store.models import Attempt
from tests.api.conftest import Api
from tests.conftest import asyncpg_dsn
from tests.harness import ADMIN, ClientFactory, app, leads, world
from tests.pg_cluster import PgCluster

TOKEN = "outage-test-twilio-auth-token"
PUBLIC = "http://dialer.example.com"
PASSWORD = "outage-test-password-0123"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Rig:
    api: Api
    campaign: str
    attempt: Attempt  # a dispatched voice attempt, for the Twilio callbacks
    session: str  # a dashboard session cookie

    async def send(self, method: str, path: str, **kwargs: Any) -> Reply:
        resp = await self.api.client.request(method, path, **kwargs)
        if resp.content_type == "application/json":
            body: Any = await resp.json()
        else:
            body = await resp.text()
        return Reply(resp.status, dict(resp.headers), body)

    async def twilio(self, kind: str, call_status: str) -> Reply:
        path = f"/webhooks/twilio/{kind}?{urlencode({'attempt': self.attempt.id})}"
        params = {"CallSid": self.attempt.carrier_id or "", "CallStatus": call_status}
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + path, params)
        return await self.send("POST", path, data=params, headers={"X-Twilio-Signature": signature})

    async def every_kind(self) -> dict[str, Reply]:
        """One request of each kind the outage must answer cleanly."""
        c = self.campaign
        cookie = {"Cookie": f"{SESSION_COOKIE}={self.session}"}
        login = {"username": "ops", "password": PASSWORD}
        return {
            # the auth middleware's token lookup is the first to touch the database
            "GET token": await self.send(
                "GET", "/api/v1/campaigns", headers=self.api.auth("supervisor")
            ),
            # the bootstrap token needs no lookup: the handler is the first
            "GET handler": await self.send(
                "GET", f"/api/v1/campaigns/{c}/stats", headers=self.api.auth()
            ),
            "GET session": await self.send("GET", "/api/v1/auth/me", headers=cookie),
            "POST": await self.send(
                "POST", "/api/v1/campaigns", json=_body("During"), headers=self.api.auth()
            ),
            "login": await self.send("POST", "/api/v1/auth/login", json=login),
            "twilio status": await self.twilio("status", "ringing"),
            "readyz": await self.send("GET", "/readyz"),
        }


def _body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "sequence": [{"channel": "voice", "max_attempts": 1}],
        "caller_ids": ["+14155550100"],
        "pacing": {"mode": "agentless", "agentless_capacity": 3, "calls_per_second": 100},
    }


@pytest.fixture
async def rig(aiohttp_client: ClientFactory, tmp_path: Path, pg_cluster: PgCluster) -> Rig:
    w = world(tmp_path, seed=5)
    dialer = app(
        pg_cluster.url,
        "outage",
        w.clock,
        voice=w.voice,
        email=w.email,
        twilio_auth_token=TOKEN,
        public_base_url=PUBLIC + "/",
    )
    api = Api(await aiohttp_client(dialer), w.clock, w.sim, w.voice)
    accounts = api.client.app[ACCOUNTS]
    api.tokens["supervisor"], _ = await accounts.create_token("supervisor", name="sup")
    await accounts.create_user("ops", PASSWORD, "admin")
    logged_in = await accounts.login("ops", PASSWORD)
    assert logged_in is not None
    service = api.service
    c = await service.create_campaign(_body("Outage"), actor=ADMIN)
    await service.leads.add(c.id, leads(12))
    await service.start(c.id, actor=ADMIN)
    await api.tick()
    async with api.runtime.db.session() as s:
        first = (await s.scalars(select(Attempt).order_by(Attempt.id))).first()
        assert first is not None and first.carrier_id
        s.expunge(first)
    return Rig(api, c.id, first, logged_in[0])


async def dispatched(api: Api) -> int:
    async with api.runtime.db.session() as s:
        return len((await s.scalars(select(Attempt.id))).all())


async def until(condition: Any, what: str, seconds: float = 20.0) -> None:
    """Poll `condition()` up to a generous deadline (a real server is involved)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)


@pytest.mark.postgres
async def test_an_outage_is_503_everywhere_and_ends_by_itself(
    rig: Rig, pg_cluster: PgCluster, caplog: pytest.LogCaptureFixture
) -> None:
    before = await rig.every_kind()
    assert {k: r.status for k, r in before.items()} == {
        "GET token": 200,
        "GET handler": 200,
        "GET session": 200,
        "POST": 201,
        "login": 200,
        "twilio status": 204,
        "readyz": 200,
    }
    assert before["readyz"].body["checks"]["database"] == {"ok": True}
    hub = rig.api.client.app[LIVE]
    attempts = await dispatched(rig.api)
    assert attempts == 3  # the pacing's capacity

    caplog.set_level(logging.WARNING)
    pg_cluster.stop()
    during = await rig.every_kind()
    for kind, reply in during.items():
        assert reply.status == 503, (kind, reply.status, reply.body)
        assert int(reply.headers["Retry-After"]) > 0, kind
    for kind in ("GET token", "GET handler", "GET session", "POST", "login", "twilio status"):
        assert during[kind].body["error"]["code"] == "unavailable", kind
    ready = during["readyz"].body
    assert ready["status"] == "unavailable" and ready["database"] is False
    assert ready["checks"]["database"]["ok"] is False
    assert ready["checks"]["database"]["error"]  # says why
    assert ready["checks"]["bus"] == {"ok": True} and ready["bus"] is True
    # The voice URL cannot wait: the callee hears the identification message, hung up.
    voice = await rig.twilio("voice", "in-progress")
    assert voice.status == 200 and "<Hangup" in voice.body
    assert (await rig.send("GET", "/healthz")).status == 200  # the process is up

    # The engine dispatches nothing; its error is an outage, not a bug. (The virtual clock
    # stands still: the simulated carrier's events during an outage are another test's.)
    with pytest.raises(Exception) as tick_error:
        await rig.api.tick()
    assert unavailable(tick_error.value)
    await until(lambda: hub.failures >= 2, "the live hub noticed the outage")
    assert hub.delay > hub.poll_seconds  # it backs off instead of polling every 0.1 s

    # One warning line per request, no traceback, no 500.
    records = [r for r in caplog.records if r.name.startswith("dialer.api")]
    assert not [r for r in records if r.getMessage() == "request.failed"]
    warned = [r for r in records if r.getMessage() == "request.unavailable"]
    assert len(warned) >= 5 and all(r.exc_info is None for r in warned)
    polls = [r for r in records if r.getMessage() == "live.poll_failed"]
    assert polls and all(r.levelno == logging.WARNING and r.exc_info is None for r in polls)

    pg_cluster.start()
    after = await rig.every_kind()
    assert {k: r.status for k, r in after.items()} == {
        "GET token": 200,
        "GET handler": 200,
        "GET session": 200,
        "POST": 201,
        "login": 200,
        "twilio status": 204,
        "readyz": 200,
    }
    assert after["readyz"].body["checks"]["database"] == {"ok": True}
    await until(lambda: hub.failures == 0, "the live hub polls again")
    assert hub.delay == hub.poll_seconds
    # The engine dispatches again: the one callback set an attempt ringing, none ended, so
    # the capacity is still full; end them and a tick refills it.
    for _ in range(3):
        await rig.api.advance(60)
        await rig.api.tick()
        if await dispatched(rig.api) > attempts:
            break
    assert await dispatched(rig.api) > attempts


@pytest.mark.postgres
async def test_the_cluster_keeps_every_commit_across_a_stop(pg_cluster: PgCluster) -> None:
    """What the fault tests rely on: `stop()` is a crash of the server, not of the disk."""
    dsn = asyncpg_dsn(pg_cluster.url)
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept SELECT generate_series(1, 50)")
    pg_cluster.stop()
    with pytest.raises(Exception) as gone:
        await conn.fetchval("SELECT count(*) FROM kept")
    assert unavailable(gone.value)
    with pytest.raises(OSError) as refused:
        await asyncpg.connect(dsn)
    assert unavailable(refused.value)
    pg_cluster.start()
    pg_cluster.restart()
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kept") == 50
    finally:
        await conn.close()


async def test_only_an_unreachable_database_counts_as_an_outage(tmp_path: Path) -> None:
    """Bugs and refused writes stay bugs (500, a traceback); only "cannot reach it" is 503."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}")
    errors: list[BaseException] = []
    try:
        async with db.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        for sql in ("INSERT INTO t VALUES (1)", "SELECT * FROM missing", "SELEC 1"):
            with pytest.raises(Exception) as bug:
                async with db.begin() as conn:
                    await conn.exec_driver_sql(sql)
            errors.append(bug.value)
    finally:
        await db.aclose()
    assert [unavailable(e) for e in errors] == [False, False, False]
    assert not unavailable(ValueError("a bug")) and not unavailable(FileNotFoundError(2, "x"))

    gone = Database(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    try:
        assert await gone.check() is not None and not await gone.ping()
        with pytest.raises(Exception) as missing:
            async with gone.begin() as conn:
                await conn.exec_driver_sql("SELECT 1")
        assert unavailable(missing.value), repr(missing.value)
        del missing  # its traceback holds the driver's half-opened connections
    finally:
        await gone.aclose()
        # aiosqlite stops a connection that never opened when it is collected, through
        # this test's event loop: collect it while that loop still runs.
        gc.collect()
        await asyncio.sleep(0.05)
