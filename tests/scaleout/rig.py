"""Scale-out runs with real processes: `dialer serve` (API + engine) and N `dialer worker`
processes on one PostgreSQL database and a Redis of the run's own (a throwaway
`redis-server` on a free port, which a test may stop and start again on the same port), the
fake Twilio in a process of its own as the shared carrier, and one Maildir written by every
process as the shared mail server (issue 10; docs/architecture.md §4, §12, §15).

    with Cluster(ClusterSpec(db_url, workdir, workers=3)) as cl:
        voice, email = cl.voice_campaign(400), cl.email_campaign(600)
        ack = cl.pause(voice)             # the HTTP answer's time, and what had gone out by then
        late = cl.after_ack(ack)          # mails written / calls created after it: must be []

What went out is read from the outside, never from the dialer: a mail is a file in
`maildir/new` (its `X-Dialer-Attempt` header names the attempt, its mtime in ns says when it
was written, and a name missing from the listing taken when the pause answered means it was
written after); a call is an entry of the fake's record (`created_at`, wall clock, and its
place in the creation order). Every process of the run stamps with this machine's clock.
Waiting is polling for a condition up to a generous deadline (tests/faults/rig.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import asyncpg_dsn, free_port, run_async
from tests.faults.rig import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    ROOT,
    TOKEN,
    Api,
    DialerProcess,
    FakeTwilioProcess,
    LoggedProcess,
    RigError,
    daytime_zone,
    wait_for,
)

WORKER = [sys.executable, "-m", "dialer.cli", "worker"]
REGISTRY = "dialer:workers"  # the bus's registry (dialer/bus/redis.py, default prefix)
LEAD_CHUNK = 500
AREA_CODES = ("212", "646", "718", "917", "347", "332")  # valid New York area codes
FINAL_CALL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


# -- Redis ----------------------------------------------------------------------------------


class RedisServer:
    """A throwaway `redis-server` (no persistence) on a fixed free port: `stop()` and
    `start()` again is a Redis restart that lost every key, as after a crash."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RigError("redis-server is not installed (make setup)")
        self.binary = binary
        self.port = free_port()
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis.from_url(
            self.url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )

    def answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.dir)]
        with (self.dir / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self.answers, 10, f"redis-server on port {self.port}", interval=0.02)

    def stop(self) -> None:
        """SIGKILL: Redis gone at once, every connection reset."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.client.connection_pool.disconnect()

    def live_workers(self) -> list[str]:
        """Worker ids whose heartbeat has not expired (the registry the pause waits for)."""
        try:
            return [str(m) for m in self.client.zrangebyscore(REGISTRY, time.time(), "+inf")]
        except (redis.ConnectionError, redis.TimeoutError):
            return []

    def close(self) -> None:
        self.stop()
        self.client.close()


# -- processes ------------------------------------------------------------------------------


class WorkerProcess(LoggedProcess):
    """`dialer worker` (engine only), worker id `<name>-<random>`, `/metrics` and `/healthz`
    on `DIALER_METRICS_PORT` (a free port of its own); output in `workdir/<name>.log`."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.metrics_port = free_port()
        self.env = {**env, "DIALER_WORKER_ID": name, "DIALER_METRICS_PORT": str(self.metrics_port)}
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                WORKER, env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )

    def check_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RigError(f"dialer worker {self.name} exited with {code}:\n{self.tail()}")


# -- what went out --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    name: str
    mtime_ns: int
    attempt: int | None  # X-Dialer-Attempt

    @property
    def pid(self) -> int | None:
        """The writing process (Maildir names are `<time>.M<usec>P<pid>Q<n>.<host>`)."""
        _, _, rest = self.name.partition("P")
        digits = rest.partition("Q")[0]
        return int(digits) if digits.isdigit() else None


class Mailbox:
    """The shared Maildir as the outside world sees it; headers are parsed once per file."""

    def __init__(self, root: Path) -> None:
        self.new = root / "new"
        self._attempts: dict[str, int | None] = {}
        self._parser = BytesHeaderParser()

    def names(self) -> set[str]:
        try:
            return set(os.listdir(self.new))
        except FileNotFoundError:
            return set()

    def count(self) -> int:
        return len(self.names())

    def mails(self, names: set[str] | None = None) -> list[Mail]:
        out = []
        for name in self.names() if names is None else names:
            path = self.new / name
            try:
                mtime_ns = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if name not in self._attempts:
                with path.open("rb") as f:
                    header = self._parser.parse(f)
                value = header.get("X-Dialer-Attempt")
                self._attempts[name] = int(value) if value else None
            out.append(Mail(name, mtime_ns, self._attempts[name]))
        return out


