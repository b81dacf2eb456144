"""Hypothesis drives the real service and engine through random control sequences.

Invariants (docs/architecture.md §14.2): nothing is dispatched while a campaign is paused or after
it was
terminated; terminal states are forever; lead counts are conserved; the database's figures
equal the carrier's own record.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dialer.channels.simulated import SimProfile
from dialer.domain.states import CAMPAIGN_TERMINAL, CampaignState
from dialer.errors import InvalidState
from tests.harness import ADMIN, harness, leads

PROFILE = SimProfile(answer_rate=0.4, machine_rate=0.1, busy_rate=0.2, fail_rate=0.05)
LEADS = 12


class CampaignMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="dialer-stateful-"))
        self.cm = harness(f"sqlite+aiosqlite:///{self.tmp / 'd.db'}", self.tmp, profile=PROFILE)
        self.h = self.run(self.cm.__aenter__())
        self.run(self.h.agents("a1", "a2"))
        c = self.run(
            self.h.campaign(
                sequence=[
                    {"channel": "voice", "max_attempts": 2, "retry_delay_seconds": 20},
                    {"channel": "email", "delay_seconds": 30, "subject": "s", "body": "b"},
                ],
                agent_ids=["a1", "a2"],
                pacing={"mode": "power", "lines_per_agent": 2.0, "calls_per_second": 50},
                wrap_up_seconds=1,
            )
        )
        self.cid: str = c.id
        self.run(self.h.service.leads.add(self.cid, leads(LEADS)))
        self.state = CampaignState.DRAFT
        self.frozen_dials: int | None = None  # dials when a pause/terminate returned
        self.terminal: CampaignState | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def dials(self) -> int:
        return len(self.h.voice.of(self.cid))

    def teardown(self) -> None:
        self.run(self.cm.__aexit__(None, None, None))
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _control(self, coro: Any) -> CampaignState | None:
        try:
            result = self.run(coro)
        except InvalidState as exc:
            return CampaignState(exc.state)
        campaign = getattr(result, "campaign", result)
        return CampaignState(campaign.state)

    @rule()
    def start(self) -> None:
        self.state = self._control(self.h.service.start(self.cid, actor=ADMIN)) or self.state
        if self.state == CampaignState.RUNNING:
            self.frozen_dials = None

    @rule()
    def pause(self) -> None:
        self.state = self._control(self.h.service.pause(self.cid, actor=ADMIN)) or self.state
        if self.state == CampaignState.PAUSED:
            self.frozen_dials = self.dials()

    @rule()
    def resume(self) -> None:
        self.state = self._control(self.h.service.resume(self.cid, actor=ADMIN)) or self.state
        if self.state == CampaignState.RUNNING:
            self.frozen_dials = None

    @rule()
    def terminate(self) -> None:
        state = self._control(self.h.service.terminate(self.cid, confirm=self.cid, actor=ADMIN))
        self.state = state or self.state
        if self.state in (CampaignState.STOPPING, *CAMPAIGN_TERMINAL):
            self.frozen_dials = self.dials()

    @rule(seconds=st.sampled_from([0.5, 1, 3, 10, 40]))
    def time_passes(self, seconds: float) -> None:
        self.run(self.h.tick())
        self.run(self.h.advance(seconds))
        self.run(self.h.tick())
        self.state = CampaignState(self.run(self.h.service.get_campaign(self.cid)).state)

    @precondition(lambda self: self.state == CampaignState.RUNNING)
    @rule(i=st.integers(0, LEADS - 1), action=st.sampled_from(["pause", "stop", "skip"]))
    def lead_control(self, i: int, action: str) -> None:
        items, _ = self.run(self.h.service.leads.page(self.cid))
        lead = items[i]
        try:
            if action == "pause":
                self.run(self.h.service.leads.pause(lead.id, actor=ADMIN, reason="test"))
            elif action == "stop":
                self.run(self.h.service.leads.stop(lead.id, actor=ADMIN))
            else:
                self.run(self.h.service.leads.skip(lead.id, actor=ADMIN))
        except InvalidState:
            pass

    @invariant()
    def nothing_goes_out_while_halted(self) -> None:
        if self.frozen_dials is not None:
            assert self.dials() == self.frozen_dials

    @invariant()
    def terminal_is_forever(self) -> None:
        if self.terminal is not None:
            assert self.state == self.terminal
        if self.state in CAMPAIGN_TERMINAL:
            self.terminal = self.state

    @invariant()
    def figures_add_up(self) -> None:
        stats = self.run(self.h.service.stats(self.cid))
        assert sum(stats.leads.values()) == LEADS
        assert stats.calls.dialed == len(self.h.sim.record)
        assert stats.calls.answered <= stats.calls.received <= stats.calls.dialed


CampaignMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCampaignMachine = CampaignMachine.TestCase
