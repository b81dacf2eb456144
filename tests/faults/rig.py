"""Fault runs against real processes: `dialer serve` (killed with SIGKILL and restarted on the
same database and port), the fake Twilio in a process of its own (tests/fakes/serve_twilio.py,
it outlives the dialer and can refuse connections), and the database (docs/architecture.md
§15, failure and recovery).

    with Rig(Scenario(db_url, "twilio", workdir, seed=3)) as rig:
        rig.launch()                      # agents, a voice + email campaign, leads, start
        rig.dialer.kill(); rig.dialer.start()
        rig.settle(terminate=True)        # terminate, then poll until stopped and nothing open
        counts = checks.evaluate(rig.observe())

Everything is driven over HTTP with the bootstrap token, as a user would; the checks read the
database and the carrier's record afterwards (tests/faults/checks.py). Waiting is polling for a
condition up to a generous deadline; the random moments of the faults come from a seeded RNG.
Shared by the tests in this package and by `bench/faults.py`.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from tests.conftest import free_port, stop_process

T = TypeVar("T")
Carrier = Literal["simulated", "twilio"]
TOKEN = "fault-rig-bootstrap-token-0123456789"
ACCOUNT_SID = "AC" + "f" * 32
AUTH_TOKEN = "fault-rig-twilio-auth-token"
SERVE = [sys.executable, "-m", "dialer.cli", "serve"]
FAKE_TWILIO = [sys.executable, "-m", "tests.fakes.serve_twilio"]
ROOT = Path(__file__).resolve().parents[2]
FINAL_STATES = frozenset({"stopped", "completed", "cancelled"})


class RigError(Exception):
    """The rig could not do what a run needs (a process did not start, a request failed)."""


def wait_for(
    condition: Callable[[], bool], seconds: float, what: str, interval: float = 0.2
) -> None:
    """Poll `condition` until true; RigError after `seconds` (a deadline, not a measurement)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RigError(f"{what}: not within {seconds:g} s")
        time.sleep(interval)


def daytime_zone(now: float | None = None) -> str:
    """An `Etc/GMT±N` zone where it is about 14:00 now, inside every calling window (§7.1)."""
    hour = datetime.fromtimestamp(time.time() if now is None else now, UTC).hour
    offset = (14 - hour) % 24
    if offset > 14:
        offset -= 24
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


@dataclass
class Scenario:
    """One run's set-up. Times are real seconds unless named otherwise."""

    db_url: str
    carrier: Carrier
    workdir: Path
    seed: int = 0
    leads: int = 16
    agents: int = 3
    lease_seconds: float = 2.0
    tick_seconds: float = 0.1
    sim_time_scale: float = 30.0  # simulated ring/talk: a 90 s call lasts 3 s
    twilio_time_scale: float = 10.0  # the fake's ring 5 s -> 0.5 s, talk 30 s -> 3 s
    max_attempts: int = 2
    ring_timeout_seconds: int = 15  # the minimum; in carrier time
    settle_seconds: float = 90.0  # generous: lease + ring + talk + the rest of the campaign
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def ring_seconds(self) -> float:
        """The longest a call may ring, in real seconds."""
        scale = self.sim_time_scale if self.carrier == "simulated" else self.twilio_time_scale
        return self.ring_timeout_seconds / scale


