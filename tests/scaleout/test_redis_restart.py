"""Redis killed and started again mid-run (every key lost): each engine process, out of touch
for half a lease, dispatches nothing; a pause made as soon as Redis answers again holds; the
processes re-join and carry on; nothing goes out twice (issue 10; docs/architecture.md §4,
§12.2)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import run_async
from tests.faults import checks
from tests.faults.rig import wait_for
from tests.scaleout.conftest import MakeSpec
from tests.scaleout.rig import Cluster, mail_duplicates, query

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# A hand-off past its check when contact was lost still completes (a file write, one HTTP
# request to the fake); what starts later is refused.
HANDOFF_SECONDS = 0.25
WATCH_SECONDS = 0.6


def dispatched_since(cl: Cluster, t: float) -> set[str]:
    rows = query(
        cl.s.db_url,
        "SELECT DISTINCT split_part(worker_id, '-', 1) AS p FROM attempts"
        " WHERE created_at > $1 AND worker_id IS NOT NULL",
        t,
    )
    return {str(r["p"]) for r in rows}


@pytest.mark.timeout(180)
def test_redis_restart_fences_every_process_then_they_carry_on(spec: MakeSpec) -> None:
    with Cluster(spec(workers=2, seed=12)) as cl:
        lease = cl.s.lease_seconds
        voice = cl.voice_campaign(400, capacity=20)
        email = cl.email_campaign(2000, steps=2)
        mails, calls = cl.mailbox.count(), cl.calls_count()
        wait_for(
            lambda: cl.mailbox.count() > mails and cl.calls_count() > calls,
            30,
            "mails and calls flowing",
            interval=0.02,
        )
        down_ns = time.time_ns()
        cl.redis.stop()
        time.sleep(1.5 * lease)  # past every heartbeat's expiry
        up_ns = time.time_ns()
        cl.redis.start()
        # As soon as Redis answers: the registry is empty, the processes not yet back.
        ack_e, ack_v = cl.pause(email), cl.pause(voice)
        assert (ack_e.status, ack_v.status) == (200, 200), (ack_e.body, ack_v.body)

        # While Redis was down: nothing went out after half a lease (+ a hand-off under way).
        fenced_ns = down_ns + int((lease / 2 + HANDOFF_SECONDS) * 1e9)
        while_down = [
            f"mail of attempt {m.attempt}, {(m.mtime_ns - down_ns) / 1e6:.0f} ms after Redis died"
            for m in cl.mailbox.mails()
            if fenced_ns < m.mtime_ns <= up_ns
        ] + [
            f"call of attempt {c['attempt']}, {c['created_at'] * 1e3 - down_ns / 1e6:.0f} ms "
            "after Redis died"
            for c in cl.twilio.calls()
            if fenced_ns < c["created_at"] * 1e9 <= up_ns
        ]
        assert not while_down, "dispatched while out of touch:\n" + "\n".join(while_down)

        cl.wait_registered(30)  # every process re-joined
        time.sleep(WATCH_SECONDS)
        late = cl.after_ack(ack_v, None, voice) + cl.after_ack(ack_e, email, None)
        assert not late, "went out after the pause answered:\n" + "\n".join(map(str, late))

        # They carry on: every process dispatches again once resumed.
        resumed = time.time()
        cl.resume(voice)
        cl.resume(email)
        wait_for(
            lambda: {"w1", "w2"} <= dispatched_since(cl, resumed),
            30,
            "every worker dispatching again",
            interval=0.2,
        )
        cl.pause(voice)
        cl.pause(email)
        cl.wait_quiet([voice, email])
        counts = checks.Counts()
        record = cl.twilio.calls()
        for cid in (voice, email):
            rows = run_async(checks.read_rows(cl.s.db_url, cid, []))
            state = rows.pop("state")
            o = checks.Observed(
                campaign_id=cid,
                state=state,
                terminated=False,
                stats=cl.stats(cid),
                carrier=record if cid == voice else None,
                **rows,
            )
            for check in (
                checks.open_attempts,
                checks.stats_mismatch,
                checks.duplicate_tries,
                checks.redialled,
            ):
                check(o, counts)
        assert counts.total() == 0, counts.report()
        assert not mail_duplicates(cl.mailbox.mails()), cl.describe_mail_duplicates()
        assert not cl.describe_call_duplicates()
