"""Done-means of issue 4: Debian's `prometheus` scrapes a running dialer with our config and
rules; after a short simulated campaign, what Prometheus stored equals the API's stats."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from sqlalchemy import func, select

from dialer.channels.simulated import SimProfile
from dialer.store.models import Attempt
from tests.api.conftest import Api, ApiFactory
from tests.api.test_workers import redis_db
from tests.conftest import free_port, serve_process, stop_process
from tests.deploy.test_prometheus_rules import ALERTS
from tests.deploy.tools import PROMETHEUS_DIR, load_yaml, tool
from tests.harness import leads
from tests.test_cli import DIALER, worker_process

SCRAPE_SECONDS = 1
READY_SECONDS = 20  # Prometheus starting up
SCRAPED_SECONDS = 20  # a scrape after the figures settled, then its rules evaluated


def write_config(directory: Path, target: str, workers: Sequence[str] = ()) -> Path:
    """Our prometheus.yml and alerts.yml, the serve target replaced by `target` and the worker
    targets by `workers`, every interval 1 s."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"]["scrape_interval"] = f"{SCRAPE_SECONDS}s"
    config["global"]["evaluation_interval"] = f"{SCRAPE_SECONDS}s"
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"dialer-serve", "dialer-worker"}, set(jobs)
    for name, role, targets in (
        ("dialer-serve", "serve", [target]),
        ("dialer-worker", "worker", list(workers)),
    ):
        for sd in jobs[name]["file_sd_configs"]:
            for file in sd["files"]:
                path = directory / file
                path.parent.mkdir(parents=True, exist_ok=True)
                groups = [{"targets": targets, "labels": {"role": role}}] if targets else []
                path.write_text(yaml.safe_dump(groups))
    for rules in config["rule_files"]:
        shutil.copy(PROMETHEUS_DIR / rules, directory / rules)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def prometheus(target: str, workers: Sequence[str] = ()) -> Iterator[str]:
    """Debian's prometheus on a free loopback port scraping `target` (and `workers`); yields
    its base URL. The process and its storage are gone afterwards."""
    binary = tool("prometheus")
    with tempfile.TemporaryDirectory(prefix="dialer-prometheus-") as tmp:
        directory = Path(tmp)
        config = write_config(directory, target, workers)
        port = free_port()
        log = (directory / "prometheus.log").open("w")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        except BaseException:
            print((directory / "prometheus.log").read_text()[-4000:])
            raise
        finally:
            stop_process(process, timeout=10)
            log.close()


class PromApi:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def get(self, path: str, **params: str) -> Any:
        async with self.session.get(f"{self.base}{path}", params=params) as resp:
            body = await resp.json()
            assert resp.status == 200 and body["status"] == "success", body
            return body["data"]

    async def ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with self.session.get(f"{self.base}/-/ready") as resp:
                    if resp.status == 200:
                        return
            assert time.monotonic() < deadline, "prometheus did not become ready"
            await asyncio.sleep(0.2)

    async def value(self, query: str) -> float | None:
        data = await self.get("/api/v1/query", query=query)
        if not data["result"]:
            return None
        (sample,) = data["result"]
        return float(sample["value"][1])


@contextlib.asynccontextmanager
async def prom_api(target: str, workers: Sequence[str] = ()) -> AsyncIterator[PromApi]:
    with prometheus(target, workers) as base:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            api = PromApi(session, base)
            await api.ready()
            yield api


async def run_campaign(api: Api) -> str:
    """A voice campaign with one agent and more answers than it can take (some abandoned),
    run on the fake clock until it completes and no call is in flight."""
    status, _ = await api.call("POST", "/api/v1/agents/a1/state", json={"state": "available"})
    assert status == 200
    campaign = await api.campaign(
        name="Scraped",
        sequence=[{"channel": "voice", "max_attempts": 1}],
        pacing={"mode": "power", "lines_per_agent": 3, "calls_per_second": 50},
        agent_ids=["a1"],
        wrap_up_seconds=1,
    )
    cid = campaign["id"]
    await api.runtime.service.leads.add(cid, leads(20))
    status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/start")
    assert status == 200, body
    # Up to 2 virtual hours: once its abandon rate is over the cap, power mode dials one line
    # per free agent (docs/architecture.md §8) and waits out the agent's long calls.
    for _ in range(2400):
        await api.tick()
        await api.clock.advance(3)
        stats = await stats_of(api, cid)
        if stats["state"] == "completed" and stats["calls"]["in_flight"] == 0:
            return str(cid)
    raise AssertionError(f"the campaign did not complete: {stats}")


async def stats_of(api: Api, cid: str) -> dict[str, Any]:
    status, body = await api.call("GET", f"/api/v1/campaigns/{cid}/stats")
    assert status == 200, body
    return dict(body)


async def connected_calls(api: Api, cid: str) -> int:
    """Calls talked to an agent: what the duration histogram observes and what the stats'
    avg_duration_seconds averages over (dialer/store/stats.py)."""
    async with api.runtime.db.reader() as s:
        n = await s.scalar(
            select(func.count()).where(
                Attempt.campaign_id == cid,
                Attempt.channel == "voice",
                Attempt.agent_id.is_not(None),
                Attempt.duration.is_not(None),
            )
        )
    return int(n or 0)


