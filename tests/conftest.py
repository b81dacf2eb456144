"""Shared fixtures: real PostgreSQL and Redis servers, never skipped.

A server is used if it answers; otherwise one is started from the installed binaries for the
session; if that is impossible the fixture fails with the reason (run `make setup`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import redis
from sqlalchemy.engine import URL, make_url

from tests.pg_cluster import PgCluster, PgClusterError

POSTGRES_ENV = "DIALER_TEST_POSTGRES_URL"
POSTGRES_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_ENV = "DIALER_TEST_REDIS_URL"
REDIS_DEFAULT = "redis://127.0.0.1:6379/15"

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh loop in a worker thread.

    Works from sync fixtures whether or not the test's event loop is running, and leaves that
    loop alone (asyncio.run in this thread would reset the thread's current loop).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def asyncpg_dsn(url: str | URL) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://…`) as a DSN asyncpg accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM, and SIGKILL if it has not exited `timeout` seconds later."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@dataclass
class Served:
    """A `dialer serve` process started by `serve_process`: its base URL and its output."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]


@contextmanager
def serve_process(
    command: Sequence[str | Path], env: dict[str, str], cwd: Path, ready_seconds: float = 60
) -> Iterator[Served]:
    """`command` (a `dialer serve`) run in `cwd` with `env` on a free loopback port (it gets
    DIALER_HOST, DIALER_PORT, DIALER_PUBLIC_BASE_URL), its output in `cwd/serve.log`; yields
    once /readyz answers 200, stops it afterwards. Fails with the log if it does not start."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **env,
        "DIALER_HOST": "127.0.0.1",
        "DIALER_PORT": str(port),
        "DIALER_PUBLIC_BASE_URL": url,
    }
    log = cwd / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(c) for c in command], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + ready_seconds
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(f"dialer serve exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"dialer serve not ready in {ready_seconds} s:\n{log.read_text()}")
            time.sleep(0.2)  # polling for start-up, not deciding an outcome
        yield Served(url, log, process)
    finally:
        stop_process(process)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def reset_postgres(url: str) -> None:
    """Drop everything in schema `public` of the database at `url`."""
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


# --- PostgreSQL ---------------------------------------------------------------------------


async def _postgres_admin_url(url: str) -> str | None:
    """`url` if its server answers (its database, else `postgres`); None if unreachable."""
    for candidate in (make_url(url), make_url(url).set(database="postgres")):
        try:
            conn = await asyncpg.connect(asyncpg_dsn(candidate), timeout=2)
        except asyncpg.InvalidCatalogNameError:
            continue
        except (OSError, TimeoutError, asyncpg.CannotConnectNowError):
            return None
        await conn.close()
        return candidate.render_as_string(hide_password=False)
    pytest.fail(f"{POSTGRES_ENV}: neither the database of {url} nor `postgres` exists")


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[str]:
    """An admin URL of a reachable server: the configured one, or a throwaway cluster."""
    url = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT)
    admin = run_async(_postgres_admin_url(url))
    if admin is not None:
        yield admin
        return
    base = Path(tempfile.mkdtemp(prefix="dialer-pg-"))
    try:
        with _cluster(base, f"PostgreSQL is not reachable at {POSTGRES_ENV}") as cluster:
            yield cluster.url
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_cluster(tmp_path: Path) -> Iterator[PgCluster]:
    """A started PostgreSQL cluster of this test's own on a free port, that the test may
    `stop()`, `start()` and `restart()` (docs/architecture.md §15.1); gone afterwards."""
    with _cluster(tmp_path / "pg", "pg_cluster") as cluster:
        yield cluster


@contextmanager
def _cluster(root: Path, why: str) -> Iterator[PgCluster]:
    try:
        cluster = PgCluster(root, free_port())
        cluster.start()
    except PgClusterError as exc:
        pytest.fail(f"{why}: could not start a cluster of our own: {exc}")
    try:
        yield cluster
    finally:
        cluster.close()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url(_postgres_server: str) -> Iterator[str]:
    """URL of a database created for this test session and dropped after it."""
    name = f"dialer_test_{os.getpid()}_{secrets.token_hex(4)}"
    run_async(_execute(_postgres_server, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(_postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        run_async(_execute(_postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- Redis --------------------------------------------------------------------------------


def _redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as client:
            return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A reachable Redis (database 15 by default), or one started for the session.

    Sessions may share the server: tests must use their own key prefixes, not FLUSHDB.
    """
    url = os.environ.get(REDIS_ENV, REDIS_DEFAULT)
    if _redis_answers(url):
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(f"Redis is not reachable at {REDIS_ENV} and redis-server is not installed")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="dialer-redis-")
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*cmd, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        started = f"redis://127.0.0.1:{port}/15"
        deadline = time.monotonic() + 10
        while not _redis_answers(started):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"could not start {server} on port {port}")
            time.sleep(0.05)
        yield started
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


# --- Databases for the store ---------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on PostgreSQL; the PostgreSQL schema starts empty."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
        return url
    url = request.getfixturevalue("postgres_url")
    run_async(reset_postgres(url))
    return url
