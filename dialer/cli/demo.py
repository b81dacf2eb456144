"""The demo: agents, a voice + email campaign and leads, on the simulated carrier."""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dialer.domain.states import AgentState
from dialer.store.models import Campaign
from dialer.usecases.accounts import Accounts
from dialer.usecases.campaigns import Service

DEMO_ACTOR = "demo"
AGENTS = [("ava", "Ava"), ("ben", "Ben"), ("cleo", "Cleo"), ("dev", "Dev"), ("eli", "Eli")]
# Zones with their area code; the demo calls leads where it is daytime now, so the
# lead-local 08:00-21:00 rule lets the calls through whenever you run it.
ZONES = [  # zone, number prefix; four digits follow
    ("America/New_York", "+1212555"),
    ("America/Los_Angeles", "+1415555"),
    ("Europe/London", "+44207946"),
    ("Europe/Paris", "+3314268"),
    ("Asia/Tokyo", "+8135550"),
    ("Australia/Sydney", "+6129876"),
]
FIRST = ["Alex", "Sam", "Jo", "Kim", "Lee", "Max", "Noa", "Ola", "Pat", "Ria", "Tom", "Uma"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"]


def daytime_zone(now: datetime) -> tuple[str, str]:
    for zone, prefix in ZONES:
        if 9 <= now.astimezone(ZoneInfo(zone)).hour < 20:
            return zone, prefix
    return ZONES[0]


def demo_leads(n: int, now: datetime, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    zone, prefix = daytime_zone(now)
    rows = []
    for i in range(n):
        first = rng.choice(FIRST)
        rows.append(
            {
                "phone": f"{prefix}{i % 10000:04d}",
                "email": f"{first.lower()}.{i}@example.com",
                "first_name": first,
                "last_name": f"Demo{i}",
                "company": rng.choice(COMPANIES),
                "timezone": zone,
            }
        )
    return rows


async def seed_logins(accounts: Accounts) -> str:
    """Dashboard logins for the demo: `supervisor` and one per demo agent, all with one
    password generated for this run (an earlier run's logins get it too)."""
    known = {u.username for u in await accounts.users()}
    password = secrets.token_urlsafe(9)
    for username, role, agent_id in [
        ("supervisor", "supervisor", None),
        *((a, "agent", a) for a, _ in AGENTS),
    ]:
        if username in known:
            await accounts.set_password(username, password)
        else:
            await accounts.create_user(username, password, role, agent_id=agent_id)
    return password


async def seed(service: Service, *, leads: int = 200) -> Campaign:
    leads = min(leads, 10_000)  # four-digit numbers per zone
    known = {a.id for a in await service.agents.all()}
    for agent_id, name in AGENTS:
        if agent_id not in known:
            await service.agents.create(name, agent_id=agent_id, state=AgentState.AVAILABLE)
    campaign = await service.create_campaign(
        {
            "name": "Demo: Q4 renewals",
            "sequence": [
                {"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 120},
                {
                    "channel": "email",
                    "delay_seconds": 20,
                    "subject": "Following up, {first_name}",
                    "body": "Hi {first_name},\n\nThanks for your time today at {company}.\n",
                },
            ],
            "pacing": {"mode": "power", "lines_per_agent": 1.5, "calls_per_second": 5},
            "caller_ids": ["+14155550100"],
            "sender": {"email": "sales@example.com", "name": "Demo Sales"},
            "agent_ids": [a for a, _ in AGENTS],
            "wrap_up_seconds": 10,
        },
        actor=DEMO_ACTOR,
    )
    rows = demo_leads(leads, datetime.now(UTC))
    result = await service.leads.add(campaign.id, rows)
    if result.rejected:
        raise RuntimeError(f"demo leads rejected: {result.rejected[:3]}")
    return campaign
