"""Rigs for email that listens: the real app with a webhook secret and VERP addresses, and
a throwaway Dovecot IMAP server (Debian's `dovecot-imapd`, scripts/services.sh installs it)
started on a free loopback port with a configuration of its own, gone after the test."""

from __future__ import annotations

import grp
import hashlib
import hmac
import io
import mailbox
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from dialer.api.keys import RUNTIME
from dialer.channels.maildir import MaildirEmail
from dialer.runtime import Runtime
from tests.harness import BOOTSTRAP, ClientFactory, app, carrier
from tests.recording import RecordingVoice

SECRET = "inbound-test-secret"
BOUNCES = "bounces@mail.example.com"
REPLIES = "replies@mail.example.com"
TWO_STEPS = {
    "name": "Mailbox",
    "sequence": [
        {"channel": "email", "subject": "Hi", "body": "Hello"},
        {"channel": "email", "delay_seconds": 3600, "subject": "Again", "body": "Again"},
    ],
    "sender": {"email": "sales@mail.example.com"},
}
DOVECOT = "/usr/sbin/dovecot"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Rig:
    client: Any
    clock: Any
    maildir: Path

    @property
    def runtime(self) -> Runtime:
        rt: Runtime = self.client.app[RUNTIME]
        return rt

    async def call(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers["Authorization"] = f"Bearer {BOOTSTRAP}"
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body

    async def post_mail(self, raw: bytes, *, signature: str | None = None) -> int:
        headers = {
            "Content-Type": "message/rfc822",
            "X-Dialer-Signature": signature if signature is not None else sign(raw),
        }
        data = io.BytesIO(raw) if len(raw) > 1024 * 1024 else raw
        resp = await self.client.post("/webhooks/email/inbound", data=data, headers=headers)
        return resp.status

    async def tick(self) -> None:
        await self.runtime.engine.tick()

    async def mailed(self, names: tuple[str, ...]) -> tuple[str, dict[str, Message]]:
        """A two-step email campaign to `<name>@example.org` for each name, started and
        ticked once: its id and the first mail of each lead, by name."""
        status, c = await self.call("POST", "/api/v1/campaigns", json=TWO_STEPS)
        assert status == 201, c
        await self.runtime.service.leads.add(
            c["id"], [{"email": f"{n}@example.org"} for n in names]
        )
        await self.call("POST", f"/api/v1/campaigns/{c['id']}/start")
        await self.tick()
        return c["id"], {str(m["To"]).split("@")[0]: m for m in mailbox.Maildir(self.maildir)}


@pytest.fixture
async def make_rig(aiohttp_client: ClientFactory, tmp_path: Path) -> AsyncIterator[Any]:
    async def make(db_url: str) -> Rig:
        clock, sim = carrier()
        email = MaildirEmail(
            tmp_path / "maildir", clock, bounce_address=BOUNCES, reply_address=REPLIES
        )
        client = await aiohttp_client(
            app(
                db_url,
                "inbound-test",
                clock,
                email=email,
                voice=RecordingVoice(sim),
                inbound_secret=SECRET,
                bounce_address=BOUNCES,
                reply_address=REPLIES,
                public_base_url="https://dialer.example.com",
            )
        )
        return Rig(client, clock, tmp_path / "maildir")

    yield make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Dovecot:
    port: int
    user: str
    password: str
    mail: Path  # the user's Maildir root
    uid: int  # who owns the mail on disk
    gid: int

    def url(self, folder: str = "INBOX") -> str:
        return f"imap://{self.user}:{self.password}@127.0.0.1:{self.port}/{folder}"

    def deliver(self, raw: bytes, name: str) -> None:
        """Drop a message into INBOX the Maildir way (as a local delivery agent would)."""
        for path in (self.mail, self.mail / "tmp", self.mail / "new", self.mail / "cur"):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, self.uid, self.gid)
        tmp = self.mail / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.uid, self.gid)
        tmp.rename(self.mail / "new" / name)

    def folder(self, name: str) -> list[bytes]:
        """The messages of a folder (Maildir++ `.name`), read from disk."""
        root = self.mail / f".{name}"
        return [p.read_bytes() for sub in ("new", "cur") for p in sorted((root / sub).glob("*"))]

    def inbox(self) -> list[bytes]:
        return [
            p.read_bytes() for sub in ("new", "cur") for p in sorted((self.mail / sub).glob("*"))
        ]

    # The server dies and comes back (tests/inbound/test_imap_outage.py).
    @property
    def _root(self) -> Path:
        return self.mail.parent.parent  # <root>/mail/<user>

    def kill(self) -> None:
        """SIGKILL the whole server (master, login, auth and mail processes), as a crash
        would; returns once its port refuses connections."""
        pid_file = self._root / "run" / "master.pid"
        pid = int(pid_file.read_text())
        os.killpg(pid, signal.SIGKILL)  # the daemon leads a process group of its own
        deadline = time.monotonic() + 15
        while not _dead(pid) or _listening(self.port):
            if time.monotonic() > deadline:
                pytest.fail(f"dovecot {pid} survived SIGKILL")
            time.sleep(0.02)
        # Reaping the master is up to pid 1, maybe later: its pid file must not make the
        # restart believe it still runs.
        pid_file.unlink(missing_ok=True)

    def restart(self) -> None:
        """Start the same server again (same configuration, port and mail)."""
        subprocess.run(
            [DOVECOT, "-c", str(self._root / "dovecot.conf")],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not _listening(self.port):
            if time.monotonic() > deadline:
                pytest.fail(f"dovecot did not listen on {self.port} again")
            time.sleep(0.02)


def _dead(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A Dovecot of this test's own: plain IMAP on 127.0.0.1, one user, Maildir storage."""
    if not os.path.exists(DOVECOT):
        pytest.fail("dovecot is not installed: run scripts/services.sh (dovecot-imapd)")
    # Not under pytest's tmp_path: that is 0700, and mail is served as another user.
    root = Path(tempfile.mkdtemp(prefix="dialer-dovecot-"))
    os.chmod(root, 0o755)
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir(parents=True)
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    # As root: logins run as `dovenull`, mail as `dovecot` (Dovecot refuses uid 0 for mail).
    login_user = "dovenull" if os.getuid() == 0 else user
    owner = pwd.getpwnam("dovecot") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    for sub in ("mail", "home"):
        os.chown(root / sub, owner.pw_uid, owner.pw_gid)
    password = "imap-test-password"
    (root / "users").write_text(f"inbox:{{PLAIN}}{password}\n")
    port = _free_port()
    config = root / "dovecot.conf"
    config.write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
mail_location = maildir:{root}/mail/%u
first_valid_uid = 0
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
"""
    )
    # The daemon keeps the descriptors it is given: no pipes (run() would wait on them).
    subprocess.run(
        [DOVECOT, "-c", str(config)],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    log = (
                        (root / "dovecot.log").read_text()
                        if (root / "dovecot.log").exists()
                        else ""
                    )
                    pytest.fail(f"dovecot did not listen on {port}: {log[-2000:]}")
                time.sleep(0.05)
        yield Dovecot(port, "inbox", password, root / "mail" / "inbox", owner.pw_uid, owner.pw_gid)
    finally:
        subprocess.run(
            [DOVECOT, "-c", str(config), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pid_file = root / "run" / "master.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)
