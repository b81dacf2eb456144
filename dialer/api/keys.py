"""Typed application keys: every resource the app owns (docs/architecture.md §14.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from dialer.config import Settings
from dialer.usecases.accounts import Accounts

if TYPE_CHECKING:
    from dialer.api.live import LiveHub
    from dialer.api.login_limit import LoginLimiter
    from dialer.runtime import Runtime

SETTINGS = web.AppKey("settings", Settings)
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
ACCOUNTS = web.AppKey("accounts", Accounts)
LIMITER: web.AppKey[LoginLimiter] = web.AppKey("limiter")
LIVE: web.AppKey[LiveHub] = web.AppKey("live")
