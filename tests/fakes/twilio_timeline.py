"""The life of a call in the fake Twilio, on the injected clock, up to its answer.

A call waits in the account's queue (calls leave it at most `calls_per_second`, in order; a
canceled call frees its place), is initiated, rings, and then plays its scripted outcome.
What an answered call does is `FakeCarrier`'s (TwiML); how it ends and is reported is here.
Nothing sleeps: every step is `clock.schedule`d, so a `FakeClock` plays calls
deterministically.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable

from dialer.clock import Clock, Handle
from tests.fakes.twilio_model import (
    EVENT_OF_STATUS,
    FINAL,
    NOT_ANSWERED,
    OUTCOMES,
    FakeCall,
    Script,
    SentCallback,
)
from tests.fakes.twilio_twiml import joins_conference
from tests.fakes.twilio_webhooks import Webhooks

Step = Callable[[FakeCall], Awaitable[None]]


class CallTimeline:
    """Calls from creation to answer, and their end. Timings are clock seconds."""

    default_outcome = "human"
    ring_seconds = 5.0
    talk_seconds = 30.0
    busy_seconds = 2.0  # a busy line is known after this much ringing
    amd_seconds = 2.0  # answering-machine detection, sync (delays the Url) or async

    def __init__(
        self,
        clock: Clock,
        *,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "fake-auth-token",
        calls_per_second: float = 1.0,
        seed: int = 0,
        shuffle: bool = False,
        duplicate_rate: float = 0.0,
    ) -> None:
        if calls_per_second <= 0:
            raise ValueError("calls_per_second must be > 0")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.calls: dict[str, FakeCall] = {}
        self._clock = clock
        self._rng = random.Random(seed)
        self._hooks = Webhooks(
            clock, auth_token, self._rng, shuffle=shuffle, duplicate_rate=duplicate_rate
        )
        self.callbacks: list[SentCallback] = self._hooks.callbacks  # status callbacks
        self.webhooks: list[SentCallback] = self._hooks.others  # TwiML fetches, AMD results
        self._interval = 1.0 / calls_per_second
        self._queue: deque[FakeCall] = deque()
        self._last_exit = -math.inf
        self._pump: Handle | None = None
        self._scripts: dict[str, deque[Script]] = {}
        self._conferences: dict[str, list[FakeCall]] = {}  # FakeCarrier's: who is in each room

    def script(
        self, to: str, outcome: str, *, ring_seconds: float = 5.0, talk_seconds: float = 30.0
    ) -> None:
        """Script the calls to `to`. Scripts of one number play in order; the last repeats."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        self._scripts.setdefault(to, deque()).append(Script(outcome, ring_seconds, talk_seconds))

    def counts(self) -> Counter[str]:
        """Calls by final status."""
        return Counter(call.status for call in self.calls.values() if call.final)

    def sign(self, url: str, params: dict[str, str]) -> str:
        """X-Twilio-Signature of a POST of `params` to `url`, as this account signs it."""
        return self._hooks.sign(url, params)

    def place(self, form: dict[str, str], events: list[str]) -> FakeCall:
        """A validated create request becomes a call, queued behind the account's CPS."""
        to, inline = form["To"], form.get("Twiml")
        agent_leg = to.startswith("client:") or (inline is not None and joins_conference(inline))
        script = self._next_script(to, agent_leg)
        amd = form.get("MachineDetection")
        call = FakeCall(
            sid=f"CA{self._rng.getrandbits(128):032x}",
            account_sid=self.account_sid,
            to=to,
            from_=form["From"],
            params=form,
            created_at=self._clock.now(),
            outcome=script.outcome,
            ring_seconds=script.ring_seconds,
            talk_seconds=script.talk_seconds,
            agent_leg=agent_leg,
            url=form.get("Url"),
            status_callback=form.get("StatusCallback"),
            events=events,
            timeout=int(form.get("Timeout", 60)),
            time_limit=int(form.get("TimeLimit", 14400)),
            machine_detection=amd if amd in ("Enable", "DetectMessageEnd") else None,
            async_amd=form.get("AsyncAmd", "false").lower() == "true",
            async_amd_status_callback=form.get("AsyncAmdStatusCallback"),
        )
        self.calls[call.sid] = call
        self._queue.append(call)
        self._arm_pump()
        return call

    def _next_script(self, to: str, agent_leg: bool) -> Script:
        scripts = self._scripts.get(to)
        if scripts:
            return scripts.popleft() if len(scripts) > 1 else scripts[0]
        if agent_leg:  # an agent picks up at once
            return Script("human", 0.0, self.talk_seconds)
        if self.default_outcome not in OUTCOMES:
            raise ValueError(f"default_outcome must be one of {sorted(OUTCOMES)}")
        return Script(self.default_outcome, self.ring_seconds, self.talk_seconds)

    def _arm_pump(self) -> None:
        if self._pump is None and self._queue:
            delay = max(0.0, self._last_exit + self._interval - self._clock.now())
            self._pump = self._clock.schedule(delay, self._dequeue)

    async def _dequeue(self) -> None:
        """One call leaves the account's queue; the next may leave 1/CPS later."""
        self._pump = None
        if self._queue:
            self._last_exit = self._clock.now()
            self._initiate(self._queue.popleft())
        self._arm_pump()

    def _initiate(self, call: FakeCall) -> None:
        call.started_at = self._clock.now()
        self._set(call, "initiated")
        if call.outcome == "failed":
            self._end(call, "failed")
            return
        self._set(call, "ringing")
        if call.outcome == "busy":
            delay, then = min(self.busy_seconds, call.timeout), "busy"
        elif call.outcome == "no-answer" or call.ring_seconds > call.timeout:
            delay, then = float(call.timeout), "no-answer"
        else:
            call.step = self._at(call.ring_seconds, self._answer, call)
            return
        call.step = self._at(delay, self._ender(then), call)

    async def _answer(self, call: FakeCall) -> None:
        call.step = None
        call.answered_at = self._clock.now()
        self._set(call, "in-progress")
        call.limit = self._at(call.time_limit, self._ender("completed"), call)
        if call.machine_detection and call.async_amd:
            call.amd = self._at(self.amd_seconds, self._send_amd, call)
            await self._start(call)
        elif call.machine_detection:  # sync AMD: the Url is fetched once it has decided
            call.step = self._at(self.amd_seconds, self._start, call)
        else:
            await self._start(call)

    def _detected(self, call: FakeCall) -> str:
        if call.outcome == "human":
            return "human"
        if call.machine_detection == "DetectMessageEnd":
            return "machine_end_beep"
        return "machine_start"

    async def _send_amd(self, call: FakeCall) -> None:
        call.amd = None
        if call.status != "in-progress":
            return
        call.answered_by = self._detected(call)
        if call.async_amd_status_callback:
            params = {
                "CallSid": call.sid,
                "AccountSid": call.account_sid,
                "AnsweredBy": call.answered_by,
                "MachineDetectionDuration": str(int(self.amd_seconds * 1000)),
            }
            await self._hooks.post("amd", call, call.async_amd_status_callback, params)

    async def _start(self, call: FakeCall) -> None:
        """Run the answered call's TwiML."""
        raise NotImplementedError

    def _leave(self, call: FakeCall) -> None:
        """Take the call out of any conference it is in."""

    # -- changes asked through the REST API ----------------------------------------------

    def cancel(self, call: FakeCall) -> None:
        """`Status=canceled`: ends a call not answered yet; an answered call is not affected."""
        if call.status in NOT_ANSWERED:
            self._end(call, "canceled")

    def hang_up(self, call: FakeCall) -> None:
        """`Status=completed`: a call not answered yet ends as canceled."""
        self._end(call, "canceled" if call.status in NOT_ANSWERED else "completed")

    def set_time_limit(self, call: FakeCall, seconds: int) -> None:
        call.time_limit = seconds
        if call.limit is not None:
            call.limit.cancel()
            elapsed = self._clock.now() - (call.answered_at or self._clock.now())
            call.limit = self._at(max(0.0, seconds - elapsed), self._ender("completed"), call)

    # -- the end -------------------------------------------------------------------------

    def _interrupt(self, call: FakeCall) -> None:
        """Stop what the call is doing (its TwiML, a webhook in flight is then ignored)."""
        call.gen += 1
        call.program.clear()
        if call.step is not None:
            call.step.cancel()
            call.step = None

    def _end(self, call: FakeCall, status: str) -> None:
        if call.final:
            return
        self._interrupt(call)
        for handle in (call.limit, call.amd):
            if handle is not None:
                handle.cancel()
        call.limit = call.amd = None
        self._leave(call)
        if call in self._queue:
            self._queue.remove(call)  # its place goes to the next call
        call.ended_at = self._clock.now()
        answered = call.answered_at
        call.duration = 0 if answered is None else round(call.ended_at - answered)
        self._set(call, status)

    def _ender(self, status: str) -> Step:
        async def end(call: FakeCall) -> None:
            call.step = None
            self._end(call, status)

        return end

    def _set(self, call: FakeCall, status: str) -> None:
        call.status = status
        call.history.append(status)
        # The final statuses are the `completed` event, which Twilio always reports.
        event = EVENT_OF_STATUS.get(status)
        if call.status_callback and (status in FINAL or event in call.events):
            self._hooks.report(call, status)

    def _at(self, delay: float, fn: Step, call: FakeCall) -> Handle:
        return self._clock.schedule(delay, functools.partial(fn, call))

    def _stop_all(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        for call in self.calls.values():
            for handle in (call.step, call.limit, call.amd, call.flusher):
                if handle is not None:
                    handle.cancel()
            call.step = call.limit = call.amd = call.flusher = None
            call.outbox.clear()
