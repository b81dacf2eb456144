"""The live event stream's hub: polls the events table, renders each row once, fans out.

The table is the source of truth, so any worker's changes reach every stream. One owned task
polls `id > cursor` every `poll_seconds` and re-reads the rows' objects in the same snapshot
(an object is never older than its row). An SSE `id:` is a table id, so `Last-Event-ID`
resumes exactly (the handler replays with `history()`, then goes live). `campaign.stats`
frames have no row: they carry the cursor they were taken at, which resumes just as well.
Queues are bounded and never waited on: a client that falls behind is cut off and catches
up from the table when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dialer.api.schemas import AgentOut, CampaignOut, LeadOut, StatsOut, iso
from dialer.domain.states import CampaignState
from dialer.store import campaigns as campaign_store
from dialer.store import events as event_store
from dialer.store.db import DbSession, PinnedReader, describe, unavailable
from dialer.store.models import Event
from dialer.store.stats import campaign_stats

if TYPE_CHECKING:
    from dialer.runtime import Runtime

log = logging.getLogger(__name__)

CAMPAIGN_STATE, CAMPAIGN_STATS = "campaign.state", "campaign.stats"
AGENT_STATE, LEAD_STATE = "agent.state", "lead.state"
LIVE_STATES = (CampaignState.RUNNING, CampaignState.STOPPING)
PAGE = 500
STOP_GRACE = 5.0  # seconds stop() lets the current poll finish before cancelling it
# PostgreSQL hands out sequence values at INSERT, so a lower id can commit after a higher
# one: hold the cursor at a gap this long for the late row (or a rolled-back one) to settle.
GAP_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class LiveEvent:
    name: str
    seq: int  # events-table id, or the cursor a stats snapshot was taken at
    data: str
    campaign_id: str | None
    agent_id: str | None = None
    row: bool = True  # False for stats snapshots (no row of their own)

    def frame(self, floor: int = 0) -> str:
        """The SSE frame; a snapshot's id never goes below `floor` (what the client has)."""
        seq = self.seq if self.row else max(self.seq, floor)
        return f"id: {seq}\nevent: {self.name}\ndata: {self.data}\n\n"


@dataclass(frozen=True, slots=True)
class Filter:
    """What one stream may see: an agent sees campaign.state and its own agent.state."""

    campaign_id: str | None = None
    agent_view: bool = False
    agent_id: str | None = None

    def wants(self, ev: LiveEvent) -> bool:
        if self.campaign_id is not None and ev.campaign_id != self.campaign_id:
            return False
        if self.agent_view:
            own = ev.name == AGENT_STATE and ev.agent_id is not None
            return ev.name == CAMPAIGN_STATE or (own and ev.agent_id == self.agent_id)
        return True


@dataclass(eq=False, slots=True)
class Subscriber:
    filter: Filter
    queue: asyncio.Queue[LiveEvent | None]
    closed: bool = field(default=False)

    def close(self) -> None:
        """Discard what is queued (a resume replays it) and wake the stream to end."""
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


