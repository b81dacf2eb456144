"""Pause/resume cycles under email and voice load with serve + 3 workers on PostgreSQL and
Redis: once a pause answers, not one mail is written nor one call created for that campaign,
by any process (issue 10; docs/architecture.md §4, §12.2)."""

from __future__ import annotations

import concurrent.futures
import random
import time

import pytest

from tests.faults.rig import wait_for
from tests.scaleout.conftest import MakeSpec
from tests.scaleout.rig import Ack, Cluster, mail_duplicates, query

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CYCLES = 10
WATCH_SECONDS = 0.6  # after each answer: several ticks of every process, before the resume


def pause_both(cl: Cluster, voice: str, email: str) -> tuple[Ack, Ack]:
    """The two campaigns paused at once, each from its own thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        v, e = pool.submit(cl.pause, voice), pool.submit(cl.pause, email)
        return v.result(), e.result()


@pytest.mark.timeout(180)
def test_pause_cycles_under_load_nothing_goes_out_after_the_answer(spec: MakeSpec) -> None:
    rng = random.Random(10)
    with Cluster(spec(workers=3, seed=10, email_batch=25)) as cl:
        voice = cl.voice_campaign(1500)
        email = cl.email_campaign(5000, steps=4)  # outlasts ten cycles at full speed
        late = []
        answers = []
        ringing = 0  # calls the pauses reported in flight: the pauses came mid-load
        for i in range(CYCLES):
            mails, calls = cl.mailbox.count(), cl.calls_count()
            # Mid-load: both campaigns are dispatching again since the resume.

            def flowing(m: int = mails, c: int = calls) -> bool:
                return cl.mailbox.count() > m and cl.calls_count() > c

            wait_for(flowing, 30, f"cycle {i}: mails and calls flowing", interval=0.02)
            time.sleep(rng.uniform(0, 0.3))
            ack_v, ack_e = pause_both(cl, voice, email)
            assert (ack_v.status, ack_e.status) == (200, 200), (ack_v.body, ack_e.body)
            answers += [ack_v.seconds, ack_e.seconds]
            ringing += len(ack_v.body["in_flight"])
            time.sleep(WATCH_SECONDS)
            late += cl.after_ack(ack_v, None, voice) + cl.after_ack(ack_e, email, None)
            cl.resume(voice)
            cl.resume(email)
        assert not late, "went out after the pause answered:\n" + "\n".join(map(str, late))
        # The load was spread: every worker handed off work, and each channel's work went
        # through several processes (who wins a claim is a race; voice is also paced by the
        # shared calls-per-second, so one worker may win no call in a short run).
        rows = query(
            cl.s.db_url,
            "SELECT split_part(worker_id, '-', 1) AS p, channel, count(*) AS n FROM attempts"
            " WHERE worker_id IS NOT NULL GROUP BY 1, 2",
        )
        seen = {(r["p"], r["channel"]) for r in rows}
        for p in ["w1", "w2", "w3"]:
            assert {c for w, c in seen if w == p}, (p, rows)
        for channel in ("voice", "email"):
            assert len({w for w, c in seen if c == channel}) >= 2, (channel, rows)
        assert ringing > 0
        assert not mail_duplicates(cl.mailbox.mails()), cl.describe_mail_duplicates()
        assert not cl.describe_call_duplicates()
        # Every live worker acknowledged each pause: none waited out the lease.
        assert cl.serve is not None
        assert "bus.ack_timeout" not in cl.serve.log.read_text(), sorted(answers)[-5:]
