"""deploy/systemd: `systemd-analyze verify` accepts the units (where the machine has it), and
they run `dialer serve` / `dialer worker` as an unprivileged, sandboxed user with settings
and secrets from the environment file only."""

from __future__ import annotations

import configparser
import shutil
import sys
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY, run

UNITS = DEPLOY / "systemd"
INSTALLED_DIALER = "/opt/dialer/venv/bin/dialer"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
}


def unit(name: str) -> configparser.RawConfigParser:
    # systemd allows repeated keys (SystemCallFilter=...): the last one wins here.
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


@pytest.mark.parametrize(
    ("name", "command"), [("dialer.service", "serve"), ("dialer-worker@.service", "worker")]
)
def test_unit_runs_dialer_hardened(name: str, command: str, tmp_path: Path) -> None:
    u = unit(name)
    service = u["Service"]
    assert service["ExecStart"] == f"{INSTALLED_DIALER} {command}"
    assert service["EnvironmentFile"] == "/etc/dialer/dialer.env"
    assert service["User"] == "dialer" and service["Group"] == "dialer"
    assert service["ReadWritePaths"] == "/var/lib/dialer"
    assert service["WorkingDirectory"] == "/var/lib/dialer"
    for key, value in HARDENING.items():
        assert service[key] == value, key
    # Secrets only from the environment file: none inline.
    inline = service.get("Environment", "")
    for secret in ("TOKEN", "PASSWORD", "SECRET", "SMTP_URL", "DATABASE_URL", "SID"):
        assert secret not in inline, inline
    assert u["Install"]["WantedBy"] == "multi-user.target"
    verify(name, tmp_path)


def test_worker_instances_get_their_own_worker_id_and_metrics_port() -> None:
    service = unit("dialer-worker@.service")["Service"]
    env = dict(x.split("=", 1) for x in service["Environment"].split())
    assert "%i" in env["DIALER_WORKER_ID"]
    # dialer-worker@1 serves /metrics on 9101, @2 on 9102: Prometheus' host targets.
    assert env["DIALER_METRICS_PORT"] == "910%i"
    # The bus comes from dialer.env, which serve reads too: never one bus per unit.
    assert "DIALER_BUS_URL" not in env
    # Refused on the in-process bus (exit 2): a configuration error, not restarted in a loop.
    assert service["RestartPreventExitStatus"] == "2"


def test_serve_migrates_before_it_starts() -> None:
    assert unit("dialer.service")["Service"]["ExecStartPre"] == f"{INSTALLED_DIALER} migrate"


def verify(name: str, tmp_path: Path) -> None:
    """`systemd-analyze verify` where the machine has it (the checks above run everywhere)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    # verify checks that ExecStart exists: point it at this venv's `dialer`.
    dialer = Path(sys.executable).with_name("dialer")
    assert dialer.exists(), dialer
    copy = tmp_path / name
    copy.write_text((UNITS / name).read_text().replace(INSTALLED_DIALER, str(dialer)))
    result = run(analyze, "verify", str(copy))
    output = (result.stdout + result.stderr).strip()
    # verify exits 0 on unknown keys and bad values: any message at all is a finding.
    assert result.returncode == 0 and not output, output
