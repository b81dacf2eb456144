"""Done-means of issue 4: Debian's `prometheus` scrapes a running dialer with our config and
rules; after a short simulated campaign, what Prometheus stored equals the API's stats."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from sqlalchemy import func, select

from dialer.channels.simulated import SimProfile
from dialer.store.models import Attempt
from tests.api.conftest import Api, ApiFactory
from tests.conftest import free_port, stop_process
from tests.deploy.test_prometheus_rules import ALERTS
from tests.deploy.tools import PROMETHEUS_DIR, load_yaml, tool
from tests.harness import leads

SCRAPE_SECONDS = 1
READY_SECONDS = 20  # Prometheus starting up
SCRAPED_SECONDS = 20  # a scrape after the figures settled, then its rules evaluated


def write_config(directory: Path, target: str) -> Path:
    """Our prometheus.yml and alerts.yml, the serve target replaced by `target`, every
    interval 1 s."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"]["scrape_interval"] = f"{SCRAPE_SECONDS}s"
    config["global"]["evaluation_interval"] = f"{SCRAPE_SECONDS}s"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "dialer-serve"]
    for sd in job["file_sd_configs"]:
        for name in sd["files"]:
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump([{"targets": [target], "labels": {"role": "serve"}}]))
    for rules in config["rule_files"]:
        shutil.copy(PROMETHEUS_DIR / rules, directory / rules)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def prometheus(target: str) -> Iterator[str]:
    """Debian's prometheus on a free loopback port scraping `target`; yields its base URL.
    The process and its storage are gone afterwards."""
    binary = tool("prometheus")
    with tempfile.TemporaryDirectory(prefix="dialer-prometheus-") as tmp:
        directory = Path(tmp)
        config = write_config(directory, target)
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
async def prom_api(target: str) -> AsyncIterator[PromApi]:
    with prometheus(target) as base:
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
    for _ in range(400):
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
