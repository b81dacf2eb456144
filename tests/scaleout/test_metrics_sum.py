"""The `/metrics` of every process (serve's HTTP port, each worker's DIALER_METRICS_PORT) add
up to the campaign's `/stats`, computed from the database (issue 10; docs/architecture.md
§11, docs/api.md §4.3, §12)."""

from __future__ import annotations

import pytest

from tests.faults.rig import wait_for
from tests.scaleout.conftest import MakeSpec
from tests.scaleout.rig import Cluster, metric_sums

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.timeout(150)
def test_metrics_of_all_processes_add_up_to_stats(spec: MakeSpec) -> None:
    with Cluster(spec(workers=2, seed=13)) as cl:
        voice = cl.voice_campaign(200, capacity=20)
        email = cl.email_campaign(3000, steps=2)  # still sending when it is paused
        wait_for(
            lambda: (
                cl.stats(voice)["calls"]["dialed"] >= 60
                and cl.stats(email)["emails"]["sent"] >= 200
            ),
            60,
            "calls and mails under way",
            interval=0.25,
        )
        for cid in (voice, email):
            assert cl.pause(cid).status == 200
        cl.wait_quiet([voice, email])  # every callback applied: the figures are final
        texts = cl.metrics_texts()
        assert set(texts) == {"serve", "w1", "w2"}
        for cid in (voice, email):
            stats = cl.stats(cid)
            calls, emails = stats["calls"], stats["emails"]
            want = {
                "dialer_calls_dialed_total": calls["dialed"],
                "dialer_calls_received_total": calls["received"],
                "dialer_calls_answered_total": calls["answered"],
                "dialer_calls_abandoned_total": calls["abandoned"],
                "dialer_emails_sent_total{result=sent}": emails["sent"],
                "dialer_emails_sent_total{result=failed}": emails["failed"],
            }
            sums = metric_sums(texts, cid)
            got = {name: sums.get(name, 0) for name in want}
            dups = cl.describe_mail_duplicates() + cl.describe_call_duplicates()
            assert got == want, f"{cid}: /metrics {got} != /stats {want}\n{dups}"
        assert not cl.describe_mail_duplicates() + cl.describe_call_duplicates()
        # Each worker reports its own share: the sum is not one process's figures.
        voice_sums = {p: metric_sums({p: t}, voice) for p, t in texts.items()}
        email_sums = {p: metric_sums({p: t}, email) for p, t in texts.items()}
        for p in ("w1", "w2"):
            assert voice_sums[p]["dialer_calls_dialed_total"] > 0, p
            assert email_sums[p]["dialer_emails_sent_total"] > 0, p
