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
from dataclasses import dataclass, field

from sqlalchemy import select

from dialer.agents import pool
from dialer.bus.base import ControlMessage
from dialer.channels.base import CallEvent
from dialer.domain.campaign import CampaignSpec, Channel
from dialer.domain.states import (
    ATTEMPT_LIVE,
    AttemptStatus,
    CampaignAction,
    CampaignState,
    LeadStatus,
)
from dialer.engine import control
from dialer.engine.deps import Deps
from dialer.engine.dispatch import Dispatcher, Prepared
from dialer.engine.outcomes import Outcomes
from dialer.engine.positions import set_status
from dialer.store import leads as lead_store
from dialer.store.models import Attempt, Campaign, Lead

log = logging.getLogger(__name__)
GAUGE_SECONDS = 15.0


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
        self._specs: dict[tuple[str, int], CampaignSpec] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._gauged_at = float("-inf")
        self._gauged: set[str] = set()
        self._wake = asyncio.Event()
        deps.voice.set_sink(self.on_call_event)
        self._unsubscribe = deps.bus.subscribe(self.on_control)

    # -- control fan-out -------------------------------------------------------------------
    async def on_control(self, msg: ControlMessage) -> None:
        await self.d.fence.on_control(msg)
        self.d.metrics.set_campaign_state(msg.campaign_id, msg.state)
        self._wake.set()

    async def on_call_event(self, ev: CallEvent) -> None:
        await self.outcomes.on_call_event(ev)
        if ev.status in (AttemptStatus.COMPLETED, AttemptStatus.BUSY, AttemptStatus.NO_ANSWER):
            self._wake.set()

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
                await self.tick()
            except Exception:
                log.exception("engine tick failed")
            self._wake.clear()
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.d.fence.close(), timeout=grace)

    # -- one tick --------------------------------------------------------------------------
    async def tick(self) -> TickReport:
        report = TickReport()
        now = self.d.clock.now()
        report.started = await self._start_scheduled(now)
        await self._auto_resume_leads(now)
        report.reconciled = await self._reconcile(now)
        report.abandoned = await self.outcomes.check_abandons(now)
        async with self.d.db.session() as s:
            await pool.end_wrap_ups(s, now)
            campaigns = (
                await s.scalars(
                    select(Campaign).where(
                        Campaign.state.in_((CampaignState.RUNNING, CampaignState.STOPPING))
                    )
                )
            ).all()
            engaged = await pool.engaged_campaigns(s)
        running = [c for c in campaigns if c.state == CampaignState.RUNNING]
        running.sort(key=lambda c: (c.started_at or 0.0, c.id))
        for c in campaigns:
            self.d.fence.see(c.id, c.state, c.version)
        for cid in engaged - {c.id for c in running}:
            async with self.d.db.session() as s:
                await pool.release(s, cid, now)
        await self._gauges(running, now)
        for c in running:
            async with self.d.db.session() as s:
                await pool.engage(s, c, now)
            if await self._maybe_complete(c, now):
                report.completed.append(c.id)
                continue
            report.dispatched += await self.dispatcher.run_campaign(c, self.spec(c), now)
        for c in campaigns:
            if c.state == CampaignState.STOPPING and await self.drain(c.id):
                report.stopped.append(c.id)
        await self._count_agents()
        return report

    def spec(self, c: Campaign) -> CampaignSpec:
        key = (c.id, c.version)
        spec = self._specs.get(key)
        if spec is None:
            spec = CampaignSpec.model_validate(c.config)
            self._specs = {k: v for k, v in self._specs.items() if k[0] != c.id}
            self._specs[key] = spec
        return spec

    async def _start_scheduled(self, now: float) -> list[str]:
        async with self.d.db.read() as conn:
            rows = await conn.execute(
                select(Campaign.id, Campaign.state).where(
                    Campaign.start_at.is_not(None), Campaign.start_at <= now
                )
            )
            due = list(rows.all())
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
            leads = (
                await s.scalars(
                    select(Lead)
                    .where(
                        Lead.status == LeadStatus.PAUSED,
                        Lead.paused_until.is_not(None),
                        Lead.paused_until <= now,
                    )
                    .limit(500)
                )
            ).all()
            campaigns: dict[str, Campaign] = {}
            for lead in leads:
                c = campaigns.get(lead.campaign_id) or await control.load(s, lead.campaign_id)
                campaigns[c.id] = c
                resume_lead(s, lead, c, now, actor="scheduler", reason="pause ran out")

    async def _reconcile(self, now: float) -> int:
        """Attempts written but never confirmed by a channel, whose lease ran out (a worker
        died mid-dispatch): ask the carrier before anything is dialled again."""
        async with self.d.db.read() as conn:
            rows = await conn.execute(
                select(
                    Attempt.id,
                    Attempt.idem_key,
                    Attempt.channel,
                    Attempt.campaign_id,
                    Attempt.step,
                    Lead.id,
                    Lead.status,
                )
                .join(Lead, Lead.active_attempt_id == Attempt.id)
                .where(
                    Attempt.status == AttemptStatus.CREATED,
                    Lead.lease_until.is_not(None),
                    Lead.lease_until < now,
                )
                .limit(200)
            )
            stale = list(rows.all())
        for attempt_id, key, channel, campaign_id, step, lead_id, lead_status in stale:
            known = await self.d.voice.lookup(key) if channel == "voice" else None
            if known is not None:
                await self.outcomes.on_call_event(
                    CallEvent(
                        attempt_id=str(attempt_id),
                        carrier_id=known.carrier_id,
                        status=AttemptStatus.QUEUED,
                        at=known.at,
                    )
                )
                await self.outcomes.on_call_event(known)
                continue
            async with self.d.db.session() as s:
                c = await control.load(s, campaign_id)
                lead = await s.get(Lead, lead_id, with_for_update=True)
                if lead is None:
                    continue
                lead.lease_until = now + self.d.tuning.lease_seconds
                lead.lease_owner = self.d.tuning.worker_id
                spec = self.spec(c)
                contact = {
                    "phone": lead.phone,
                    "email": lead.email,
                    "first_name": lead.first_name,
                    "last_name": lead.last_name,
                    "company": lead.company,
                    "custom": dict(lead.custom or {}),
                }
            self.d.fence.see(c.id, c.state, c.version)
            # Same attempt, same idempotency key: at most one call for (lead, step, try).
            await self.dispatcher.dispatch(
                Prepared(
                    attempt_id=attempt_id,
                    idem_key=key,
                    campaign_id=campaign_id,
                    version=c.version,
                    lead_id=lead_id,
                    prior_status=lead_status,
                    channel=Channel(spec.sequence[step].channel),
                    step=step,
                    lead=contact,
                ),
                spec,
            )
        return len(stale)

    async def _maybe_complete(self, c: Campaign, now: float) -> bool:
        async with self.d.db.read() as conn:
            if not await lead_store.has_leads(conn, c.id):
                return False
            if await lead_store.has_open_leads(conn, c.id):
                return False
            if await self._has_live(conn, c.id):
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
            if await self._has_live(conn, campaign_id):
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

    @staticmethod
    async def _has_live(conn: object, campaign_id: str) -> bool:
        from sqlalchemy.ext.asyncio import AsyncConnection

        assert isinstance(conn, AsyncConnection)
        row = await conn.execute(
            select(Attempt.id)
            .where(Attempt.campaign_id == campaign_id, Attempt.status.in_(tuple(ATTEMPT_LIVE)))
            .limit(1)
        )
        return row.first() is not None

    async def cancel_queued(self, campaign_id: str) -> list[str]:
        """Cancel the campaign's calls still queued at the carrier; returns attempt ids."""
        async with self.d.db.read() as conn:
            rows = await conn.execute(
                select(Attempt.id, Attempt.carrier_id).where(
                    Attempt.campaign_id == campaign_id,
                    Attempt.channel == "voice",
                    Attempt.status == AttemptStatus.QUEUED,
                    Attempt.carrier_id.is_not(None),
                )
            )
            queued = list(rows.all())
        cancelled: list[str] = []
        for attempt_id, carrier_id in queued:
            if carrier_id and await self.d.voice.cancel(carrier_id):
                cancelled.append(str(attempt_id))
        return cancelled

    async def _gauges(self, running: list[Campaign], now: float) -> None:
        """Per-campaign gauges for Grafana and alerts, refreshed every 15 s (a scrape)."""
        if now - self._gauged_at < GAUGE_SECONDS:
            return
        self._gauged_at = now
        m = self.d.metrics
        for c in running:
            spec = self.spec(c)
            m.campaign_max_abandon_rate.labels(c.id).set(spec.pacing.max_abandon_rate)
            async with self.d.db.read() as conn:
                due = await lead_store.count_due(
                    conn, c.id, control.campaign_clock(c).now(now), now
                )
            m.campaign_due_leads.labels(c.id).set(due)
        for cid in self._gauged - {c.id for c in running}:
            m.campaign_due_leads.labels(cid).set(0)
        self._gauged = {c.id for c in running}

    async def _count_agents(self) -> None:
        async with self.d.db.read() as conn:
            from sqlalchemy import func

            from dialer.store.models import Agent

            rows = await conn.execute(select(Agent.state, func.count()).group_by(Agent.state))
            self.d.metrics.set_agent_counts({state: int(n) for state, n in rows.all()})


def resume_lead(
    s: object, lead: Lead, c: Campaign, now: float, *, actor: str, reason: str | None = None
) -> None:
    """A paused lead goes on at the same step with the delay it had left."""
    from sqlalchemy.ext.asyncio import AsyncSession

    assert isinstance(s, AsyncSession)
    clock_now = control.campaign_clock(c).now(now)
    lead.due = clock_now + max(0.0, lead.paused_remaining or 0.0)
    lead.paused_remaining = None
    lead.paused_until = None
    lead.pause_reason = None
    set_status(s, lead, LeadStatus.IN_PROGRESS, now, actor=actor, reason=reason)
