from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise

import pytest

from dialer.channels.base import (
    NOT_PLACED,
    CallEvent,
    CallQuery,
    ChannelError,
    DialRequest,
    FateKind,
    VoiceChannel,
)
from dialer.channels.simulated import Outcome, SimProfile, SimulatedVoice
from dialer.clock import FakeClock
from dialer.domain.states import ATTEMPT_FINAL, AttemptStatus, attempt_advances

S = AttemptStatus
HUMAN_ONLY = SimProfile(answer_rate=1.0, machine_rate=0.0, busy_rate=0.0, fail_rate=0.0)


def request(i: int, *, ring_timeout: int = 30, key: str | None = None) -> DialRequest:
    return DialRequest(
        attempt_id=f"a{i}",
        idempotency_key=key or f"k{i}",
        campaign_id="c1",
        to=f"+1555000{i:04d}",
        caller_id="+15550009999",
        ring_timeout_seconds=ring_timeout,
    )


class Sink:
    """Collects events; optionally bridges answered humans like the engine does."""

    def __init__(self, voice: SimulatedVoice | None = None) -> None:
        self.events: list[CallEvent] = []
        self.voice = voice

    async def __call__(self, event: CallEvent) -> None:
        self.events.append(event)
        if self.voice and event.status is S.IN_PROGRESS and event.answered_by == "human":
            await self.voice.bridge(event.carrier_id, "agent-1")

    def statuses(self, carrier_id: str) -> list[AttemptStatus]:
        return [e.status for e in self.events if e.carrier_id == carrier_id]


def make(
    profile: SimProfile | None = None,
    *,
    bridge: bool = False,
    time_scale: float = 1.0,
    calls_per_second: float | None = None,
) -> tuple[FakeClock, SimulatedVoice, Sink]:
    clock = FakeClock()
    voice = SimulatedVoice(
        clock,
        profile or SimProfile(),
        seed=7,
        time_scale=time_scale,
        calls_per_second=calls_per_second,
    )
    sink = Sink(voice if bridge else None)
    voice.set_sink(sink)
    return clock, voice, sink


async def test_outcome_frequencies_follow_the_profile() -> None:
    clock, voice, _ = make(bridge=True)
    n = 2000
    for i in range(n):
        await voice.dial(request(i, ring_timeout=60))
    await clock.run_until_idle()

    outcomes = Counter(call.outcome for call in voice.record.values())
    p = voice.profile
    expected = {
        Outcome.HUMAN: p.answer_rate,
        Outcome.MACHINE: p.machine_rate,
        Outcome.BUSY: p.busy_rate,
        Outcome.FAILED: p.fail_rate,
    }
    expected[Outcome.NO_ANSWER] = 1 - sum(expected.values())
    for outcome, rate in expected.items():
        assert outcomes[outcome] / n == pytest.approx(rate, abs=0.035), outcome
    assert voice.counts["dialed"] == n
    assert voice.counts["answered_human"] == outcomes[Outcome.HUMAN]
    assert voice.counts["bridged"] == outcomes[Outcome.HUMAN]


async def test_events_move_forward_and_end_in_exactly_one_final_status() -> None:
    clock, voice, sink = make(bridge=True)
    ids = [await voice.dial(request(i)) for i in range(300)]
    await clock.run_until_idle()

    for carrier_id in ids:
        events = [e for e in sink.events if e.carrier_id == carrier_id]
        assert events == voice.record[carrier_id].timeline
        for before, after in pairwise(events):
            assert attempt_advances(before.status, after.status), (before, after)
            assert before.at <= after.at
        assert [e.status in ATTEMPT_FINAL for e in events].count(True) == 1
        assert events[-1].status in ATTEMPT_FINAL
        assert events[0].status is S.QUEUED


async def test_events_are_delivered_after_dial_returns() -> None:
    clock, voice, sink = make()
    carrier_id = await voice.dial(request(1))
    assert carrier_id.startswith("SIM") and len(carrier_id) == 35
    assert sink.events == []
    await clock.advance(0)
    assert sink.statuses(carrier_id) == [S.QUEUED]
    await clock.advance(voice.profile.queue_seconds)
    assert sink.statuses(carrier_id) == [S.QUEUED, S.INITIATED, S.RINGING]