@dataclass
class Ack:
    """A pause as the client saw it: when its answer arrived, how long it took, and what had
    gone out by then (the Maildir's names, the number of calls in the fake's record)."""

    campaign_id: str
    sent_ns: int
    ack_ns: int
    mail_names: set[str]
    calls_at_ack: int
    status: int
    body: Any

    @property
    def seconds(self) -> float:
        return (self.ack_ns - self.sent_ns) / 1e9


@dataclass
class Late:
    """Something that went out after a pause answered (a breach of docs/architecture.md §4)."""

    kind: str  # "mail" or "call"
    campaign_id: str
    attempt: int | None
    after_ms: float  # how long after the pause answered (mtime / created_at)
    why: str  # "mtime"/"created_at" later than the answer, or "not listed at the answer"
    detail: dict[str, Any] = field(default_factory=dict)  # the attempt row, filled in later

    def __str__(self) -> str:
        return (
            f"{self.kind} of campaign {self.campaign_id}, attempt {self.attempt}: "
            f"{self.after_ms:+.1f} ms after the pause answered ({self.why}); {self.detail}"
        )


# -- the cluster ----------------------------------------------------------------------------


@dataclass
class ClusterSpec:
    db_url: str
    workdir: Path
    workers: int = 3
    seed: int = 0
    lease_seconds: float = 2.0
    tick_seconds: float = 0.1
    email_batch: int = 10
    twilio_time_scale: float = 20.0  # the fake's ring 5 s -> 0.25 s, talk 30 s -> 1.5 s
    account_cps: float = 40.0  # the shared calls-per-second bucket (below the fake's limit)
    fake_cps: float = 100.0  # the fake Twilio account's own limit (429 above it)
    extra_env: dict[str, str] = field(default_factory=dict)


