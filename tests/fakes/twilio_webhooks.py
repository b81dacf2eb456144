"""The requests the fake Twilio makes to our side, signed like Twilio signs them.

Status callbacks go through a per-call outbox delivered by a scheduled task, one at a time,
so a call's step never waits on them; `shuffle` holds a call's callbacks until it ends and
then delivers them in a seeded random order, `duplicate_rate` sends that share twice.
"""

from __future__ import annotations

import functools
import logging
import random

import aiohttp
from twilio.request_validator import RequestValidator

from dialer.clock import Clock
from tests.fakes.twilio_model import FINAL, FakeCall, SentCallback, rfc2822

log = logging.getLogger(__name__)


class Webhooks:
    timeout = 15.0  # real seconds, as Twilio's

    def __init__(
        self,
        clock: Clock,
        auth_token: str,
        rng: random.Random,
        *,
        shuffle: bool = False,
        duplicate_rate: float = 0.0,
    ) -> None:
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be within [0, 1]")
        self.callbacks: list[SentCallback] = []  # status callbacks
        self.others: list[SentCallback] = []  # TwiML fetches (Url, <Redirect>), AMD results
        self.shuffle = shuffle
        self.duplicate_rate = duplicate_rate
        self.session: aiohttp.ClientSession | None = None
        self._clock = clock
        self._rng = rng
        self._validator = RequestValidator(auth_token)

    def sign(self, url: str, params: dict[str, str]) -> str:
        """X-Twilio-Signature of a POST of `params` to `url` (the URL exactly as requested)."""
        return str(self._validator.compute_signature(url, params))

    def report(self, call: FakeCall, status: str) -> None:
        """Queue the status callback of `call` having moved to `status`."""
        params = call.webhook_params() | {
            "Timestamp": rfc2822(self._clock.now()),
            "SequenceNumber": str(call.sequence),
            "CallbackSource": "call-progress-events",
        }
        if status in FINAL:
            params["CallDuration"] = str(call.duration or 0)
        call.sequence += 1
        copies = 2 if self._rng.random() < self.duplicate_rate else 1
        call.outbox.extend([params] * copies)
        if self.shuffle:
            if status not in FINAL:
                return
            self._rng.shuffle(call.outbox)
        if not call.flushing:
            call.flushing = True
            call.flusher = self._clock.schedule(0, functools.partial(self._flush, call))

    async def _flush(self, call: FakeCall) -> None:
        call.flusher = None
        try:
            while call.outbox and call.status_callback:
                await self.post("status", call, call.status_callback, call.outbox.pop(0))
        finally:
            call.flushing = False

    async def post(
        self, kind: str, call: FakeCall, url: str, params: dict[str, str]
    ) -> tuple[SentCallback, str]:
        """POST `params` to `url`, signed; the record of it, and the response body."""
        signature = self.sign(url, params)
        headers = {
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": f"{call.sid}-{kind}-{params.get('SequenceNumber', '')}",
            "User-Agent": "TwilioProxy/1.1",
        }
        status, body, error = 0, "", None
        try:
            if self.session is None:
                raise RuntimeError("the fake Twilio is not started")
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with self.session.post(
                url, data=params, headers=headers, timeout=timeout
            ) as response:
                status, body = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError, ValueError, RuntimeError) as exc:
            # Twilio records an error (11200) and does not retry by default.
            error = f"{type(exc).__name__}: {exc}"
            log.warning("fake twilio webhook failed: %s %s", url, error)
        now = self._clock.now()
        sent = SentCallback(kind, call.sid, url, params, signature, status, now, error)
        (self.callbacks if kind == "status" else self.others).append(sent)
        return sent, body
