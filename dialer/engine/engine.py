"""The engine: one owned asyncio loop that ticks.

Each tick: start/resume what is scheduled, auto-resume leads whose pause ran out, reconcile
attempts of crashed dispatches, end wrap-ups, engage or release agents, complete or drain
campaigns, bridge or abandon answered calls, and dispatch due work of running campaigns.
Tests call `tick()` directly on a fake clock; `run()` is the production loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from dialer.agents import pool
from dialer.bus.base import ControlMessage
from dialer.channels.base import CallEvent
from dialer.domain.campaign import CampaignSpec
from dialer.domain.states import (
    CAMPAIGN_TERMINAL,
    AttemptStatus,
    CampaignAction,
    CampaignState,
)
from dialer.engine import control, leads
from dialer.engine.deps import Deps
from dialer.engine.dispatch import Dispatcher
from dialer.engine.outcomes import Outcomes
from dialer.engine.reconcile import Reconciler
from dialer.store import agents as agent_store
from dialer.store import attempts as attempt_store
from dialer.store import campaigns as campaign_store
from dialer.store import leads as lead_store
from dialer.store.db import describe, unavailable
from dialer.store.models import Campaign

log = logging.getLogger(__name__)
GAUGE_SECONDS = 15.0
CANCEL_CONCURRENCY = 16  # requests to the carrier at once when a pause cancels queued calls
RECONCILE_SECONDS = 5.0  # how often open attempts nobody vouches for are looked for


@dataclass(slots=True)
class TickReport:
    dispatched: int = 0
    started: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    reconciled: int = 0
    abandoned: int = 0


class Engine:
    def __init__(self, deps: Deps, *, tick_seconds: float = 0.2) -> None:
        self.d = deps
        self.tick_seconds = tick_seconds
        self.outcomes = Outcomes(deps)
        self.dispatcher = Dispatcher(deps, self.outcomes)
        self.reconciler = Reconciler(deps, self.outcomes, self.dispatcher)
        self._reconciled_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._gauged_at = float("-inf")
        self._gauged: set[str] = set()
        self._wake = asyncio.Event()
        deps.voice.set_sink(self.on_call_event)
        self._unsubscribe = deps.bus.subscribe(self.on_control)
        deps.bus.set_resync(self.resync)
        self.dispatching: list[str] = []  # the campaigns of the last round (the registry's)
        self._full: set[str] = set()  # campaigns whose last claim came back full

    # -- control fan-out -------------------------------------------------------------------
    async def on_control(self, msg: ControlMessage) -> None:
        await self.d.fence.on_control(msg)
        self.d.metrics.set_campaign_state(msg.campaign_id, msg.state)
        self._wake.set()

    async def resync(self) -> list[ControlMessage]:
        """Every campaign's state and version from the database: what the bus hands to
        this engine after it may have missed messages (docs/architecture.md §12.2)."""
        async with self.d.db.reader() as s:
            # Terminal states are reached from `stopping` or by this engine's own moves.
            campaigns = await campaign_store.in_states(
                s, tuple(set(CampaignState) - CAMPAIGN_TERMINAL)
            )
        return [ControlMessage(c.id, c.state, c.version) for c in campaigns]

    async def on_call_event(self, ev: CallEvent) -> None:
        await self.outcomes.on_call_event(ev)
        if ev.status in (AttemptStatus.COMPLETED, AttemptStatus.BUSY, AttemptStatus.NO_ANSWER):
            self._wake.set()

    @property
    def abandon_message(self) -> str:
        """What a caller hears when no agent takes the call (also the webhooks' TwiML)."""
        return self.d.tuning.abandon_message

    async def dial_preview(
        self, campaign_id: str, lead_id: int, agent_id: str, *, actor: str
    ) -> int | None:
        """An agent's preview dial (docs/architecture.md §3.4)."""
        return await self.dispatcher.dial_preview(campaign_id, lead_id, agent_id, actor=actor)

    async def announce(self, c: Campaign) -> None:
        """Fan a campaign state change out to every engine (returns when all have seen it)."""
        await self.d.bus.publish(ControlMessage(c.id, c.state, c.version))

    # -- loop ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="dialer-engine")

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick(settle=False)
                if not self.dispatcher.backlog:
                    await self.dispatcher.settle()  # idle next: nothing stays unwritten
            except Exception as exc:
                if unavailable(exc):  # nothing dispatches; the next tick tries again
                    log.warning("engine tick failed: %s", describe(exc))
                else:
                    log.exception("engine tick failed")
            self._wake.clear()
            if self.dispatcher.backlog and not self._stop.is_set():
                # A claim came back full: more is due now, go on without the tick's sleep
                # (a pause still lands between rounds: docs/architecture.md §6.5).
                await asyncio.sleep(0)
                continue
            sleeper = asyncio.ensure_future(self.d.clock.sleep(self.tick_seconds))
            waker = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(self._stop.wait())
            _, pending = await asyncio.wait(
                {sleeper, waker, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            for fut in pending:
                fut.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let dispatches past the fence finish (time-boxed). Idempotent."""
        self._stop.set()
        self._unsubscribe()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=grace)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:  # the last round's results (their leases lapse for the reconciler otherwise)
            await asyncio.wait_for(self.dispatcher.settle(), timeout=grace)
        except Exception as exc:
            log.warning("engine stop: results unwritten: %s", describe(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.d.fence.close(), timeout=grace)

    # -- one tick --------------------------------------------------------------------------
    async def tick(self, *, settle: bool = True) -> TickReport:
        """One pass: housekeeping, then a dispatch round per running campaign. With
        `settle`, it returns once the rounds' results are written; the engine's own loop
        lets the last round's be written while the next tick claims (§6.5)."""
        report = TickReport()
        self.dispatcher.backlog = False
        now = self.d.clock.now()
        report.started = await self._start_scheduled(now)
        await self._auto_resume_leads(now)
        await self.reconciler.renew(now)
        if now - self._reconciled_at >= min(RECONCILE_SECONDS, self.d.tuning.lease_seconds / 4):
            self._reconciled_at = now
            report.reconciled = await self.reconciler.run(now)
        report.abandoned = await self.outcomes.check_abandons(now)
        async with self.d.db.session() as s:
            await pool.end_wrap_ups(s, now)
            campaigns = await campaign_store.in_states(
                s, (CampaignState.RUNNING, CampaignState.STOPPING)
            )
            engaged = await agent_store.engaged_campaigns(s)
        running = [c for c in campaigns if c.state == CampaignState.RUNNING]
        running.sort(key=lambda c: (c.started_at or 0.0, c.id))
        full: set[str] = set()
        self.dispatching = [c.id for c in running]
        for c in campaigns:
            self.d.fence.see(c.id, c.state, c.version)
        for cid in engaged - {c.id for c in running}:
            async with self.d.db.session() as s:
                await pool.release(s, cid, now)
        await self._gauges(running, now)
        for c in running:
            async with self.d.db.session() as s:
                await pool.engage(s, c, self.spec(c), now)
            # A campaign whose last claim came back full has due leads: not complete.
            if c.id not in self._full and await self._maybe_complete(c, now):
                report.completed.append(c.id)
                continue
            self.dispatcher.backlog = False
            report.dispatched += await self.dispatcher.run_campaign(c, self.spec(c), now)
            if self.dispatcher.backlog:
                full.add(c.id)
        self._full = full
        self.dispatcher.backlog = bool(full)
        if settle:
            await self.dispatcher.settle()
        for c in campaigns:
            if c.state == CampaignState.STOPPING and await self.drain(c.id):
                report.stopped.append(c.id)
        await self._count_agents()
        return report

    def spec(self, c: Campaign) -> CampaignSpec:
        """The campaign's config, parsed once per version."""
        return self.d.specs.of(c)

    async def _start_scheduled(self, now: float) -> list[str]:
        async with self.d.db.reader() as s:
            due = await campaign_store.due_to_start(s, now)
        started: list[str] = []
        for cid, state in due:
            action = (
                CampaignAction.RESUME if state == CampaignState.PAUSED else CampaignAction.START
            )
            try:
                async with self.d.db.session() as s:
                    change = await control.transition(s, cid, action, now, actor="scheduler")
            except Exception as exc:  # a campaign terminated meanwhile, say
                log.info("scheduled start skipped", extra={"campaign": cid, "error": str(exc)})
                continue
            if change.changed:
                await self.announce(change.campaign)
                started.append(cid)
        return started

    async def _auto_resume_leads(self, now: float) -> None:
        async with self.d.db.session() as s:
            campaigns: dict[str, Campaign] = {}
            for lead in await lead_store.paused_until_over(s, now):
                c = campaigns.get(lead.campaign_id) or await control.load(s, lead.campaign_id)
                campaigns[c.id] = c
                leads.resume_lead(
                    s,
                    lead,
                    control.campaign_clock(c),
                    now,
                    actor="scheduler",
                    reason="pause ran out",
                )

    async def _maybe_complete(self, c: Campaign, now: float) -> bool:
        async with self.d.db.read() as conn:
            if not await lead_store.has_leads(conn, c.id):
                return False
            if await lead_store.has_open_leads(conn, c.id):
                return False
            if await attempt_store.has_live(conn, c.id):
                return False
        async with self.d.db.session() as s:
            change = await control.transition(
                s, c.id, CampaignAction.COMPLETE, now, actor="engine", reason="all leads done"
            )
            released = await pool.release(s, c.id, now)
        if change.changed:
            await self.announce(change.campaign)
            log.info("campaign completed", extra={"campaign": c.id, "released": released})
        return change.changed

    async def drain(self, campaign_id: str) -> bool:
        """stopping -> stopped once nothing of the campaign is in flight."""
        async with self.d.db.read() as conn:
            if await attempt_store.has_live(conn, campaign_id):
                return False
        now = self.d.clock.now()
        async with self.d.db.session() as s:
            change = await control.transition(
                s, campaign_id, CampaignAction.DRAIN, now, actor="engine", reason="drained"
            )
            await pool.release(s, campaign_id, now)
        if change.changed:
            await self.announce(change.campaign)
        return change.changed

    async def cancel_calls(self, queued: Sequence[tuple[int, str]]) -> list[str]:
        """Cancel these (attempt id, carrier id) calls if still queued at the carrier;
        returns the attempt ids cancelled."""
        limit = asyncio.Semaphore(CANCEL_CONCURRENCY)  # a pause should not wait in line

        async def cancel(carrier_id: str) -> bool:
            async with limit:
                return await self.d.voice.cancel(carrier_id)

        done = await asyncio.gather(*(cancel(carrier_id) for _, carrier_id in queued))
        return [str(attempt_id) for (attempt_id, _), ok in zip(queued, done, strict=True) if ok]

    async def _gauges(self, running: list[Campaign], now: float) -> None:
        """Per-campaign gauges for Grafana and alerts, refreshed every 15 s (a scrape). They
        describe the database, so only `serve` exports them (docs/architecture.md §12.2): a
        worker's engine does not even count."""
        m = self.d.metrics
        if not m.database_gauges or now - self._gauged_at < GAUGE_SECONDS:
            return
        self._gauged_at = now
        for c in running:
            spec = self.spec(c)
            async with self.d.db.read() as conn:
                due = await lead_store.count_due(
                    conn, c.id, control.campaign_clock(c).now(now), now
                )
            m.set_campaign_gauges(
                c.id, due_leads=due, max_abandon_rate=spec.pacing.max_abandon_rate
            )
        for cid in self._gauged - {c.id for c in running}:
            m.clear_due_leads(cid)
        self._gauged = {c.id for c in running}

    async def _count_agents(self) -> None:
        if not self.d.metrics.database_gauges:  # serve's to export (docs/architecture.md §12.2)
            return
        async with self.d.db.reader() as s:
            self.d.metrics.set_agent_counts(await agent_store.counts_by_state(s))
