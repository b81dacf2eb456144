"""The `dialer` command: credentials straight to the database, campaign control over a real
HTTP server, `dialer serve` as a real process (starts, answers, stops on SIGTERM), and
`dialer worker` as a real process beside it on the Redis bus (its metrics port, the registry
that `GET /api/v1/workers` reads), refused on the in-process bus."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from typer.testing import CliRunner, Result

from dialer.api.keys import ACCOUNTS, RUNTIME
from dialer.cli import app
from dialer.clock import FakeClock
from dialer.store.db import Database
from dialer.usecases.accounts import Accounts, Principal
from tests.api.test_workers import redis_db
from tests.conftest import free_port, run_async, serve_process, stop_process
from tests.harness import MONDAY_10_NY, ClientFactory, leads, world
from tests.harness import app as dialer_app

PASSWORD = "correct horse battery"
DIALER = [sys.executable, "-m", "dialer.cli"]
CLEAN_ENV = {"DIALER_URL": None, "DIALER_TOKEN": None, "DIALER_NEW_USER_PASSWORD": None}


def cli(*args: str, env: dict[str, str | None] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**CLEAN_ENV, **(env or {})}, input=stdin)


async def accounts_call(db_url: str, call: Callable[[Accounts], Awaitable[Any]]) -> Any:
    db = Database(db_url)
    try:
        return await call(Accounts(db, FakeClock(MONDAY_10_NY)))
    finally:
        await db.aclose()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def test_token_create_prints_a_token_that_authenticates(db_url: str) -> None:
    result = cli("token", "create", "--role", "supervisor", "--name", "ci", env=_db(db_url))
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("dlr_") and "\n" not in token  # stdout is the token alone
    assert "shown only once" in result.stderr
    who = run_async(accounts_call(db_url, lambda a: a.verify_token(token)))
    assert isinstance(who, Principal)
    assert (who.subject, who.role, who.via) == ("ci", "supervisor", "token")

    result = cli("token", "create", "--role", "agent", "--agent-id", "a7", env=_db(db_url))
    who = run_async(accounts_call(db_url, lambda a: a.verify_token(result.stdout.strip())))
    assert who is not None and who.agent_id == "a7"


def test_token_create_refuses_bad_input(db_url: str) -> None:
    result = cli("token", "create", "--role", "agent", env=_db(db_url))
    assert result.exit_code == 1 and "agent_id" in result.stderr and not result.stdout
    result = cli("token", "create", "--role", "king", env=_db(db_url))
    assert result.exit_code == 1 and "role: admin, supervisor, agent or viewer" in result.stderr


def test_user_create_reads_the_password_from_stdin_or_the_environment(db_url: str) -> None:
    args = ("user", "create", "--username", "sue", "--role", "supervisor")
    result = cli(*args, "--password-stdin", env=_db(db_url), stdin=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "user sue (supervisor) created" in result.stdout and PASSWORD not in result.output
    found = run_async(accounts_call(db_url, lambda a: a.login("sue", PASSWORD)))
    assert found is not None and found[1].role == "supervisor"

    env = {**_db(db_url), "DIALER_NEW_USER_PASSWORD": PASSWORD}
    result = cli(
        "user", "create", "--username", "ann", "--role", "agent", "--agent-id", "a1", env=env
    )
    assert result.exit_code == 0 and "for agent a1" in result.stdout
    assert cli(*args, env=env).exit_code == 1  # exists
    result = cli("user", "create", "--username", "bob", "--role", "viewer", env=_db(db_url))
    assert result.exit_code == 2 and "--password-stdin" in result.stderr
    result = cli(
        "user", "create", "--username", "bob", "--role", "viewer", "--password-stdin",
        env=_db(db_url), stdin="short\n",
    )  # fmt: skip
    assert result.exit_code == 1 and "password: at least 10 characters" in result.stderr


def _db(db_url: str) -> dict[str, str | None]:
    return {"DIALER_DATABASE_URL": db_url}


@pytest.fixture
async def server(
    aiohttp_client: ClientFactory, tmp_path: Path, db_url: str
) -> TestClient[Any, Any]:
    """A real HTTP server on a free port: the simulated carrier on a fake clock."""
    w = world(tmp_path, seed=3)
    return await aiohttp_client(
        dialer_app(db_url, "cli-test", w.clock, voice=w.sim, email=w.email, bootstrap_token=None)
    )


async def test_campaign_commands_over_http(server: TestClient[Any, Any]) -> None:
    rt = server.app[RUNTIME]
    token, _ = await server.app[ACCOUNTS].create_token("supervisor")
    env: dict[str, str | None] = {"DIALER_URL": str(server.make_url("")), "DIALER_TOKEN": token}

    async def run(*args: str, stdin: str | None = None) -> Result:
        return await asyncio.to_thread(cli, "campaign", *args, env=env, stdin=stdin)

    assert (await run("list")).stdout.strip() == "no campaigns"
    c = await rt.service.create_campaign(
        {
            "name": "CLI campaign",
            "sequence": [{"channel": "voice"}],
            "caller_ids": ["+14155550100"],
            "pacing": {"mode": "agentless", "agentless_capacity": 4, "calls_per_second": 50},
        },
        actor="test",
    )
    await rt.service.leads.add(c.id, leads(6))
    await rt.service.start(c.id, actor="test")
    await rt.engine.tick()  # four calls ringing
    listed = await run("list")
    assert listed.exit_code == 0
    assert c.id in listed.stdout and "running" in listed.stdout and "CLI campaign" in listed.stdout

    result = await run("pause", c.id, "--reason", "lunch")
    assert result.exit_code == 0, result.output
    assert f"campaign {c.id} paused" in result.stdout
    assert "in flight at ack: 4" in result.stdout
    assert (await rt.service.get_campaign(c.id)).state == "paused"

    result = await run("resume", c.id)
    assert result.exit_code == 0 and f"campaign {c.id} running" in result.stdout

    result = await run("terminate", c.id, stdin="not-the-id\n")
    assert result.exit_code == 1 and "nothing done" in result.stderr
    assert (await rt.service.get_campaign(c.id)).state == "running"
    result = await run("terminate", c.id, "--confirm", c.id)
    assert result.exit_code == 0 and f"campaign {c.id} stopping" in result.stdout

    result = await run("pause", c.id)  # wrong state: the API's message, non-zero exit
    assert result.exit_code == 1
    assert "409 invalid_state" in result.stderr and "current state: stopping" in result.stderr
    result = await run("pause", "c_nope")
    assert result.exit_code == 1 and "404 not_found" in result.stderr
    env["DIALER_TOKEN"] = "dlr_bad_bad"
    result = await run("list")
    assert result.exit_code == 1 and "401 unauthorized" in result.stderr
    env["DIALER_TOKEN"] = None
    assert (await run("list")).exit_code == 2


def test_campaign_command_reports_an_unreachable_server() -> None:
    port = free_port()
    env: dict[str, str | None] = {"DIALER_URL": f"http://127.0.0.1:{port}", "DIALER_TOKEN": "x"}
    result = cli("campaign", "list", env=env)
    assert result.exit_code == 1 and "cannot reach" in result.stderr


def _get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=2) as resp:
        status: int = resp.status
        return status


def test_serve_starts_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.update(
        DIALER_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        DIALER_MAILDIR=str(tmp_path / "maildir"),
        DIALER_BOOTSTRAP_TOKEN="serve-test-secret-0123456789",
    )
    with serve_process([*DIALER, "serve"], env, tmp_path) as served:
        assert _get(f"{served.url}/healthz") == 200
        assert _get(f"{served.url}/api/v1/campaigns", "serve-test-secret-0123456789") == 200
        port = served.url.rsplit(":", 1)[1]  # the client finds the server as serve does
        listed = subprocess.run(
            [*DIALER, "campaign", "list"],
            env={**env, "DIALER_PORT": port, "DIALER_TOKEN": "serve-test-secret-0123456789"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert listed.returncode == 0 and listed.stdout.strip() == "no campaigns"
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=10) == 0
        out = served.log.read_text()
        assert f"dialer serving on {served.url}" in out and "stopped" in out


def test_demo_serves_with_a_generated_admin_token(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.update(DIALER_PORT=str(port), DIALER_MAILDIR=str(tmp_path / "maildir"))
    args = ["demo", "--duration", "5", "--leads", "5", "--no-script"]
    with subprocess.Popen(
        [*DIALER, *args],
        env=env,
        cwd=tmp_path,  # the demo's SQLite file goes here
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("admin token for this run"):
                    break
            token = lines[-1].split()[-1]
            assert any(f"API: http://127.0.0.1:{port}/api/v1" in x for x in lines), lines
            assert _get(f"http://127.0.0.1:{port}/api/v1/campaigns", token) == 200
            assert proc.wait(timeout=30) == 0
            rest = proc.stdout.read()
            assert "running" in rest and "demo stopped; paused: c_" in rest
        finally:
            stop_process(proc)


def _json(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=2) as resp:
        assert resp.status == 200
        return json.load(resp)


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as resp:
        assert resp.status == 200
        body: bytes = resp.read()
        return body.decode()


def _until(what: str, check: Callable[[], Any], log: Path, seconds: float = 60) -> Any:
    """Poll `check` until it returns something truthy (errors count as not yet); a generous
    deadline for a real process, never an outcome decided by timing."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {seconds} s:\n{log.read_text()}")
        time.sleep(0.2)