async def test_cancel_works_only_while_queued() -> None:
    clock, voice, sink = make(HUMAN_ONLY)
    queued = await voice.dial(request(1))
    assert await voice.cancel(queued) is True
    assert await voice.cancel(queued) is False
    await clock.run_until_idle()
    assert sink.statuses(queued) == [S.QUEUED, S.CANCELED]

    ringing = await voice.dial(request(2))
    await clock.advance(voice.profile.queue_seconds)
    assert sink.statuses(ringing)[-1] is S.RINGING
    assert await voice.cancel(ringing) is False
    assert await voice.cancel("SIM-unknown") is False
    await clock.run_until_idle()
    assert sink.statuses(ringing)[-1] is S.IN_PROGRESS  # the ringing call went on
    assert voice.counts["canceled"] == 1


async def test_calls_per_second_spaces_ringing_starts() -> None:
    clock, voice, sink = make(calls_per_second=2.0)
    start = clock.now()
    ids = [await voice.dial(request(i)) for i in range(10)]
    await clock.advance(10)
    starts = [
        next(e.at for e in sink.events if e.carrier_id == cid and e.status is S.INITIATED)
        for cid in ids
    ]
    assert starts[0] == start + voice.profile.queue_seconds
    for before, after in pairwise(starts):
        assert after - before >= 0.5 - 1e-9


async def test_dial_is_idempotent_on_the_key() -> None:
    clock, voice, sink = make()
    first = await voice.dial(request(1, key="same"))
    again = await voice.dial(request(1, key="same"))
    assert first == again
    assert len(voice.record) == 1
    assert voice.counts["dialed"] == 1 and voice.counts["deduplicated"] == 1
    await clock.advance(1)
    assert sink.statuses(first).count(S.QUEUED) == 1


async def test_infinite_time_scale_finishes_in_zero_virtual_time() -> None:
    clock, voice, sink = make(bridge=True, time_scale=math.inf)
    start = clock.now()
    ids = [await voice.dial(request(i)) for i in range(200)]
    assert sink.events == []  # still asynchronous
    await clock.run_until_idle()
    assert clock.now() == start
    assert all(voice.record[cid].status in ATTEMPT_FINAL for cid in ids)
    assert clock.pending() == 0


async def test_time_scale_divides_waits_not_reported_durations() -> None:
    clock, voice, sink = make(HUMAN_ONLY, bridge=True, time_scale=10.0)
    start = clock.now()
    carrier_id = await voice.dial(request(1))
    await clock.run_until_idle()
    call = voice.record[carrier_id]
    initiated, answered, done = (
        next(e for e in sink.events if e.status is s)
        for s in (S.INITIATED, S.IN_PROGRESS, S.COMPLETED)
    )
    assert initiated.at - start == pytest.approx(voice.profile.queue_seconds / 10)
    assert answered.at - initiated.at == pytest.approx(call.ring_seconds / 10)
    # The wait is scaled, the reported duration is the call's own (a 90 s call is 90 s).
    assert done.at - answered.at == pytest.approx(call.talk_seconds / 10)
    assert done.duration_seconds == pytest.approx(call.talk_seconds)


async def test_time_scale_hangup_and_machine_report_unscaled_seconds() -> None:
    clock, voice, sink = make(HUMAN_ONLY, time_scale=10.0)
    carrier_id = await voice.dial(request(1))
    await clock.run_until_idle()
    await voice.bridge(carrier_id, "agent-1")
    await clock.advance(0.5)  # 5 s of the call's own time
    await voice.hangup(carrier_id, message="Goodbye")
    hung_up_at = clock.now()
    await clock.run_until_idle()
    final = sink.events[-1]
    assert final.at - hung_up_at == pytest.approx(voice.profile.message_seconds / 10)
    assert final.duration_seconds == pytest.approx(5.0 + voice.profile.message_seconds)

    machine = SimProfile(answer_rate=0.0, machine_rate=1.0, busy_rate=0.0, fail_rate=0.0)
    clock, voice, sink = make(machine, time_scale=10.0)
    await voice.dial(request(2))
    await clock.run_until_idle()
    answered, final = sink.events[-2:]
    assert final.at - answered.at == pytest.approx(machine.machine_message_seconds / 10)
    assert final.duration_seconds == pytest.approx(machine.machine_message_seconds)