class Cluster:
    """Redis, the fake Twilio, `dialer serve` and N `dialer worker`s, one database."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.s = spec
        spec.workdir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(spec.workdir)
        self.twilio = FakeTwilioProcess(spec.workdir, spec.seed, spec.twilio_time_scale)
        self.twilio.args += ["--calls-per-second", str(spec.fake_cps)]
        self.maildir = spec.workdir / "maildir"
        self.mailbox = Mailbox(self.maildir)
        self.serve: DialerProcess | None = None
        self.workers: list[WorkerProcess] = []
        self.campaigns: list[str] = []

    @property
    def api(self) -> Api:
        assert self.serve is not None
        return Api(self.serve.url)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.update(
            DIALER_DATABASE_URL=self.s.db_url,
            DIALER_BUS_URL=self.redis.url,
            DIALER_BOOTSTRAP_TOKEN=TOKEN,
            DIALER_MAILDIR=str(self.maildir),
            DIALER_EMAIL_PROVIDER="simulated",
            DIALER_EMAIL_BATCH=str(self.s.email_batch),
            DIALER_LEASE_SECONDS=str(self.s.lease_seconds),
            DIALER_TICK_SECONDS=str(self.s.tick_seconds),
            DIALER_VOICE_PROVIDER="twilio",
            DIALER_TWILIO_API_BASE=self.twilio.base_url,
            DIALER_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            DIALER_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            DIALER_TWILIO_CALLS_PER_SECOND=str(self.s.account_cps),
            DIALER_ABANDON_REDIAL_HOURS="0",
            DIALER_LOG_LEVEL="INFO",
        )
        env.update(self.s.extra_env)
        return env

    def __enter__(self) -> Cluster:
        try:
            self.redis.start()
            self.twilio.start()
            env = self.env()
            # serve first: it migrates the schema before any worker starts.
            self.serve = DialerProcess({**env, "DIALER_WORKER_ID": "serve"}, self.s.workdir)
            self.serve.start()
            # Carrier callbacks go to serve, whichever process placed the call.
            env["DIALER_PUBLIC_BASE_URL"] = self.serve.url
            self.workers = [
                WorkerProcess(f"w{i}", env, self.s.workdir) for i in range(1, self.s.workers + 1)
            ]
            for w in self.workers:
                w.spawn()
            self.wait_registered(60)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        if self.serve is not None:
            self.serve.stop()
        self.twilio.stop()
        self.redis.close()

    def registered(self) -> set[str]:
        """Names (serve, w1, …) of the processes with a live heartbeat."""
        return {m.rsplit("-", 1)[0] for m in self.redis.live_workers()}

    def wait_registered(self, seconds: float, names: set[str] | None = None) -> None:
        """Until every live process (or `names`) has a heartbeat in the registry."""

        def ready() -> bool:
            for w in self.workers:
                if names is None or w.name in names:
                    w.check_running()
            serve_engine = self.s.extra_env.get("DIALER_SERVE_ENGINE", "true") != "false"
            wanted = names or {
                *(["serve"] if serve_engine else []),
                *(w.name for w in self.workers if w.alive),
            }
            return wanted <= self.registered()

        wait_for(ready, seconds, "engine processes registered on the bus", interval=0.05)

    def logs(self) -> str:
        parts = [f"--- {p.log.name}\n" + p.tail(30) for p in [self.serve, *self.workers] if p]
        return "\n".join(parts)

    # -- campaigns -----------------------------------------------------------------------

    def _create(self, body: dict[str, Any], leads: int) -> str:
        """A campaign with `leads` leads (at most 10,000; numbers of one area code each)."""
        area = AREA_CODES[len(self.campaigns) % len(AREA_CODES)]
        out = self.api.ok("POST", "/api/v1/campaigns", body, (201,))
        cid = str(out["id"])
        zone = daytime_zone()
        for lo in range(0, leads, LEAD_CHUNK):
            rows = [
                {
                    "phone": f"+1{area}555{i:04d}",
                    "email": f"lead{i}@c{len(self.campaigns)}.example.com",
                    "first_name": f"Lead{i}",
                    "company": f"Co{i % 7}",
                    "timezone": zone,
                }
                for i in range(lo, min(leads, lo + LEAD_CHUNK))
            ]
            added = self.api.ok("POST", f"/api/v1/campaigns/{cid}/leads", {"leads": rows})
            if added["accepted"] != len(rows):
                raise RigError(f"leads rejected: {added['rejected'][:3]}")
        self.campaigns.append(cid)
        return cid

    def voice_campaign(
        self, leads: int, *, max_attempts: int = 20, capacity: int = 30, start: bool = True
    ) -> str:
        """Agentless voice: busy, no-answer, failed and machines are called again at once, so
        there is always a call to place."""
        body = {
            "name": f"scale-out voice {len(self.campaigns)}",
            "sequence": [
                {
                    "channel": "voice",
                    "max_attempts": max_attempts,
                    "retry_delay_seconds": 0,
                    "ring_timeout_seconds": 15,
                }
            ],
            "caller_ids": ["+14155550100"],
            "pacing": {
                "mode": "agentless",
                "agentless_capacity": capacity,
                "calls_per_second": self.s.account_cps,
            },
        }
        cid = self._create(body, leads)
        if start:
            self.start(cid)
        return cid

    def email_campaign(self, leads: int, *, steps: int = 3, start: bool = True) -> str:
        body = {
            "name": f"scale-out email {len(self.campaigns)}",
            "sequence": [
                {
                    "channel": "email",
                    "delay_seconds": 0,
                    "subject": f"Step {n}, {{first_name}}",
                    "body": "Hi {first_name}",
                }
                for n in range(steps)
            ],
            "sender": {"email": "sales@example.com", "name": "Sales"},
        }
        cid = self._create(body, leads)
        if start:
            self.start(cid)
        return cid

    def start(self, cid: str) -> None:
        self.api.ok("POST", f"/api/v1/campaigns/{cid}/start")

    def stats(self, cid: str) -> dict[str, Any]:
        out: dict[str, Any] = self.api.ok("GET", f"/api/v1/campaigns/{cid}/stats")
        return out

    def resume(self, cid: str, timeout: float = 30) -> None:
        """Resume over HTTP, repeating a 503 (the bus did not confirm the fan-out) as a
        client does; the resume is written the first time, a repeat answers 200."""
        status, body = self._repeat_503("POST", f"/api/v1/campaigns/{cid}/resume", None, timeout)
        if status != 200:
            raise RigError(f"POST /api/v1/campaigns/{cid}/resume: {status} {body}")

    def _repeat_503(self, method: str, path: str, body: Any, timeout: float) -> tuple[int, Any]:
        """The first answer that is not a 503 (docs/api.md §3: retry later), or the last 503
        once `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            status, out = self.api.call(method, path, body, timeout)
            if status != 503 or time.monotonic() > deadline:
                return status, out
            time.sleep(0.2)  # the client's back-off, not a test outcome

    # -- the pause and what went out after it ---------------------------------------------

    def calls_count(self) -> int:
        return int(self.twilio._control("GET", "/_fake/state")["calls"])

    def pause(self, cid: str, timeout: float = 30) -> Ack:
        """Pause over HTTP; note the answer's arrival and what had gone out by then. A 503
        (the bus did not confirm the fan-out, docs/api.md §3) is repeated, as a client
        does, until the deadline: the answer is the first other one."""
        sent = time.time_ns()
        path = f"/api/v1/campaigns/{cid}/pause"
        status, body = self._repeat_503("POST", path, {"reason": "scale-out run"}, timeout)
        ack = time.time_ns()
        # Taken after the answer: anything missing from these went out after it.
        names = self.mailbox.names()
        calls = self.calls_count()
        return Ack(cid, sent, ack, names, calls, status, body)

    def after_ack(self, ack: Ack, mails_of: str | None, calls_of: str | None) -> list[Late]:
        """Mails of `mails_of` and calls of `calls_of` that went out after `ack` (call before
        the resume). A mail is late if its mtime (ns; the kernel's file clock is at most a
        tick behind time.time()) is after the answer or its name was not listed when the
        answer arrived; a call if the fake created it after the answer or it is past the
        number of calls the fake had then (its record is in creation order)."""
        late: list[Late] = []
        if mails_of is not None:
            for m in self.mailbox.mails():
                after = m.mtime_ns > ack.ack_ns
                if after or m.name not in ack.mail_names:
                    why = "mtime later" if after else "not listed at the answer"
                    late.append(
                        Late("mail", mails_of, m.attempt, (m.mtime_ns - ack.ack_ns) / 1e6, why)
                    )
        if calls_of is not None:
            calls = self.twilio.calls()
            for n, c in enumerate(calls):
                after = c["created_at"] * 1e9 > ack.ack_ns
                if after or n >= ack.calls_at_ack:
                    why = "created_at later" if after else "not in the record at the answer"
                    attempt = int(c["attempt"]) if c["attempt"] else None
                    ms = (c["created_at"] * 1e9 - ack.ack_ns) / 1e6
                    late.append(Late("call", calls_of, attempt, ms, why))
        return self.explain(late, {x for x in (mails_of, calls_of) if x})

    def explain(self, late: list[Late], campaigns: set[str]) -> list[Late]:
        """Keep what belongs to `campaigns`, with the attempt rows (which process, which
        campaign version, when the row was written)."""
        ids = [x.attempt for x in late if x.attempt is not None]
        rows = self.attempts(ids) if ids else {}
        kept = []
        for x in late:
            row = rows.get(x.attempt or -1)
            if row is not None:
                x.campaign_id = row["campaign_id"]
                x.detail = row
            if x.campaign_id in campaigns:
                kept.append(x)
        return kept

    def pids(self) -> dict[int, str]:
        """Process names by pid, for the reports (every start of each process)."""
        out = {}
        for p in [self.serve, *self.workers]:
            if p is not None and p.process is not None:
                out[p.process.pid] = "serve" if p is self.serve else getattr(p, "name", "?")
        return out

    def describe_mail_duplicates(self) -> str:
        """Each attempt mailed more than once: who wrote each copy and when, and its row."""
        dups = mail_duplicates(self.mailbox.mails())
        if not dups:
            return ""
        pids = self.pids()
        rows = self.attempts(list(dups))
        lines = [f"{len(dups)} attempt(s) mailed more than once:"]
        for attempt, mails in sorted(dups.items())[:10]:
            copies = ", ".join(
                f"{pids.get(m.pid or -1, m.pid)} at {m.mtime_ns / 1e9:.3f}"
                for m in sorted(mails, key=lambda m: m.mtime_ns)
            )
            lines.append(f"  attempt {attempt}: {copies}; row {rows.get(attempt)}")
        return "\n".join(lines)

    def describe_call_duplicates(self) -> str:
        """Each attempt the fake placed more than one call for: when, and its row."""
        calls = self.twilio.calls()
        dups = call_duplicates(calls)
        if not dups:
            return ""
        rows = self.attempts([int(a) for a in dups])
        lines = [f"{len(dups)} attempt(s) called more than once:"]
        for attempt in sorted(dups, key=int)[:10]:
            times = ", ".join(
                f"{c['created_at']:.3f} ({c['status']})" for c in calls if c["attempt"] == attempt
            )
            lines.append(
                f"  attempt {attempt}: calls created at {times}; row {rows.get(int(attempt))}"
            )
        return "\n".join(lines)

    def attempts(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        return run_async(_attempt_rows(self.s.db_url, ids))

    # -- figures --------------------------------------------------------------------------

    def in_flight(self, cid: str) -> int:
        s = self.stats(cid)
        return int(s["calls"]["in_flight"]) + int(s["emails"]["in_flight"])

    def wait_quiet(self, cids: list[str], seconds: float = 60) -> None:
        """Until nothing of `cids` is in flight, no hand-off waits for its result to be written
        (a `created` attempt: a sent mail's `sent` is written with its round's others,
        docs/architecture.md §6.5) and every call at the fake has ended."""

        def quiet() -> bool:
            if any(self.in_flight(c) for c in cids):
                return False
            pending = query(
                self.s.db_url,
                "SELECT count(*) AS n FROM attempts WHERE status = 'created'"
                " AND campaign_id = ANY($1::text[])",
                cids,
            )
            if pending[0]["n"]:
                return False
            return all(c["status"] in FINAL_CALL for c in self.twilio.calls())

        wait_for(quiet, seconds, "campaigns quiet (nothing in flight)", interval=0.25)

    def metrics_texts(self) -> dict[str, str]:
        """`/metrics` of every live process: serve's HTTP port, each worker's metrics port."""
        assert self.serve is not None
        urls = {"serve": f"{self.serve.url}/metrics"}
        urls |= {w.name: w.metrics_url for w in self.workers if w.alive}
        out = {}
        for name, url in urls.items():
            with urllib.request.urlopen(url, timeout=10) as resp:
                out[name] = resp.read().decode()
        return out


def metric_sums(texts: dict[str, str], campaign_id: str) -> Counter[str]:
    """Counter samples of `campaign_id` summed over processes: `name{label=value}` keys for
    the labels other than `campaign`, and the bare name for the total."""
    sums: Counter[str] = Counter()
    for text in texts.values():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                if sample.labels.get("campaign") != campaign_id:
                    continue
                sums[sample.name] += int(sample.value)
                for label, value in sample.labels.items():
                    if label != "campaign":
                        sums[f"{sample.name}{{{label}={value}}}"] += int(sample.value)
    return sums


async def _attempt_rows(db_url: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    conn = await asyncpg.connect(asyncpg_dsn(db_url), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT id, campaign_id, lead_id, step, try_no, channel, status, worker_id,"
            " campaign_version, created_at, updated_at, history FROM attempts"
            " WHERE id = ANY($1::bigint[])",
            ids,
        )
    finally:
        await conn.close()
    return {int(r["id"]): dict(r) for r in rows}


async def _query(db_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(asyncpg_dsn(db_url), timeout=10)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def query(db_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    return run_async(_query(db_url, sql, *args))


def mail_duplicates(mails: list[Mail]) -> dict[int, list[Mail]]:
    """Attempts with more than one mail file."""
    by: dict[int, list[Mail]] = {}
    for m in mails:
        if m.attempt is not None:
            by.setdefault(m.attempt, []).append(m)
    return {a: ms for a, ms in by.items() if len(ms) > 1}


def call_duplicates(calls: list[dict[str, Any]]) -> dict[str, int]:
    """Attempts the fake placed more than one customer call for."""
    n = Counter(c["attempt"] for c in calls if not c["agent_leg"] and c["attempt"])
    return {a: k for a, k in n.items() if k > 1}