@contextmanager
def worker_process(
    env: dict[str, str], cwd: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A real `dialer worker` with `env` (it needs DIALER_BUS_URL=redis://…) in `cwd`, its
    metrics on a free loopback port, its output in `cwd/worker.log`; yields (process, metrics
    base URL, log) once its /healthz answers, stops it afterwards."""
    port = free_port()
    env = env | {"DIALER_HOST": "127.0.0.1", "DIALER_METRICS_PORT": str(port)}
    log = cwd / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([*DIALER, "worker"], env=env, cwd=cwd, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert worker.poll() is None, log.read_text()
            return _get(f"{base}/healthz") == 200

        _until("the worker's /healthz", up, log)
        yield worker, base, log
    finally:
        stop_process(worker)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}


@pytest.mark.parametrize("bus_url", [None, "memory://"])
def test_worker_refuses_the_in_process_bus(tmp_path: Path, bus_url: str | None) -> None:
    env = _clean_env() | {"DIALER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"}
    if bus_url is not None:
        env["DIALER_BUS_URL"] = bus_url
    result = subprocess.run(
        [*DIALER, "worker"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert not result.stdout
    (line,) = result.stderr.splitlines()  # one line, saying what to set
    assert "DIALER_BUS_URL=redis://host:6379/0" in line and "dialer serve" in line
    assert not (tmp_path / "w.db").exists()  # refused before touching anything


def _metric_lines(text: str, name: str) -> list[str]:
    return [x for x in text.splitlines() if x.startswith((f"{name}{{", f"{name} "))]


def test_worker_beside_serve_on_redis(tmp_path: Path, redis_url: str) -> None:
    """A real `dialer worker` next to a real `dialer serve` on one SQLite database and one
    Redis: the worker serves /healthz, /readyz and its own /metrics (counters, no database
    gauges) on DIALER_METRICS_PORT and is listed by serve's `GET /api/v1/workers` until it
    stops; serve exports the database gauges (docs/architecture.md §12.2)."""
    token = "worker-test-secret-0123456789"
    env = _clean_env() | {
        "DIALER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "DIALER_BUS_URL": redis_db(redis_url),
        "DIALER_MAILDIR": str(tmp_path / "maildir"),
        "DIALER_BOOTSTRAP_TOKEN": token,
        "DIALER_LEASE_SECONDS": "10",
    }
    with serve_process([*DIALER, "serve"], env, tmp_path) as served:
        with worker_process(env, tmp_path) as (worker, base, log):
            ready = _json(f"{base}/readyz")
            assert ready["status"] == "ok" and ready["database"] and ready["bus"], ready
            text = _text(f"{base}/metrics")
            assert "# TYPE dialer_dispatch_total counter" in text
            assert _metric_lines(text, "dialer_channel_up")  # this process's own channels
            for gauge in ("dialer_campaign_state", "dialer_agents", "dialer_campaign_due_leads"):
                assert not _metric_lines(text, gauge), gauge  # serve's to export, not ours

            def serve_counts_agents() -> bool:
                text = _text(f"{served.url}/metrics")
                return len(_metric_lines(text, "dialer_agents")) >= 4  # one per agent state

            _until("serve's dialer_agents gauge", serve_counts_agents, served.log)

            def listed() -> dict[int, dict[str, Any]]:
                items = _json(f"{served.url}/api/v1/workers", token)["items"]
                by_pid = {w["pid"]: w for w in items}
                return by_pid if {worker.pid, served.process.pid} <= set(by_pid) else {}

            workers = _until("both engines in GET /api/v1/workers", listed, log)
            mine = workers[worker.pid]
            assert mine["host"] and mine["campaigns"] == []
            started = datetime.fromisoformat(mine["started_at"]).timestamp()
            assert started <= datetime.fromisoformat(mine["heartbeat_at"]).timestamp()

            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, log.read_text()
            assert f"metrics on {base}/metrics" in log.read_text()
            items = _json(f"{served.url}/api/v1/workers", token)["items"]
            assert worker.pid not in {w["pid"] for w in items}  # left at once on a clean stop


@pytest.mark.parametrize("engine", [True, False])
async def test_serve_may_leave_dispatching_to_the_workers(tmp_path: Path, engine: bool) -> None:
    """`DIALER_SERVE_ENGINE=false`: serve answers the API and the carrier's callbacks and
    runs no engine of its own (it does not join the registry; workers dispatch)."""
    from dialer.cli.serve import serving
    from dialer.config import Settings

    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
        port=free_port(),
        serve_engine=engine,
        bootstrap_token="x" * 32,
    )
    async with serving(settings) as served:
        rt = served[RUNTIME]
        assert (rt.engine._task is not None) is engine
        assert len(await rt.bus.workers()) == (1 if engine else 0)


@pytest.mark.parametrize("command", [["migrate"], ["serve"], ["worker"]])
def test_a_refused_setting_ends_the_command_with_its_name_not_a_traceback(
    command: list[str],
) -> None:
    secret = "short-secret-42"  # fewer than 24 characters: refused
    result = cli(*command, env={"DIALER_BOOTSTRAP_TOKEN": secret})
    assert result.exit_code == 2
    assert "DIALER_BOOTSTRAP_TOKEN must be at least 24 characters" in result.stderr
    assert "Traceback" not in result.stderr and secret not in result.output + result.stderr