def _dump(**payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


async def render(s: DbSession, rows: list[Event]) -> list[LiveEvent]:
    """Rows to stream events, reading their objects in three queries (in `s`'s snapshot)."""
    camps, agents, leads = await event_store.subjects(
        s,
        (r.entity_id for r in rows if r.entity == "campaign"),
        (r.entity_id for r in rows if r.entity == "agent"),
        (int(r.entity_id) for r in rows if r.type == LEAD_STATE and r.entity_id.isdigit()),
    )
    out: list[LiveEvent] = []
    for r in rows:
        head: dict[str, Any] = {
            "type": r.type,
            "event_id": str(r.id),
            "at": iso(r.at),
            "from_state": r.from_state,
            "to_state": r.to_state,
            "reason": r.reason,
        }
        if (c := camps.get(r.entity_id)) is not None and r.entity == "campaign":
            body = CampaignOut.of(c).model_dump(mode="json")
            data = _dump(**head, version=c.version, campaign=body)
            out.append(LiveEvent(CAMPAIGN_STATE, r.id, data, c.id))
        elif (a := agents.get(r.entity_id)) is not None and r.entity == "agent":
            data = _dump(**head, version=a.version, agent=AgentOut.of(a).model_dump(mode="json"))
            out.append(LiveEvent(AGENT_STATE, r.id, data, r.campaign_id or a.campaign_id, a.id))
        elif (x := leads.get(r.entity_id)) is not None and r.type == LEAD_STATE:
            data = _dump(**head, version=r.id, lead=LeadOut.of(x).model_dump(mode="json"))
            out.append(LiveEvent(LEAD_STATE, r.id, data, x.campaign_id))
    return out


class LiveHub:
    def __init__(
        self,
        runtime: Runtime,
        *,
        poll_seconds: float = 0.1,
        stats_seconds: float = 1.0,
        heartbeat_seconds: float = 15.0,
        queue_size: int = 2000,
        max_delay: float = 5.0,
    ) -> None:
        self.runtime = runtime
        self.poll_seconds = poll_seconds
        self.max_delay = max_delay  # the longest wait between polls while they fail
        self.delay = poll_seconds  # the wait before the next poll
        self.failures = 0  # consecutive failed polls
        self.stats_seconds = stats_seconds
        self.heartbeat_seconds = heartbeat_seconds  # read by each stream
        self.queue_size = queue_size
        self.cursor = 0  # every row with id <= cursor has been fanned out
        self.dropped = 0  # subscribers cut off for falling behind
        self._subs: set[Subscriber] = set()
        self._stats: dict[str, tuple[str, LiveEvent]] = {}  # campaign -> (figures, last push)
        self._changed: set[str] = set()  # campaigns with a row since the last stats pass
        self._gap_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._reader = PinnedReader(runtime.db)
        self._stopped = False
        self._stopping = asyncio.Event()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._stopped

    async def start(self) -> None:
        if self._task is not None:
            return
        async with self._reader.snapshot() as s:
            self.cursor = await event_store.last_id(s)
        self._task = asyncio.create_task(self._run(), name="live-hub")

    async def stop(self) -> None:
        """End the poller and every open stream; idempotent (call it from on_shutdown too)."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._task is not None:
            try:  # the current poll finishes (a query is short), then the loop ends
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()
        await self._reader.close()

    def subscribe(self, flt: Filter) -> Subscriber:
        """Live from the current cursor on (synchronous: no row can slip in between the
        caller's last look at `cursor` and this); the latest stats snapshots come first."""
        sub = Subscriber(flt, asyncio.Queue(self.queue_size))
        for _, ev in self._stats.values():
            if flt.wants(ev) and not sub.queue.full():
                sub.queue.put_nowait(replace(ev, seq=self.cursor))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    def publish(self, events: Iterable[LiveEvent]) -> None:
        for ev in events:
            for sub in list(self._subs):
                if not sub.filter.wants(ev):
                    continue
                try:
                    sub.queue.put_nowait(ev)
                except asyncio.QueueFull:
                    self._subs.discard(sub)
                    sub.close()
                    self.dropped += 1
                    log.warning("live.subscriber_dropped", extra={"queued": self.queue_size})

    async def history(self, after: int, upto: int) -> AsyncIterator[tuple[list[LiveEvent], int]]:
        """Rows after `after` up to `upto`, rendered, page by page, each with the id it
        covers up to (for Last-Event-ID)."""
        while after < upto:
            async with self.runtime.db.reader() as s:
                fetched = await event_store.list_events(s, after_id=after, limit=PAGE)
                rows = [r for r in fetched if r.id <= upto]
                page = await render(s, rows)
            after = rows[-1].id if len(rows) == PAGE else upto
            yield page, after

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_stats = loop.time()
        while not self._stopped:
            full = False
            try:
                full = await self._poll()
                if loop.time() >= next_stats:
                    next_stats = loop.time() + self.stats_seconds
                    await self._push_stats()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may blip; the stream must outlive it
                self._failed(exc)
            else:
                if self.failures:
                    log.info("live.poll_recovered", extra={"failures": self.failures})
                self.failures, self.delay = 0, self.poll_seconds
            if not full:
                # Woken early by stop(): a poll is never cancelled in the middle of a query
                # (the driver's thread would answer a loop that may be closed by then).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.delay)

    def _failed(self, exc: Exception) -> None:
        """Back off, doubling up to `max_delay`: a database that is down is not asked ten times
        a second. Its being down is a warning line, not a traceback (docs/architecture.md
        §15.1); anything else is a bug and keeps its traceback. Repeats are collapsed by
        logs.CollapseRepeats."""
        self.failures += 1
        self.delay = min(self.max_delay, max(self.poll_seconds, self.delay * 2))
        if unavailable(exc):
            extra = {"error": describe(exc), "retry_in": self.delay}
            log.warning("live.poll_failed", extra=extra)
        else:
            log.exception("live.poll_failed", extra={"retry_in": self.delay})

    def _settled(self, rows: list[Event]) -> list[Event]:
        """The leading rows with no unexplained gap before them (see GAP_WAIT)."""
        out: list[Event] = []
        expect = self.cursor + 1
        for r in rows:
            if r.id != expect:
                now = time.monotonic()
                self._gap_since = self._gap_since or now
                if now - self._gap_since < GAP_WAIT:
                    break
            self._gap_since = None
            out.append(r)
            expect = r.id + 1
        return out

    async def _poll(self) -> bool:
        async with self._reader.snapshot() as s:
            fetched = await event_store.list_events(s, after_id=self.cursor, limit=PAGE)
            rows = self._settled(fetched)
            events = await render(s, rows) if rows else []
        if rows:
            self.cursor = rows[-1].id
            # Any row of a campaign (a lead or call ending while it drains) may move its figures.
            self._changed.update(r.campaign_id for r in rows if r.campaign_id)
            self.publish(events)
        return len(fetched) == PAGE and len(rows) == len(fetched)

    async def _push_stats(self) -> None:
        changed, self._changed = self._changed, set()
        async with self._reader.snapshot() as s:
            camps = await campaign_store.in_states(s, LIVE_STATES, changed)
            figures = [(c, StatsOut.of(await campaign_stats(s, c))) for c in camps]
        fresh: list[LiveEvent] = []
        for c, stats in figures:
            text = stats.model_dump_json()
            last = self._stats.get(c.id)
            if last is not None and last[0] == text:
                continue
            data = _dump(
                type=CAMPAIGN_STATS, version=self.cursor, stats=stats.model_dump(mode="json")
            )
            ev = LiveEvent(CAMPAIGN_STATS, self.cursor, data, c.id, row=False)
            self._stats[c.id] = (text, ev)
            fresh.append(ev)
        for cid in set(self._stats) - {c.id for c, _ in figures}:
            del self._stats[cid]  # no longer live: pushed its final figures already
        self.publish(fresh)