async def test_bridge_then_complete_after_talk_time() -> None:
    clock, voice, sink = make(HUMAN_ONLY)
    carrier_id = await voice.dial(request(1))
    with pytest.raises(ChannelError) as not_answered:
        await voice.bridge(carrier_id, "agent-1")
    assert not_answered.value.retryable is False

    await clock.run_until_idle()  # the human answers and waits for an agent
    assert sink.statuses(carrier_id)[-1] is S.IN_PROGRESS
    assert sink.events[-1].answered_by == "human"
    assert clock.pending() == 0

    await voice.bridge(carrier_id, "agent-1")
    with pytest.raises(ChannelError):
        await voice.bridge(carrier_id, "agent-2")
    bridged_at = clock.now()
    await clock.run_until_idle()
    call = voice.record[carrier_id]
    final = sink.events[-1]
    assert final.status is S.COMPLETED
    assert final.duration_seconds == pytest.approx(call.talk_seconds)
    assert final.at == pytest.approx(bridged_at + call.talk_seconds)
    assert call.bridged_to == "agent-1"
    assert call.talk_seconds >= voice.profile.talk_min


async def test_hangup_with_a_message_completes_after_it_plays() -> None:
    clock, voice, sink = make(HUMAN_ONLY)
    carrier_id = await voice.dial(request(1))
    with pytest.raises(ChannelError):
        await voice.hangup(carrier_id)
    await clock.run_until_idle()
    answered_at = clock.now()

    await voice.hangup(carrier_id, message="Sorry we missed you")
    await voice.hangup(carrier_id)  # a second hangup is a no-op
    with pytest.raises(ChannelError):
        await voice.bridge(carrier_id, "agent-1")
    await clock.run_until_idle()
    final = sink.events[-1]
    assert (final.status, final.duration_seconds) == (S.COMPLETED, 5.0)
    assert final.at == answered_at + 5.0
    assert sink.statuses(carrier_id).count(S.COMPLETED) == 1


async def test_hangup_without_message_completes_at_once() -> None:
    clock, voice, sink = make(HUMAN_ONLY)
    carrier_id = await voice.dial(request(1))
    await clock.run_until_idle()
    answered_at = clock.now()
    await voice.hangup(carrier_id)
    await clock.run_until_idle()
    assert sink.events[-1].status is S.COMPLETED
    assert sink.events[-1].duration_seconds == 0.0
    assert clock.now() == answered_at


async def test_hangup_of_a_bridged_call_counts_the_talk_so_far() -> None:
    clock, voice, sink = make(HUMAN_ONLY)
    carrier_id = await voice.dial(request(1))
    await clock.run_until_idle()
    await voice.bridge(carrier_id, "agent-1")
    await clock.advance(2)
    await voice.hangup(carrier_id)
    await clock.run_until_idle()
    assert sink.events[-1].duration_seconds == pytest.approx(2.0)


async def test_machine_greeting_then_completed() -> None:
    profile = SimProfile(answer_rate=0.0, machine_rate=1.0, busy_rate=0.0, fail_rate=0.0)
    clock, voice, sink = make(profile)
    carrier_id = await voice.dial(request(1))
    await clock.run_until_idle()
    answered, final = sink.events[-2:]
    assert (answered.status, answered.answered_by) == (S.IN_PROGRESS, "machine")
    assert final.status is S.COMPLETED
    assert final.duration_seconds == 20.0
    assert final.at - answered.at == 20.0
    assert voice.record[carrier_id].bridged_to is None


