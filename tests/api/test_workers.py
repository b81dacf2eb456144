"""`GET /api/v1/workers` (docs/api.md §11.1): the live engine processes from the bus's
registry, admin only. On the Redis bus a real worker joins with its heartbeat and leaves when
it stops; the in-process bus lists only its own process's engine, if it runs one."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from dialer.bus.base import worker_info
from dialer.bus.redis import RedisBus
from dialer.clock import SystemClock
from tests.api.conftest import Api
from tests.harness import BOOTSTRAP, ClientFactory, app, sqlite_url, world

# The registry's keys are `dialer:*` (bus_from_url's fixed prefix): this Redis database keeps
# them away from the suite's own (tests/conftest.py's redis_url). Entries are told apart by
# their worker id, never by flushing a database other tests may use.
TEST_REDIS_DB = 14


def redis_db(url: str, db: int = TEST_REDIS_DB) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def listed(body: dict[str, Any], worker_id: str) -> dict[str, Any] | None:
    found = [w for w in body["items"] if w["id"] == worker_id]
    assert len(found) <= 1, body
    return found[0] if found else None


async def test_admin_only(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/workers")
    assert status == 200 and body == {"items": []}, body  # this test's engine never joined
    for role in ("supervisor", "viewer", "agent"):
        status, body = await api.call("GET", "/api/v1/workers", role=role)
        assert status == 403 and body["error"]["code"] == "forbidden", (role, body)
    status, body = await api.call("GET", "/api/v1/workers", role=None)
    assert status == 401, body


async def test_the_in_process_bus_lists_its_own_engine(api: Api) -> None:
    rt = api.runtime
    rt.engine.dispatching = ["c-one"]
    await rt.bus.join(worker_info("serve-engine-1", rt.clock.now()), lambda: ["c-one"])
    status, body = await api.call("GET", "/api/v1/workers")
    assert status == 200, body
    (worker,) = body["items"]
    assert worker["id"] == "serve-engine-1"
    assert worker["host"] == socket.gethostname() and worker["pid"] == os.getpid()
    assert worker["campaigns"] == ["c-one"]
    started = datetime.fromisoformat(worker["started_at"])
    assert started.timestamp() == pytest.approx(rt.clock.now())
    assert started.utcoffset() is not None  # ISO 8601 with an offset (docs/api.md §1)


async def test_redis_registry_lists_a_live_worker_until_it_leaves(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    bus_url = redis_db(redis_url)
    w = world(tmp_path, seed=3)
    client = await aiohttp_client(
        app(sqlite_url(tmp_path, "workers"), "api-test", w.clock, email=w.email, bus_url=bus_url)
    )
    headers = {"Authorization": f"Bearer {BOOTSTRAP}"}

    async def workers() -> dict[str, Any]:
        resp = await client.get("/api/v1/workers", headers=headers)
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body

    # Another process's engine, as `dialer worker` joins: its own bus on the same Redis.
    worker_id = f"test-worker-{secrets.token_hex(4)}"
    other = RedisBus(bus_url, SystemClock(), lease_seconds=30)
    try:
        await other.join(worker_info(worker_id, 1_700_000_000.0), lambda: ["c-a", "c-b"])
        found = listed(await workers(), worker_id)
        assert found is not None
        assert found["host"] == socket.gethostname() and found["pid"] == os.getpid()
        assert found["campaigns"] == ["c-a", "c-b"]
        assert datetime.fromisoformat(found["started_at"]).timestamp() == 1_700_000_000.0
        heartbeat = datetime.fromisoformat(found["heartbeat_at"]).timestamp()
        assert heartbeat > 1_700_000_000.0
    finally:
        await other.aclose()
    assert listed(await workers(), worker_id) is None  # a clean stop leaves at once


async def test_bus_down_is_503(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    # A Redis that nobody serves: the route answers a quick 503 naming the bus, never 500.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w = world(tmp_path, seed=3)
    client = await aiohttp_client(
        app(
            sqlite_url(tmp_path, "down"),
            "api-test",
            w.clock,
            email=w.email,
            bus_url=f"redis://127.0.0.1:{port}/0",
        )
    )
    resp = await client.get("/api/v1/workers", headers={"Authorization": f"Bearer {BOOTSTRAP}"})
    body = await resp.json()
    assert resp.status == 503 and body["error"]["code"] == "unavailable", body
    assert "bus" in body["error"]["message"] and resp.headers["Retry-After"]
