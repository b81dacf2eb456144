"""The login limiter (docs/api.md §2): it holds under concurrency (the slot is reserved
before the password check), counts per account, per client address and per pair, believes
X-Forwarded-For only from DIALER_TRUSTED_PROXIES, grows its delays instead of locking, and
audits every refusal. Time is the app's fake clock: delays pass when the test advances it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dialer.api.keys import ACCOUNTS
from dialer.api.login_limit import LoginLimiter, Policy, Refusal, Ticket, client_address
from dialer.clock import FakeClock
from dialer.config import Settings
from tests.harness import ClientFactory, app, sqlite_url, world

PASSWORD = "correct horse battery"
PROXY = "127.0.0.1"  # the test client's address: the "proxy" in front of the app


class Site:
    def __init__(self, client: TestClient[Any, Any], clock: FakeClock) -> None:
        self.client, self.clock = client, clock

    async def login(
        self, username: str, password: str, *, client_ip: str | None = None
    ) -> tuple[int, int | None, dict[str, Any]]:
        headers = {"X-Forwarded-For": client_ip} if client_ip else {}
        resp = await self.client.post(
            "/api/v1/auth/login",
            json={"username": username, "password": password},
            headers=headers,
        )
        retry = resp.headers.get("Retry-After")
        return resp.status, int(retry) if retry else None, await resp.json()


@pytest.fixture
async def site(aiohttp_client: ClientFactory, tmp_path: Path) -> Site:
    w = world(tmp_path)
    client = await aiohttp_client(
        app(
            sqlite_url(tmp_path, "limit"),
            "limit",
            w.clock,
            voice=w.voice,
            email=w.email,
            trusted_proxies=f"{PROXY}, 10.9.0.0/16",
        )
    )
    await client.app[ACCOUNTS].create_user("sue", PASSWORD, "supervisor")
    return Site(client, w.clock)


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "auth.login_refused"]


async def test_concurrent_guesses_cannot_all_be_checked(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """30 wrong passwords at once: the first five reserve a slot before any of them is
    hashed; the other 25 are refused at once (and each refusal is in the log)."""
    caplog.set_level(logging.WARNING, logger="dialer.api.routes_auth")
    answers = await asyncio.gather(*(site.login("sue", f"guess-{i}") for i in range(30)))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [401] * 5 + [429] * 25
    assert all(retry and retry >= 1 for status, retry, _ in answers if status == 429)
    assert {b["error"]["code"] for s, _, b in answers if s == 429} == {"too_many_attempts"}
    audited = refusals(caplog)
    assert len(audited) == 25
    assert {(r.user, r.scope) for r in audited} == {("sue", "pair")}  # type: ignore[attr-defined]
    # The right password is refused too until the delay has passed: then it works.
    assert (await site.login("sue", PASSWORD))[0] == 429
    await site.clock.advance(1)
    assert (await site.login("sue", PASSWORD))[0] == 200


async def test_spraying_accounts_from_one_address_is_slowed(site: Site) -> None:
    for i in range(20):  # twenty accounts, one wrong password each: the address's allowance
        assert (await site.login(f"user{i}", "wrong", client_ip="203.0.113.7"))[0] == 401
    status, retry, _ = await site.login("user20", "wrong", client_ip="203.0.113.7")
    assert (status, retry) == (429, 1)
    # Growing delays: each failure after the allowance doubles the wait.
    waits = []
    for i in range(4):
        await site.clock.advance(retry or 0)
        assert (await site.login(f"other{i}", "wrong", client_ip="203.0.113.7"))[0] == 401
        status, retry, _ = await site.login("next", "wrong", client_ip="203.0.113.7")
        assert status == 429
        waits.append(retry)
    assert waits == [2, 4, 8, 16]
    # Another client behind the same proxy is not slowed by this one.
    assert (await site.login("user0", "wrong", client_ip="198.51.100.1"))[0] == 401


async def test_an_attacker_cannot_lock_the_real_user_out(site: Site) -> None:
    """Many addresses on one account: it is slowed (a delay, at most a minute, never a lock),
    and an address the user logged in from before is not slowed at all."""
    assert (await site.login("sue", PASSWORD, client_ip="192.0.2.10"))[0] == 200  # home
    for i in range(10):  # the account's allowance, from ten addresses
        assert (await site.login("sue", "wrong", client_ip=f"198.51.100.{i}"))[0] == 401
    waits = []
    for i in range(10, 22):
        status, retry, _ = await site.login("sue", "wrong", client_ip=f"198.51.100.{i}")
        assert status == 429 and retry is not None
        waits.append(retry)
        await site.clock.advance(retry)
        assert (await site.login("sue", "wrong", client_ip=f"198.51.100.{i}"))[0] == 401
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60]  # capped: a delay, not a lock
    # The real user, from home, is let in at once, with the attack still going on.
    assert (await site.login("sue", PASSWORD, client_ip="192.0.2.10"))[0] == 200
    # From a new address the user waits at most the cap, then gets in.
    status, retry, _ = await site.login("sue", PASSWORD, client_ip="192.0.2.99")
    assert status == 429 and retry is not None and retry <= 60
    await site.clock.advance(retry)
    assert (await site.login("sue", PASSWORD, client_ip="192.0.2.99"))[0] == 200


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    """Without DIALER_TRUSTED_PROXIES the header is the client's to forge: ignored."""
    w = world(tmp_path)
    client = await aiohttp_client(
        app(sqlite_url(tmp_path, "direct"), "direct", w.clock, voice=w.voice, email=w.email)
    )
    direct = Site(client, w.clock)
    for i in range(5):  # five "different" clients, all the one peer
        assert (await direct.login("sue", "wrong", client_ip=f"203.0.113.{i}"))[0] == 401
    assert (await direct.login("sue", "wrong", client_ip="203.0.113.99"))[0] == 429