@pytest.mark.parametrize(
    ("profile", "status"),
    [
        (SimProfile(answer_rate=0, machine_rate=0, busy_rate=1, fail_rate=0), S.BUSY),
        (SimProfile(answer_rate=0, machine_rate=0, busy_rate=0, fail_rate=1), S.FAILED),
    ],
)
async def test_busy_and_failed(profile: SimProfile, status: AttemptStatus) -> None:
    clock, voice, sink = make(profile)
    carrier_id = await voice.dial(request(1))
    await clock.run_until_idle()
    assert sink.statuses(carrier_id) == [S.QUEUED, S.INITIATED, S.RINGING, status]


async def test_no_answer_rings_at_least_15_seconds() -> None:
    profile = SimProfile(answer_rate=0, machine_rate=0, busy_rate=0, fail_rate=0)
    clock, voice, sink = make(profile)
    carrier_id = await voice.dial(request(1, ring_timeout=5))
    await clock.run_until_idle()
    ringing, final = sink.events[-2:]
    assert (ringing.status, final.status) == (S.RINGING, S.NO_ANSWER)
    assert final.at - ringing.at == 15.0
    assert voice.record[carrier_id].outcome is Outcome.NO_ANSWER


async def test_an_answer_after_the_ring_timeout_is_a_no_answer() -> None:
    profile = SimProfile(answer_rate=1.0, machine_rate=0, busy_rate=0, fail_rate=0, ring_min=40)
    clock, voice, sink = make(profile)
    await voice.dial(request(1, ring_timeout=20))
    await clock.run_until_idle()
    ringing, final = sink.events[-2:]
    assert final.status is S.NO_ANSWER
    assert final.at - ringing.at == 20.0


async def test_no_event_after_close() -> None:
    clock, voice, sink = make(bridge=True)
    for i in range(20):
        await voice.dial(request(i))
    await clock.advance(1)
    seen = len(sink.events)
    await voice.close()
    assert clock.pending() == 0
    await clock.run_until_idle()
    assert len(sink.events) == seen
    with pytest.raises(RuntimeError):
        await voice.dial(request(99))


async def test_close_during_a_delivery_ends_it_quietly() -> None:
    """`close` while the sink is taking a report (shutdown under load): the delivery in
    progress stops after it, without touching the emptied queue."""
    clock = FakeClock()
    voice = SimulatedVoice(clock, HUMAN_ONLY, seed=7)
    seen: list[AttemptStatus] = []

    async def sink(event: CallEvent) -> None:
        seen.append(event.status)
        await voice.close()

    voice.set_sink(sink)
    await voice.dial(request(1))
    await clock.run_until_idle()  # raised IndexError when the delivery popped after close
    assert seen == [S.QUEUED]
    assert clock.pending() == 0


async def test_dial_needs_a_sink() -> None:
    voice = SimulatedVoice(FakeClock(), seed=1)
    with pytest.raises(RuntimeError, match="set_sink"):
        await voice.dial(request(1))


def query(i: int, placed_after: float) -> CallQuery:
    return CallQuery(f"a{i}", f"k{i}", None, f"+1555000{i:04d}", "+15550009999", placed_after)


async def test_lookup_reports_the_latest_status() -> None:
    clock, voice, _ = make(HUMAN_ONLY)
    # Placed since this carrier came up and not in its record: never placed.
    assert await voice.lookup(query(1, clock.now())) == NOT_PLACED
    carrier_id = await voice.dial(request(1))
    queued = await voice.lookup(query(1, clock.now()))
    assert queued.kind is FateKind.KNOWN and queued.event is not None
    assert (queued.event.status, queued.event.carrier_id) == (S.QUEUED, carrier_id)
    await clock.run_until_idle()
    answered = await voice.lookup(query(1, clock.now()))
    assert answered.event is not None and answered.event.status is S.IN_PROGRESS


