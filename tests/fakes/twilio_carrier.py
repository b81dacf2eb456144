"""What an answered call does in the fake Twilio: its TwiML, conferences and bridges.

An answered call fetches its TwiML from its Url (or runs its `Twiml`) and executes it: a
<Say> plays for len(text)/15 seconds, <Play> and <Pause> take their time, <Hangup/> ends the
call, <Redirect> fetches more TwiML, <Dial> joins a conference or bridges to a client or a
number; the call completes when its TwiML runs out, as on Twilio. A customer (human) in a
<Dial> hangs up after its talk time, a machine after `machine_seconds`; an agent leg stays in
its conference until no customer is left in it. The webhooks are awaited inside the step, so
a webhook handler must not wait for a `FakeClock` to move.
"""

from __future__ import annotations

from collections import deque
from typing import Final
from urllib.parse import urljoin

from tests.fakes.twilio_model import FakeCall
from tests.fakes.twilio_timeline import CallTimeline
from tests.fakes.twilio_twiml import TwimlError, Verb, dial_targets, parse_twiml

ERROR_FETCH: Final = 11200  # HTTP retrieval failure
ERROR_PARSE: Final = 12100  # document parse failure


class FakeCarrier(CallTimeline):
    """The calls of the fake account; `FakeTwilio` puts the REST API in front of it."""

    machine_seconds = 10.0  # a machine left in a <Dial> hangs up after this
    play_seconds = 5.0  # one <Play>
    say_chars_per_second = 15.0

    async def _start(self, call: FakeCall) -> None:
        call.step = None
        if call.machine_detection and not call.async_amd:
            call.answered_by = self._detected(call)
        inline = call.params.get("Twiml")
        if inline is not None:
            self._load(call, inline)
        elif not await self._fetch(call, call.url or ""):
            return
        await self._run(call)

    def redirect(self, call: FakeCall, *, url: str | None, twiml: str | None) -> None:
        """New instructions for a live call, executed at once (Twiml wins over Url)."""
        self._interrupt(call)
        self._leave(call)
        if twiml is not None:
            if self._load(call, twiml):
                call.step = self._at(0, self._run, call)
            return
        call.url = url

        async def fetch_and_run(call: FakeCall) -> None:
            call.step = None
            if await self._fetch(call, url or ""):
                await self._run(call)

        call.step = self._at(0, fetch_and_run, call)

    async def _fetch(self, call: FakeCall, url: str) -> bool:
        """Fetch and load TwiML from `url`; False if the call moved on or ended meanwhile."""
        gen = call.gen
        sent, body = await self._hooks.post("voice", call, url, call.webhook_params())
        if call.gen != gen or call.final:
            return False
        if not 200 <= sent.status < 300:
            call.errors.append(ERROR_FETCH)
            self._end(call, "completed")  # Twilio says "an application error" and hangs up
            return False
        return self._load(call, body)

    def _load(self, call: FakeCall, twiml: str) -> bool:
        call.twiml = twiml
        try:
            verbs = parse_twiml(twiml)
        except TwimlError:
            call.errors.append(ERROR_PARSE)
            self._end(call, "completed")
            return False
        call.program = deque(verbs)
        return True

    async def _run(self, call: FakeCall) -> None:
        """Execute the call's TwiML from where it is; the call ends when the TwiML does."""
        call.step = None
        while call.program and call.status == "in-progress":
            verb = call.program.popleft()
            seconds = self._playing(verb)
            if seconds is not None:
                call.step = self._at(seconds, self._run, call)
                return
            if verb.name in ("Hangup", "Reject"):
                break
            if verb.name == "Dial":
                self._dial(call, verb)
                return
            if verb.name == "Redirect":
                if not await self._fetch(call, urljoin(call.url or "", verb.text)):
                    return
                continue
            call.ignored_verbs.append(verb.name)
        if call.status == "in-progress":
            self._end(call, "completed")

    def _playing(self, verb: Verb) -> float | None:
        loops = max(1.0, verb.number("loop", 1))
        if verb.name == "Say":
            return len(verb.text) / self.say_chars_per_second * loops
        if verb.name == "Play":
            return self.play_seconds * loops
        if verb.name == "Pause":
            return verb.number("length", 1)
        return None

    def _dial(self, call: FakeCall, verb: Verb) -> None:
        room = next((noun for noun in verb.nouns if noun.name == "Conference"), None)
        if room is None:
            call.agent_legs.extend(dial_targets(verb))
            self._talk(call)
            return
        name = call.conference = room.text
        call.ends_conference = room.attrs.get("endConferenceOnExit", "false").lower() == "true"
        members = self._conferences.setdefault(name, [])
        for other in members:
            if call.agent_leg and not other.agent_leg:
                other.agent_legs.append(call.to)
            elif other.agent_leg and not call.agent_leg:
                call.agent_legs.append(other.to)
        members.append(call)
        if not call.agent_leg:  # an agent stays until the customer's side ends the conference
            self._talk(call)

    def _talk(self, call: FakeCall) -> None:
        """The party hangs up after talking (a human) or after its greeting (a machine)."""
        seconds = self.machine_seconds if call.outcome == "machine" else call.talk_seconds
        call.step = self._at(seconds, self._ender("completed"), call)

    def _leave(self, call: FakeCall) -> None:
        """Leave the conference. It ends when no customer is left in it, or when a participant
        with endConferenceOnExit="true" leaves; the others' TwiML then goes on after <Dial>."""
        members = self._conferences.get(call.conference or "")
        if members is None or call not in members:
            return
        members.remove(call)
        if not call.ends_conference and any(not member.agent_leg for member in members):
            return
        del self._conferences[call.conference or ""]
        for member in members:
            if member.step is not None:
                member.step.cancel()
            member.step = self._at(0, self._run, member)