def test_the_client_address() -> None:
    trusted = Settings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxy_networks
    assert client_address("203.0.113.5", ["1.2.3.4"], trusted) == "203.0.113.5"
    assert client_address("10.0.0.2", ["1.2.3.4, 10.0.0.9"], trusted) == "1.2.3.4"
    assert client_address("10.0.0.2", ["forged, 1.2.3.4"], trusted) == "1.2.3.4"
    assert client_address("10.0.0.2", ["1.2.3.4, garbage"], trusted) == "10.0.0.2"
    assert client_address("10.0.0.2", [], trusted) == "10.0.0.2"
    assert client_address("::1", ["2001:db8::1:2"], trusted) == "2001:db8::/64"
    assert client_address("::ffff:203.0.113.5", [], trusted) == "203.0.113.5"
    assert client_address(None, ["1.2.3.4"], trusted) == "-"
    with pytest.raises(ValueError, match="DIALER_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.example.com")


def test_delays_grow_to_the_cap_and_are_forgotten() -> None:
    now = [0.0]
    policy = Policy(allowance=2, cap=8.0, forget=100.0)
    limiter = LoginLimiter(lambda: now[0], pair=policy, address=policy, account=policy)

    def attempt() -> Ticket | Refusal:
        return limiter.reserve("203.0.113.1", "sue")

    waits = []
    for _ in range(7):
        ticket = attempt()
        while isinstance(ticket, Refusal):
            waits.append(ticket.retry_after)
            now[0] += ticket.retry_after
            ticket = attempt()
        limiter.failed(ticket)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]
    now[0] += 8 + 101  # a quiet spell longer than `forget`: a fresh start
    for _ in range(2):
        ticket = attempt()
        assert isinstance(ticket, Ticket)
        limiter.failed(ticket)
    ticket = attempt()
    assert isinstance(ticket, Refusal) and ticket.retry_after == 1.0
    # A check with no verdict (the database was down) gives its slot back.
    now[0] += 1
    ticket = attempt()
    assert isinstance(ticket, Ticket)
    limiter.cancelled(ticket)
    assert isinstance(attempt(), Ticket)