class Api:
    """JSON over HTTP with the bootstrap (admin) token."""

    def __init__(self, base_url: str, token: str = TOKEN) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 10
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200,)) -> Any:
        status, out = self.call(method, path, body)
        if status not in expect:
            raise RigError(f"{method} {path}: {status} {out}")
        return out


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class LoggedProcess:
    """A `dialer` subprocess writing to `log`: alive, kill -9, stop, the end of its log."""

    log: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as with the OOM killer."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)
            self.kills += 1

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process, timeout)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class DialerProcess(LoggedProcess):
    """`dialer serve` on a fixed port (the fake's callbacks go to the same URL across
    restarts), its output appended to `workdir/serve.log`."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **env,
            "DIALER_HOST": "127.0.0.1",
            "DIALER_PORT": str(self.port),
            "DIALER_PUBLIC_BASE_URL": self.url,
        }
        self.workdir = workdir
        self.log = workdir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self, ready_seconds: float = 60) -> None:
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                SERVE, env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1
        deadline = time.monotonic() + ready_seconds
        while not _answers(f"{self.url}/readyz"):
            if self.process.poll() is not None:
                raise RigError(
                    f"dialer serve exited with {self.process.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise RigError(f"dialer serve not ready in {ready_seconds} s:\n{self.tail()}")
            time.sleep(0.1)


class FakeTwilioProcess:
    """tests/fakes/serve_twilio.py in its own process: it outlives a killed dialer."""

    def __init__(self, workdir: Path, seed: int, time_scale: float) -> None:
        self.workdir = workdir
        self.log = workdir / "twilio.log"
        self.args = [
            *FAKE_TWILIO,
            "--account-sid", ACCOUNT_SID,
            "--auth-token", AUTH_TOKEN,
            "--seed", str(seed),
            "--time-scale", str(time_scale),
        ]  # fmt: skip
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.control_url = ""

    def start(self, ready_seconds: float = 30) -> None:
        with self.log.open("ab") as err:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True
            )
        assert self.process.stdout is not None
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            line = pool.submit(self.process.stdout.readline).result(timeout=ready_seconds)
        except concurrent.futures.TimeoutError:
            self.stop()
            raise RigError(f"fake Twilio not ready in {ready_seconds} s") from None
        finally:
            pool.shutdown(wait=False)
        if not line:
            self.stop()
            raise RigError(f"fake Twilio did not start:\n{self.log.read_text(errors='replace')}")
        ready = json.loads(line)
        self.base_url, self.control_url = ready["base_url"], ready["control_url"]

    def _control(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.control_url + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())

    def calls(self) -> list[dict[str, Any]]:
        """Every call the fake placed (its record), in creation order."""
        found: list[dict[str, Any]] = self._control("GET", "/_fake/calls")["calls"]
        return found

    def refuse(self) -> None:
        self._control("POST", "/_fake/refuse")

    def accept(self) -> None:
        self._control("POST", "/_fake/accept")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Settled:
    """How a run ended: the campaign's last state and whether the wait hit its deadline."""

    state: str
    in_flight: int
    timed_out: bool
    terminated: bool  # terminate was asked for
    terminate_answer: str = ""  # its HTTP status and the state it reported


