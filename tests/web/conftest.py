"""A real `dialer serve` (SQLite, simulated carrier at 20x) and Debian's Chromium for the
dashboard tests. Chromium is never downloaded: without /usr/bin/chromium the tests fail and
say how to install it (`apt-get install chromium`; `make setup` does it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from dialer.cli.demo import demo_leads
from tests.conftest import serve_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
BOOTSTRAP = "web-test-bootstrap-secret-0123456789"
PASSWORD = "a long enough password 42"
SUPERVISOR = "sam"
AGENT_USER = "ava"
AGENTS = ["a1", "a2", "a3"]
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
# The README's picture is refreshed from here by hand (cp artifacts/screenshots/campaign.png
# docs/screenshots/): a test run never rewrites a tracked file.
README_SHOT = SHOTS / "campaign.png"


@dataclass
class Server:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        """The API with the bootstrap (admin) token; raises with the error body on 4xx/5xx."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {BOOTSTRAP}",
                "Content-Type": "application/json",
                **headers,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read().decode()
            raise AssertionError(f"{method} {path}: {exc.code} {text}") from None

    def stats(self, campaign_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.call("GET", f"/api/v1/campaigns/{campaign_id}/stats")
        return out

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def campaign(self, name: str, leads: int = 400, start: bool = True) -> dict[str, Any]:
        """A voice + email campaign over the agents, on the simulated carrier, with leads
        in a zone where it is daytime now (the lead-local calling hours let calls through)."""
        body = {
            "name": name,
            "sequence": [
                {"channel": "voice", "max_attempts": 1, "retry_delay_seconds": 60},
                {
                    "channel": "email",
                    "delay_seconds": 0,
                    "subject": "Hi {first_name}",
                    "body": "Hello",
                },
            ],
            "pacing": {"mode": "power", "lines_per_agent": 2.0, "calls_per_second": 5},
            "caller_ids": ["+14155550100"],
            "sender": {"email": "sales@example.com", "name": "Sales"},
            "agent_ids": AGENTS,
            "wrap_up_seconds": 1,
        }
        c: dict[str, Any] = self.call("POST", "/api/v1/campaigns", body)
        rows = demo_leads(leads, datetime.now(UTC), seed=len(name))
        out = self.call("POST", f"/api/v1/campaigns/{c['id']}/leads", {"leads": rows})
        assert out["accepted"] == leads, out
        if start:
            c = self.call("POST", f"/api/v1/campaigns/{c['id']}/start")
        return c


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("web")
    env = {
        **os.environ,
        "DIALER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'dialer.db'}",
        "DIALER_SIM_TIME_SCALE": "20",
        "DIALER_SIM_ANSWER_RATE": "0.5",
        "DIALER_SIM_SEED": "7",
        "DIALER_BOOTSTRAP_TOKEN": BOOTSTRAP,
        "DIALER_MAILDIR": str(tmp / "maildir"),
        "DIALER_LOG_LEVEL": "WARNING",
    }
    with serve_process([sys.executable, "-m", "dialer.cli", "serve"], env, tmp) as served:
        srv = Server(served.url, served.log, served.process)
        for agent_id in AGENTS:
            srv.call("POST", "/api/v1/agents", {"name": agent_id.upper(), "id": agent_id})
            srv.call("POST", f"/api/v1/agents/{agent_id}/state", {"state": "available"})
        srv.call(
            "POST",
            "/api/v1/users",
            {"username": SUPERVISOR, "password": PASSWORD, "role": "supervisor"},
        )
        srv.call(
            "POST",
            "/api/v1/users",
            {"username": AGENT_USER, "password": PASSWORD, "role": "agent", "agent_id": "a1"},
        )
        yield srv


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard tests drive Debian's Chromium "
            "(apt-get install -y chromium; `make setup` installs it). "
            "Never `playwright install`."
        )
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Problems:
    """What the page complained about: console errors (a CSP violation is one) and
    uncaught exceptions. A test ends by asserting there were none."""

    items: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        def console(msg: ConsoleMessage) -> None:
            # A 4xx the test provokes is logged as a failed load; it is shown in words
            # on the page and asserted there. Anything else (a CSP refusal) is a problem.
            if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                self.items.append(f"console: {msg.text}")

        page.on("console", console)
        page.on("pageerror", lambda exc: self.items.append(f"pageerror: {exc}"))
        return page


@pytest.fixture
def problems() -> Problems:
    return Problems()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(page: Page, url: str, username: str) -> None:
    page.goto(url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