async def test_lookup_of_a_call_older_than_the_carrier_is_unknown() -> None:
    """The simulated carrier's record lives in its process: after a restart it cannot say
    what became of a call placed before, and says so rather than 'never placed'."""
    clock = FakeClock(start=1000.0)
    voice = SimulatedVoice(clock, HUMAN_ONLY, seed=7)
    fate = await voice.lookup(query(1, placed_after=999.0))
    assert fate.kind is FateKind.UNKNOWN and "died" in fate.why
    assert (await voice.lookup(query(1, placed_after=1000.0))).kind is FateKind.NOT_PLACED


async def test_a_report_the_sink_refuses_is_sent_again_in_order() -> None:
    """No report is ever dropped: a failing sink (the database down) gets the same report
    again after a backoff, and the call's later reports wait behind it."""
    clock = FakeClock()
    voice = SimulatedVoice(clock, HUMAN_ONLY, seed=7)
    seen: list[AttemptStatus] = []
    refuse = 3

    async def sink(event: CallEvent) -> None:
        nonlocal refuse
        if refuse > 0:
            refuse -= 1
            raise ConnectionError("database down")
        seen.append(event.status)

    voice.set_sink(sink)
    await voice.dial(request(1))
    await clock.advance(0)
    assert seen == [] and voice.redeliveries == 1
    await clock.advance(0.5)  # first retry after 0.5 s, then 1 s
    assert seen == [] and voice.redeliveries == 2
    await clock.advance(1.0)
    assert seen == [] and voice.redeliveries == 3
    await clock.run_until_idle()
    assert seen == [S.QUEUED, S.INITIATED, S.RINGING, S.IN_PROGRESS]
    assert voice.redeliveries == 3


async def test_same_seed_same_run() -> None:
    async def run() -> list[tuple[str, Outcome, AttemptStatus]]:
        clock, voice, _ = make(bridge=True)
        for i in range(50):
            await voice.dial(request(i))
        await clock.run_until_idle()
        return [(c.carrier_id, c.outcome, c.status) for c in voice.record.values()]

    assert await run() == await run()


def test_profile_rates_are_validated() -> None:
    with pytest.raises(ValueError):
        SimProfile(answer_rate=0.9, machine_rate=0.2)
    with pytest.raises(ValueError):
        SimulatedVoice(FakeClock(), time_scale=0)


def test_satisfies_the_voice_channel_interface() -> None:
    channel: VoiceChannel = SimulatedVoice(FakeClock())
    assert channel.name == "simulated"


async def test_the_log_keeps_the_latest_finished_calls_and_never_says_not_placed_of_old_ones() -> (
    None
):
    """Memory stays flat over millions of calls: the log forgets the oldest finished calls.
    A call it forgot is 'unknown' to a lookup (the reconciler then never re-dials it); only
    an attempt written after every forgotten call can be 'never placed'."""
    busy = SimProfile(answer_rate=0.0, machine_rate=0.0, busy_rate=1.0, fail_rate=0.0)
    clock = FakeClock(start=1000.0)
    voice = SimulatedVoice(clock, busy, seed=7, keep_finished=2)
    voice.set_sink(Sink())
    for i in range(1, 4):
        await voice.dial(request(i))
        await clock.advance(10)
    assert sorted(c.request.attempt_id for c in voice.record.values()) == ["a2", "a3"]
    assert voice.counts["dialed"] == 3 and voice.counts["busy"] == 3
    forgotten = await voice.lookup(query(1, placed_after=1000.0))
    assert forgotten.kind is FateKind.UNKNOWN and "gone" in forgotten.why
    kept = await voice.lookup(query(3, placed_after=1020.0))
    assert kept.kind is FateKind.KNOWN and kept.event is not None
    assert kept.event.status is S.BUSY
    # An attempt written no later than a forgotten call's dial cannot be told apart from it;
    # one written after every forgotten call can.
    assert (await voice.lookup(query(9, placed_after=1000.0))).kind is FateKind.UNKNOWN
    assert await voice.lookup(query(9, placed_after=1000.5)) == NOT_PLACED
    # The idempotency key of a forgotten call is forgotten too: the carrier dials it anew.
    await voice.dial(request(1))
    assert voice.counts["dialed"] == 4