async def scraped_after(prom: PromApi, settled: float) -> None:
    """Wait until Prometheus holds a scrape taken after `settled` (wall clock)."""
    deadline = time.monotonic() + SCRAPED_SECONDS
    while True:
        last = await prom.value('max(timestamp(up{job="dialer-serve"}))')
        if last is not None and last > settled:
            return
        assert time.monotonic() < deadline, f"no scrape after the figures settled (last {last})"
        await asyncio.sleep(0.25)


async def test_prometheus_scrapes_the_figures_of_the_stats(make_api: ApiFactory) -> None:
    api = await make_api(
        profile=SimProfile(answer_rate=0.8, machine_rate=0.1, busy_rate=0.0, fail_rate=0.0)
    )
    server = api.client.server
    async with prom_api(f"{server.host}:{server.port}") as prom:
        cid = await run_campaign(api)
        stats = await stats_of(api, cid)
        connected = await connected_calls(api, cid)
        settled = time.time()
        await scraped_after(prom, settled)

        assert await prom.value('up{job="dialer-serve"}') == 1.0
        sel = f'{{campaign="{cid}"}}'
        calls = stats["calls"]
        assert calls["answered"] > 0 and calls["abandoned"] > 0 and connected > 0, stats
        answered = await prom.value(f"sum(dialer_calls_answered_total{sel})")
        assert answered == calls["answered"]
        assert await prom.value(f"dialer_calls_dialed_total{sel}") == calls["dialed"]
        assert await prom.value(f"dialer_calls_received_total{sel}") == calls["received"]
        assert await prom.value(f"dialer_calls_abandoned_total{sel}") == calls["abandoned"]
        count = await prom.value(f"dialer_call_duration_seconds_count{sel}")
        assert count == connected
        total = await prom.value(f"dialer_call_duration_seconds_sum{sel}")
        assert total is not None
        assert round(total / connected, 3) == calls["avg_duration_seconds"]
        buckets = await prom.get(
            "/api/v1/query", query=f'dialer_call_duration_seconds_bucket{{campaign="{cid}"}}'
        )
        inf = [b for b in buckets["result"] if b["metric"]["le"] == "+Inf"]
        assert float(inf[0]["value"][1]) == connected
        state = await prom.value(f'dialer_campaign_state{{campaign="{cid}",state="completed"}}')
        assert state == 1.0
        # The real binary loaded our alert rules too.
        rules = await prom.get("/api/v1/rules", type="alert")
        names = {r["name"] for g in rules["groups"] for r in g["rules"]}
        assert names == ALERTS, names


async def test_prometheus_scrapes_a_worker_and_sums_stay_right(
    tmp_path: Path, redis_url: str
) -> None:
    """Real `dialer serve` and `dialer worker` processes on one database and Redis, scraped by
    real Prometheus with our config (jobs dialer-serve and dialer-worker): both targets are
    up, the worker exports its own series but none of the database's gauges, so a sum over
    every target counts each agent once (docs/api.md §12)."""
    token = "prometheus-worker-secret-0123456789"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")} | {
        "DIALER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "DIALER_BUS_URL": redis_db(redis_url),
        "DIALER_MAILDIR": str(tmp_path / "maildir"),
        "DIALER_BOOTSTRAP_TOKEN": token,
    }
    headers = {"Authorization": f"Bearer {token}"}
    with (
        serve_process([*DIALER, "serve"], env, tmp_path) as served,
        worker_process(env, tmp_path) as (_, worker_base, _log),
    ):
        async with aiohttp.ClientSession(headers=headers) as http:
            for agent in ("p1", "p2"):
                resp = await http.post(
                    f"{served.url}/api/v1/agents", json={"id": agent, "name": agent}
                )
                assert resp.status == 201, await resp.text()
            resp = await http.post(
                f"{served.url}/api/v1/agents/p1/state", json={"state": "available"}
            )
            assert resp.status == 200, await resp.text()
        async with prom_api(
            served.url.removeprefix("http://"), [worker_base.removeprefix("http://")]
        ) as prom:
            deadline = time.monotonic() + SCRAPED_SECONDS
            query = 'sum(dialer_agents{state="available"})'
            while await prom.value(query) != 1.0:  # a scrape after the agent became available
                assert time.monotonic() < deadline, await prom.value(query)
                await asyncio.sleep(0.25)
            for job in ("dialer-serve", "dialer-worker"):  # each target's first scrape
                while await prom.value(f'up{{job="{job}"}}') != 1.0:
                    assert time.monotonic() < deadline, job
                    await asyncio.sleep(0.25)
            # Every agent counted once: two agents in the database, two over all targets.
            assert await prom.value("sum(dialer_agents)") == 2.0
            for gauge in ("dialer_agents", "dialer_campaign_state"):
                assert await prom.value(f'count({gauge}{{job="dialer-worker"}})') is None
            # The worker's own per-process series are there, with its role label.
            assert (
                await prom.value('count(dialer_channel_up{job="dialer-worker",role="worker"})')
                == 2.0
            )
