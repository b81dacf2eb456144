"""A `dialer worker` killed with -9 mid-run: the next pause answers within a lease (its
heartbeat expires; docs/architecture.md §12.2), nothing goes out after it, and the dead
worker's leads are taken over (the reconciler, §15.2) — the campaigns complete with no try
twice, no call placed twice, figures that match the carrier's record (issue 10)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import run_async
from tests.faults import checks
from tests.faults.rig import wait_for
from tests.scaleout.conftest import MakeSpec
from tests.scaleout.rig import Cluster, mail_duplicates, query

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SLACK_SECONDS = 2.0  # on top of the lease: the pause's own work on a loaded 2-core machine
WATCH_SECONDS = 0.6
OPEN = ("created", "queued", "ringing", "in_progress")


def open_attempts_of(cl: Cluster, worker: str) -> list[dict[str, object]]:
    return query(
        cl.s.db_url,
        "SELECT id, lead_id, channel, status FROM attempts"
        " WHERE worker_id LIKE $1 AND status = ANY($2::text[])",
        f"{worker}-%",
        list(OPEN),
    )


@pytest.mark.timeout(180)
def test_worker_killed_mid_run_blocks_no_pause_beyond_a_lease(spec: MakeSpec) -> None:
    with Cluster(spec(workers=3, seed=11)) as cl:
        lease = cl.s.lease_seconds
        voice = cl.voice_campaign(80, max_attempts=3, capacity=20)
        email = cl.email_campaign(3000, steps=2)  # still sending when the calls are held
        victim = cl.workers[1]
        # Kill it while it holds calls at the carrier (they ring on without it).
        wait_for(
            lambda: any(a["channel"] == "voice" for a in open_attempts_of(cl, victim.name)),
            30,
            f"{victim.name} holding calls",
            interval=0.02,
        )
        assert victim.process is not None
        victim_pid = victim.process.pid
        victim.kill()
        killed_at = time.time()
        orphans = open_attempts_of(cl, victim.name)
        ack_v, ack_e = cl.pause(voice), cl.pause(email)
        assert (ack_v.status, ack_e.status) == (200, 200), (ack_v.body, ack_e.body)
        # Its heartbeat (renewed every lease/6 until the kill) expires within a lease.
        assert ack_v.seconds <= lease + SLACK_SECONDS, ack_v.seconds
        assert ack_e.seconds <= lease + SLACK_SECONDS, ack_e.seconds
        assert victim.name not in cl.registered()
        # It stopped counting when its heartbeat expired: the pause did not time out on it.
        assert cl.serve is not None
        assert "bus.ack_timeout" not in cl.serve.log.read_text()
        time.sleep(WATCH_SECONDS)
        late = cl.after_ack(ack_v, None, voice) + cl.after_ack(ack_e, email, None)
        assert not late, "went out after the pause answered:\n" + "\n".join(map(str, late))

        cl.resume(voice)
        cl.resume(email)
        wait_for(
            lambda: all(cl.stats(c)["state"] == "completed" for c in (voice, email)),
            120,
            "both campaigns completed",
            interval=0.5,
        )
        cl.wait_quiet([voice, email])
        # Taken over: what the dead worker held open is resolved, by another process.
        ids = [int(str(a["id"])) for a in orphans]
        now = cl.attempts(ids)
        assert all(row["status"] not in OPEN for row in now.values()), now
        counts = checks.Counts()
        calls = cl.twilio.calls()
        for cid in (voice, email):
            rows = run_async(checks.read_rows(cl.s.db_url, cid, []))
            o = checks.Observed(
                cid,
                rows.pop("state"),
                terminated=False,
                stats=cl.stats(cid),
                carrier=calls if cid == voice else None,
                **rows,
            )
            for check in (
                checks.open_attempts,
                checks.not_stopped,
                checks.stats_mismatch,
                checks.duplicate_tries,
                checks.redialled,
            ):
                check(o, counts)
        assert counts.total() == 0, counts.report()
        assert not cl.describe_call_duplicates()
        # Email is at least once across a crash (§15.2): an attempt the dead worker wrote
        # before its row said `sent` is written again by the process that takes it over.
        # That is the only second mail allowed.
        report = cl.describe_mail_duplicates()
        for attempt, mails in mail_duplicates(cl.mailbox.mails()).items():
            first, *again = sorted(mails, key=lambda m: m.mtime_ns)
            assert len(again) == 1, report
            assert first.pid == victim_pid, report
            assert first.mtime_ns <= killed_at * 1e9 < again[0].mtime_ns, report
            assert attempt in ids, report