class Rig:
    """One fault run: the fake carrier (if Twilio), the dialer, a campaign."""

    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.rng = random.Random(scenario.seed)
        scenario.workdir.mkdir(parents=True, exist_ok=True)
        self.twilio: FakeTwilioProcess | None = None
        if scenario.carrier == "twilio":
            self.twilio = FakeTwilioProcess(
                scenario.workdir, scenario.seed, scenario.twilio_time_scale
            )
        self.dialer = DialerProcess(self._env(), scenario.workdir)
        self.api = Api(self.dialer.url)
        self.campaign_id = ""
        self.agent_ids = [f"fa{i}" for i in range(1, scenario.agents + 1)]
        self.crashes = 0  # the dialer exited by itself (not a kill of ours)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.update(
            DIALER_DATABASE_URL=self.s.db_url,
            DIALER_BOOTSTRAP_TOKEN=TOKEN,
            DIALER_MAILDIR=str(self.s.workdir / "maildir"),
            DIALER_LEASE_SECONDS=str(self.s.lease_seconds),
            DIALER_TICK_SECONDS=str(self.s.tick_seconds),
            DIALER_SIM_TIME_SCALE=str(self.s.sim_time_scale),
            DIALER_SIM_SEED=str(self.s.seed),
            DIALER_SIM_ANSWER_RATE="0.5",
            # Two lines per agent abandon a call now and then (§7.3); a party abandoned may be
            # called again at once here, or "let it finish" would wait 72 h for that lead.
            DIALER_ABANDON_REDIAL_HOURS="0",
            DIALER_LOG_LEVEL="INFO",
        )
        env.update(self.s.extra_env)
        return env

    def __enter__(self) -> Rig:
        try:
            if self.twilio is not None:
                self.twilio.start()
                self.dialer.env.update(
                    DIALER_VOICE_PROVIDER="twilio",
                    DIALER_TWILIO_API_BASE=self.twilio.base_url,
                    DIALER_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                    DIALER_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                    DIALER_TWILIO_CALLS_PER_SECOND="50",
                )
            self.dialer.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.dialer.stop()
        if self.twilio is not None:
            self.twilio.stop()

    # -- the campaign ----------------------------------------------------------------------

    def campaign_body(self) -> dict[str, Any]:
        return {
            "name": f"fault run {self.s.seed}",
            "sequence": [
                {
                    "channel": "voice",
                    "max_attempts": self.s.max_attempts,
                    "retry_delay_seconds": 0.5,
                    "ring_timeout_seconds": self.s.ring_timeout_seconds,
                },
                {
                    "channel": "email",
                    "delay_seconds": 0,
                    "subject": "Following up, {first_name}",
                    "body": "Hi {first_name}",
                },
            ],
            "caller_ids": ["+14155550100"],
            "sender": {"email": "sales@example.com", "name": "Sales"},
            "agent_ids": self.agent_ids,
            "wrap_up_seconds": 0,
            "pacing": {"mode": "progressive", "lines_per_agent": 2, "calls_per_second": 20},
        }

    def leads(self) -> list[dict[str, Any]]:
        zone = daytime_zone()
        return [
            {
                "phone": f"+1212555{i:04d}",
                "email": f"lead{i}@example.com",
                "first_name": f"Lead{i}",
                "company": f"Co{i % 5}",
                "timezone": zone,
            }
            for i in range(self.s.leads)
        ]

    def launch(self) -> str:
        """Agents (available), a voice + email campaign with leads, started."""
        for agent in self.agent_ids:
            self.api.ok("POST", "/api/v1/agents", {"id": agent, "name": agent}, (201, 409))
            self.api.ok("POST", f"/api/v1/agents/{agent}/state", {"state": "available"})
        out = self.api.ok("POST", "/api/v1/campaigns", self.campaign_body(), (201,))
        self.campaign_id = str(out["id"])
        added = self.api.ok(
            "POST", f"/api/v1/campaigns/{self.campaign_id}/leads", {"leads": self.leads()}
        )
        if added["accepted"] != self.s.leads:
            raise RigError(f"leads rejected: {added['rejected']}")
        self.api.ok("POST", f"/api/v1/campaigns/{self.campaign_id}/start")
        return self.campaign_id

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.api.ok("GET", f"/api/v1/campaigns/{self.campaign_id}/stats")
        return out

    def state(self) -> str:
        return str(self.api.ok("GET", f"/api/v1/campaigns/{self.campaign_id}")["state"])

    def dialled(self) -> int:
        """Calls handed to the carrier so far, as the dialer counts them."""
        return int(self.stats()["calls"]["dialed"])

    # -- faults ----------------------------------------------------------------------------

    def kill_and_restart(self) -> None:
        """kill -9 the serving process, start the same command on the same database."""
        self.dialer.kill()
        self.dialer.start()

    def ensure_alive(self) -> None:
        """Restart the dialer if it exited by itself (counted in `crashes`)."""
        if not self.dialer.alive:
            self.crashes += 1
            self.dialer.start()

    # -- the end ---------------------------------------------------------------------------

    def terminate(self) -> str:
        """Terminate the campaign (a 409 if it had already ended); its status and state."""
        cid = self.campaign_id
        status, out = self.api.call("POST", f"/api/v1/campaigns/{cid}/terminate", {"confirm": cid})
        if status in (200, 202):
            return f"{status} {out['campaign']['state'] if 'campaign' in out else out.get('state')}"
        if status == 409 and out["error"]["details"].get("state") in FINAL_STATES:
            return f"{status} {out['error']['details']['state']}"
        raise RigError(f"terminate: {status} {out}")

    def settle(self, *, terminate: bool, seconds: float | None = None) -> Settled:
        """Terminate (or let the campaign run to its end), then poll until the campaign is
        stopped/completed and nothing is in flight, or the deadline passes."""
        answer = self.terminate() if terminate else ""
        deadline = time.monotonic() + (seconds or self.s.settle_seconds)
        while True:
            self.ensure_alive()
            try:
                stats = self.stats()
            except (RigError, OSError):
                stats = None  # e.g. 503 while the database is down: ask again
            if stats is not None:
                in_flight = int(stats["calls"]["in_flight"]) + int(stats["emails"]["in_flight"])
                if stats["state"] in FINAL_STATES and in_flight == 0:
                    return Settled(stats["state"], in_flight, False, terminate, answer)
            if time.monotonic() > deadline:
                if stats is None:
                    return Settled("unknown", -1, True, terminate, answer)
                return Settled(stats["state"], in_flight, True, terminate, answer)
            time.sleep(0.25)

    def carrier_calls(self) -> list[dict[str, Any]] | None:
        """The fake Twilio's record, after the settle; None for the simulated carrier (its
        record lives in the dialer's process and died with it)."""
        if self.twilio is None:
            return None
        # Let the fake finish calls still ringing when the dialer settled, so its figures are
        # final; a call left open would show as a mismatch anyway.
        deadline = time.monotonic() + 30
        calls = self.twilio.calls()
        while any(c["status"] not in _TWILIO_FINAL for c in calls) and time.monotonic() < deadline:
            time.sleep(0.25)
            calls = self.twilio.calls()
        return calls


_TWILIO_FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
