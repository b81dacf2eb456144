"""The fake Twilio as a process of its own, so that it outlives a dialer killed with SIGKILL.

    python -m tests.fakes.serve_twilio --port 0 --control-port 0 --seed 7 --time-scale 10

prints one JSON line once it listens: `{"base_url": ..., "control_url": ...}`. `base_url` is
the REST API (`DIALER_TWILIO_API_BASE`); the control API (`control_url`) is for the fault
tests (tests/faults/, docs/architecture.md §15.3):

- `GET /_fake/calls` every call of the account, in creation order: `sid`, `to`, `status`,
  `history`, `attempt` (the `attempt` query of its callback URL), `agent_leg`,
  `created_at`, `ended_at` (epoch seconds), `answered_by`, `callbacks_failed`;
- `POST /_fake/refuse` stops the API's listener and drops its open connections: every
  request is then refused, as when Twilio is unreachable; calls already placed go on and
  still report to the dialer;
- `POST /_fake/accept` listens again on the same port, with the same account and calls;
- `GET /_fake/state` `{"listening": bool, "calls": n}`.

Calls run on the system clock sped up `--time-scale` times (ring, talk, ring timeout, AMD), so
a no-answer with a 20 s timeout ends after 2 s at scale 10. Numbers without a script get an
outcome drawn from `--mix` with the seeded RNG. SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from dialer.clock import Handle, SystemClock
from tests.fakes.twilio_model import OUTCOMES, FakeCall, Script
from tests.fakes.twilio_server import FakeTwilio

DEFAULT_MIX = "human=0.5,machine=0.15,busy=0.15,no-answer=0.1,failed=0.1"


class ScaledClock:
    """The system clock whose delays run `scale` times faster; `now()` stays real time, so the
    fake's timestamps compare with the dialer's."""

    def __init__(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("scale must be > 0")
        self.scale = scale
        self._inner = SystemClock()

    def now(self) -> float:
        return self._inner.now()

    def utcnow(self) -> datetime:
        return self._inner.utcnow()

    def schedule(self, delay: float, fn: Callable[[], Awaitable[None]]) -> Handle:
        return self._inner.schedule(delay / self.scale, fn)

    async def sleep(self, delay: float) -> None:
        await self._inner.sleep(delay / self.scale)

    async def aclose(self) -> None:
        await self._inner.aclose()


def parse_mix(text: str) -> list[tuple[str, float]]:
    mix: list[tuple[str, float]] = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in OUTCOMES:
            raise ValueError(f"--mix: {name!r} is not one of {sorted(OUTCOMES)}")
        mix.append((name.strip(), float(weight)))
    if not mix or sum(w for _, w in mix) <= 0:
        raise ValueError("--mix needs a positive weight")
    return mix


def attempt_of(call: FakeCall) -> str | None:
    """The dialer's attempt id, from the `?attempt=` of the call's callback or voice URL."""
    for url in (call.status_callback, call.url):
        if url:
            found = parse_qs(urlsplit(url).query).get("attempt")
            if found:
                return found[0]
    return None


class ServedTwilio(FakeTwilio):
    """`FakeTwilio` with a seeded outcome mix and a listener that can be taken away."""

    def __init__(
        self, clock: ScaledClock, *, mix: list[tuple[str, float]], seed: int, **options: Any
    ) -> None:
        super().__init__(clock, seed=seed, **options)
        self._mix_rng = random.Random(seed)
        self._mix = mix
        self.port = 0
        self._site: web.TCPSite | None = None

    def _next_script(self, to: str, agent_leg: bool) -> Script:
        if agent_leg or self._scripts.get(to):
            return super()._next_script(to, agent_leg)
        names, weights = zip(*self._mix, strict=True)
        outcome = self._mix_rng.choices(names, weights)[0]
        return Script(outcome, self.ring_seconds, self.talk_seconds)

    async def start(self) -> str:
        url = await super().start()
        assert self._runner is not None
        self.port = int(self._runner.addresses[0][1])
        self._site = next(s for s in self._runner.sites if isinstance(s, web.TCPSite))
        return url

    @property
    def listening(self) -> bool:
        return self._site is not None

    async def refuse(self) -> None:
        """Stop listening and close the open (keep-alive) connections: connections refused."""
        if self._runner is None or self._site is None:
            return
        await self._site.stop()
        self._site = None
        server = self._runner.server
        if server is not None:
            await server.shutdown(1.0)

    async def accept(self) -> None:
        """Listen again on the same port."""
        if self._runner is None or self._site is not None:
            return
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self._site = site

    def record(self) -> list[dict[str, Any]]:
        failed: dict[str, int] = {}
        for sent in self.callbacks:
            if not 200 <= sent.status < 300:
                failed[sent.call_sid] = failed.get(sent.call_sid, 0) + 1
        return [
            {
                "sid": call.sid,
                "to": call.to,
                "status": call.status,
                "history": list(call.history),
                "attempt": attempt_of(call),
                "agent_leg": call.agent_leg,
                "outcome": call.outcome,
                "answered_by": call.answered_by,
                "created_at": call.created_at,
                "ended_at": call.ended_at,
                "callbacks_failed": failed.get(call.sid, 0),
            }
            for call in self.calls.values()
        ]


def control_app(fake: ServedTwilio) -> web.Application:
    async def calls(_: web.Request) -> web.Response:
        return web.json_response({"calls": fake.record()})

    async def refuse(_: web.Request) -> web.Response:
        await fake.refuse()
        return web.json_response({"listening": fake.listening})

    async def accept(_: web.Request) -> web.Response:
        await fake.accept()
        return web.json_response({"listening": fake.listening})

    async def state(_: web.Request) -> web.Response:
        return web.json_response({"listening": fake.listening, "calls": len(fake.calls)})

    app = web.Application()
    app.router.add_get("/_fake/calls", calls)
    app.router.add_post("/_fake/refuse", refuse)
    app.router.add_post("/_fake/accept", accept)
    app.router.add_get("/_fake/state", state)
    return app


async def serve(args: argparse.Namespace) -> None:
    clock = ScaledClock(args.time_scale)
    fake = ServedTwilio(
        clock,
        mix=parse_mix(args.mix),
        seed=args.seed,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        calls_per_second=args.calls_per_second,
    )
    fake.ring_seconds, fake.talk_seconds = args.ring_seconds, args.talk_seconds
    # FakeTwilio binds a free port; a fixed --port is taken by rebinding at once.
    base_url = await fake.start()
    if args.port:
        await fake.refuse()
        fake.port = args.port
        await fake.accept()
        base_url = f"http://127.0.0.1:{args.port}"
    control = web.AppRunner(control_app(fake), access_log=None)
    await control.setup()
    site = web.TCPSite(control, "127.0.0.1", args.control_port)
    await site.start()
    control_url = f"http://127.0.0.1:{control.addresses[0][1]}"
    print(json.dumps({"base_url": base_url, "control_url": control_url}), flush=True)

    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await control.cleanup()
    await fake.close()
    await clock.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="the REST API's port (0: free)")
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="fake-auth-token")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--calls-per-second", type=float, default=100.0)
    parser.add_argument("--ring-seconds", type=float, default=5.0)
    parser.add_argument("--talk-seconds", type=float, default=30.0)
    parser.add_argument("--mix", default=DEFAULT_MIX, help="outcome=weight,...")
    args = parser.parse_args(argv)
    try:
        parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(serve(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
