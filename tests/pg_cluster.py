"""A throwaway PostgreSQL cluster of a test's own, started from the installed binaries.

Used for the session's server when none answers (tests/conftest.py `_postgres_server`) and by
the outage tests, which stop it under a running app and start it again
(docs/architecture.md §15.1). `stop()` is an immediate shutdown: the database is just gone,
as in a crash; the next `start()` recovers from the WAL.

    with PgCluster(Path(tempfile.mkdtemp()), free_port()) as pg:
        engine = create_async_engine(pg.url)
        pg.stop()   # every connection refused
        pg.start()  # back, same data

PostgreSQL refuses to run as root: as root, every command runs as the `postgres` user, which
must be able to reach `root`; when it cannot (a pytest tmp_path is private to root), the
data lives in a directory of its own under the system temp dir, removed by `close()`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy.engine import URL

__all__ = ["PgCluster", "PgClusterError", "postgres_bin_dir"]


class PgClusterError(RuntimeError):
    """The cluster could not be created, started or stopped (the message has the output)."""


def postgres_bin_dir() -> Path:
    """The directory with initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql."""
    candidates: list[Path] = []
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    for d in candidates:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    raise PgClusterError("initdb/pg_ctl are not installed: run `make setup` (scripts/services.sh)")


def _as_postgres_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PgClusterError("running as root and there is no `postgres` user") from None
    return ["runuser", "-u", "postgres", "--", *cmd]


class PgCluster:
    """One PostgreSQL cluster on 127.0.0.1:`port`, its files under `root`; trust auth for
    the `postgres` superuser; fsync off (a test's data need not survive the machine, but
    every committed transaction survives `stop()`)."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = Path(root)
        self.port = port
        self.bin_dir = postgres_bin_dir()
        self._own_base: Path | None = None  # a private base made because root was unreachable
        self.base = self._prepare_base()
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.running = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL (asyncpg) of the cluster's `postgres` database."""
        return URL.create(
            "postgresql+asyncpg",
            username="postgres",
            host="127.0.0.1",
            port=self.port,
            database="postgres",
        ).render_as_string(hide_password=False)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create the cluster on first use, then start it and wait until it accepts."""
        if self.running:
            return
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        # fsync off only saves what a machine crash would lose: a stop kills the server's
        # processes, not the OS, so every commit (written to the WAL at COMMIT) survives it.
        options = f"-p {self.port} -h 127.0.0.1 -k {self.base} -c fsync=off -c full_page_writes=off"
        start = [*self._ctl(), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start"]
        self._run(start, "pg_ctl start")
        self.running = True

    def stop(self) -> None:
        """Immediate shutdown: connections are cut, nothing is flushed (like a crash)."""
        if not self.running:
            return
        self._run([*self._ctl(), "-m", "immediate", "-w", "-t", "60", "stop"], "pg_ctl stop")
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop it, and remove the files this object made for itself (never `root`)."""
        try:
            self.stop()
        finally:
            if self._own_base is not None:
                shutil.rmtree(self._own_base, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------------
    def _prepare_base(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return self.root
        base = self.root / "pg"
        base.mkdir(exist_ok=True)
        shutil.chown(base, "postgres", "postgres")
        probe = subprocess.run(
            _as_postgres_user(["test", "-w", str(base), "-a", "-x", str(base)]), check=False
        )
        if probe.returncode == 0:
            return base
        # `root` sits under a directory the postgres user may not enter: use a base of its own.
        shutil.rmtree(base, ignore_errors=True)
        self._own_base = Path(tempfile.mkdtemp(prefix="dialer-pg-"))
        shutil.chown(self._own_base, "postgres", "postgres")
        return self._own_base

    def _ctl(self) -> list[str]:
        return [str(self.bin_dir / "pg_ctl"), "-D", str(self.data)]

    def _initdb(self) -> None:
        cmd = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres"]
        self._run([*cmd, "-A", "trust", "--no-sync", "-E", "UTF8", "--no-locale"], "initdb")

    def _run(self, cmd: list[str], what: str) -> None:
        result = subprocess.run(
            _as_postgres_user(cmd), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise PgClusterError(
                f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}{log}"
            )
